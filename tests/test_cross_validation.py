"""How `fit` compares heads and how they converge, on numbers alone: the folds of sessions, the
tie and stopping rules, and the linear head's L-BFGS fit (its optimum, and the Keras head that
carries it)."""
from pathlib import Path

import numpy as np
import pytest

from training.datasets import Clip


def clips_of(sessions):
    """Clips named for their class and session: {label: {session: clip count}}."""
    return [Clip(Path(f"/data/{label}/{session}__{n}.mp4"), label, f"{label}/{session}")
            for label, counts in sessions.items() for session, count in counts.items() for n in range(count)]


def test_folds_hold_out_whole_sessions_of_every_class_and_keep_every_class():
    from training.crossval import MAX_FOLDS, session, session_folds

    clips = clips_of({"wave": {f"s{i}": 2 for i in range(7)}, "clap": {f"s{i}": 1 for i in range(3, 9)}})
    folds = session_folds(clips, seed=0)
    assert len(folds) == MAX_FOLDS
    held_sessions = [sorted({session(c) for c in held}) for _, held in folds]
    assert sorted(s for sessions in held_sessions for s in sessions) == [f"s{i}" for i in range(9)]
    for train, held in folds:
        assert {session(c) for c in train}.isdisjoint({session(c) for c in held})  # every class's clips of a session
        assert {c.label for c in train} == {"wave", "clap"}
        assert sorted(train + held, key=lambda c: str(c.path)) == sorted(clips, key=lambda c: str(c.path))
    assert session_folds(clips, seed=0) == folds and session_folds(clips, seed=1) != folds


def test_a_class_of_one_session_is_dealt_out_by_clip_and_a_lone_clip_never_held_out():
    from training.crossval import session_folds

    from training.crossval import fold_units

    clips = clips_of({"wave": {"monday": 2}, "clap": {"monday": 2}, "nod": {"tuesday": 1}})
    for seed in range(10):
        folds = session_folds(clips, seed)
        assert len(folds) == 2  # two clips a class: one out in each fold
        for train, held in folds:
            assert sorted(c.label for c in held) == ["clap", "wave"]
            assert {c.label for c in train} == {"wave", "clap", "nod"}
    assert fold_units(clips) == "clips"
    assert fold_units(clips_of({"wave": {"monday": 1, "friday": 1}, "clap": {"monday": 2}})) == "sessions and clips"
    assert session_folds(clips_of({"wave": {"monday": 1}, "clap": {"monday": 1}}), seed=0) == []


def test_a_tie_goes_to_the_simpler_head_and_a_head_that_cannot_win_is_stopped():
    from training.crossval import TIE_MARGIN, out_of_reach, simplest_best

    assert simplest_best({"linear": {"accuracy": 0.90}, "gru": {"accuracy": 0.90 + TIE_MARGIN / 2}}) == "linear"
    assert simplest_best({"linear": {"accuracy": 0.90}, "gru": {"accuracy": 0.90 + 2 * TIE_MARGIN}}) == "gru"
    assert simplest_best({"linear": {"accuracy": 0.90}, "gru": {"accuracy": None}}) == "linear"
    # 50 of 100 windows scored, 40 right: at most 90 of 100.
    assert out_of_reach({"right": 40, "windows": 50}, 100, best=0.90)
    assert not out_of_reach({"right": 40, "windows": 50}, 100, best=0.80)
    assert not out_of_reach({"right": 0, "windows": 50}, 100, best=None)


def test_softmax_regression_reaches_the_optimum():
    """L-BFGS stops at the penalised objective's minimum: its gradient is zero there, and no
    nudge of the weights lowers the objective."""
    from training.lbfgs import softmax_regression

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(300, 12))
    labels = np.argmax(inputs[:, :3] + rng.normal(scale=0.5, size=(300, 3)), axis=1)
    decay = 0.03
    kernel, bias, history = softmax_regression(inputs, labels, 3, decay, tolerance=1e-10)

    def objective(kernel, bias):
        logits = inputs @ kernel + bias
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -log_probs[np.arange(len(labels)), labels].mean() + decay * (kernel ** 2).sum()

    best = objective(kernel, bias)
    assert history["loss"][-1] == pytest.approx(best) and history["iterations"] < 200
    for _ in range(20):
        assert objective(kernel + rng.normal(scale=1e-3, size=kernel.shape), bias) > best
    assert (np.argmax(inputs @ kernel + bias, axis=1) == labels).mean() > 0.8


@pytest.mark.parametrize("subset", [None, [1, 4, 6]], ids=["every feature", "evoked classes"])
def test_the_keras_linear_head_carries_the_lbfgs_fit(subset):
    """fit_linear gives the Keras head the weights L-BFGS found on the head's own inputs (the
    window's mean and newest frame, standardised): its probabilities are the regression's."""
    from live.runtimes import compiled_call
    from live.quiet import keras
    from training.lbfgs import softmax_regression
    from training.model import LINEAR_INPUTS, LINEAR_WEIGHT_DECAY, build_sequence_model
    from training.train import fit_linear
    from training.windows import WindowBatches

    rng = np.random.default_rng(0)
    features = {f"c{i}": (rng.normal(size=(30, 8)) + i % 2).astype(np.float32) for i in range(6)}
    batches = WindowBatches(features, list(features), [i % 2 for i in range(6)], 10, 20, 32, rng, 0)
    model = build_sequence_model("linear", 10, 8, 2, np.zeros(8), np.ones(8), subset)
    history = fit_linear(model, batches)
    inputs = compiled_call(keras.Model(model.inputs, model.get_layer(LINEAR_INPUTS).output))
    parts = [batches[i] for i in range(len(batches))]
    x = np.concatenate([inputs(*part[0]) for part in parts])
    kernel, bias, _ = softmax_regression(x, np.concatenate([part[1] for part in parts]), 2, LINEAR_WEIGHT_DECAY)
    logits = x @ kernel + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    probs = np.concatenate([compiled_call(model)(*part[0]) for part in parts])
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert history["iterations"] == len(history["loss"]) - 1
