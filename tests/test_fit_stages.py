"""`fit`'s stages, each on its own: prepare (real clips through a real backbone), then choose,
refit, evaluate and write on features made up in memory (two classes, three training sessions
each, whose frames lie apart), so that each is checked without the ones before it."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_clip

pytestmark = pytest.mark.slow  # each test builds or trains a head, or loads a backbone

SEQ_LEN = 8
FEATURES = 1280  # efficientnet_lite0's: the stages look the size up by the backbone's name


def made_up(tmp_path, groups=4, test_groups=1):
    """A Prepared of two classes, `groups` sessions each (two clips a session, 24 frames a clip),
    `test_groups` of them held out for testing; class b's frames lie apart from a's on a few
    features, with noise, so any head can learn them."""
    from training.config import FitConfig
    from training.datasets import Clip, Dataset
    from training.features import FramePath
    from training.prepare import Prepared

    rng = np.random.default_rng(0)
    features, train, test = {}, [], []
    for label, offset in (("a", 0.0), ("b", 1.5)):
        for group in range(groups):
            for number in range(2):
                path = tmp_path / label / f"s{group}__{number}.avi"
                frames = rng.normal(size=(24, FEATURES)).astype(np.float32)
                frames[:, :16] += offset
                features[str(path)] = frames
                (test if group < test_groups else train).append(Clip(path, label, f"{label}/s{group}"))
    key = lambda clip: str(clip.path)  # noqa: E731
    config = FitConfig.from_options(data=str(tmp_path), out=str(tmp_path / "bundle"), backbone="efficientnet_lite0",
                                    frame_rate=5.0, seq_len=SEQ_LEN, epochs=4, progress=False)
    prepared = Prepared(Dataset("class folders", ["a", "b"], train, test), str(tmp_path), config.features, features,
                        {}, FramePath("efficientnet_lite0", "0" * 16, 224, 1, 5.0),
                        {"clips": 0, "frames": 0, "seconds": 0.0}, sorted(train, key=key), sorted(test, key=key))
    return config, prepared


def test_prepare_finds_the_clips_extracts_them_and_records_them(tmp_path, cache_dir):
    """Stage 1: the dataset's usable clips in path order, each with its features from the cache
    (a clip too short to use skipped and said why), and the dataset recorded in the cache's index."""
    from training.config import FitConfig
    from training.features import CacheIndex, clip_key
    from training.prepare import prepare

    for label, colour in (("left", 60), ("right", 200)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for session in range(3):
            frames = [np.full((64, 64, 3), colour + 10 * i % 40, np.uint8) for i in range(20)]
            write_clip(tmp_path / "data" / label / f"s{session}__clip.avi", frames, fps=10)
    write_clip(tmp_path / "data" / "left" / "s9__short.avi", [np.zeros((64, 64, 3), np.uint8)] * 3, fps=10)
    config = FitConfig.from_options(data=str(tmp_path / "data"), out=str(tmp_path / "bundle"),
                                    backbone="efficientnet_lite0", frame_rate=5.0, progress=False)
    prepared = prepare(config)
    assert prepared.labels == ["left", "right"] and prepared.feature_config.frame_rate == 5.0
    clips = prepared.train_clips + prepared.test_clips
    assert len(clips) == 6 and prepared.test_clips  # the short clip is skipped, a session a class held out
    assert [str(c.path) for c in prepared.train_clips] == sorted(str(c.path) for c in prepared.train_clips)
    assert all(prepared.features[str(c.path)].shape == (10, FEATURES) for c in clips)
    assert list(prepared.skipped) == [str(tmp_path / "data" / "left" / "s9__short.avi")]
    record = CacheIndex(cache_dir / "features").records[clip_key(clips[0].path)]
    assert record["label"] == clips[0].label and record["dataset"] == clip_key(tmp_path / "data")


def test_choose_cross_validates_the_candidates_over_sessions(tmp_path):
    """Stage 2: auto on image features compares linear and gru by cross-validation over the
    training sessions (one out per fold here: three a class), each scored on every window of the
    clips it did not train on; the simplest within the tie margin is kept. A candidate that can no
    longer win is stopped, and says how far it got."""
    from training.crossval import TIE_MARGIN
    from training.fit import choose

    config, prepared = made_up(tmp_path)
    choice = choose(config, prepared)
    assert choice.by == "cross-validation" and choice.folds == 3 and choice.units == "sessions"
    assert choice.model is None
    assert list(choice.candidates) == ["linear", "gru"]
    windows = sum(len(prepared.features[str(c.path)]) for c in prepared.train_clips)  # one a sampled frame
    linear, gru = choice.candidates["linear"], choice.candidates["gru"]
    assert linear["windows"] == windows and len(linear["fold_accuracy"]) == 3
    if gru["accuracy"] is None:  # stopped: it could not beat linear by the margin
        assert gru["at_most"] <= linear["accuracy"] + TIE_MARGIN and gru["stopped_after_folds"] < 3
    kept = max(s["accuracy"] for s in choice.candidates.values() if s["accuracy"] is not None)
    assert choice.candidates[choice.kind]["accuracy"] >= kept - TIE_MARGIN
    assert choice.kind == "linear" or gru["accuracy"] > linear["accuracy"] + TIE_MARGIN


def test_choose_without_refit_keeps_the_head_as_validated(tmp_path):
    """Stage 2 with --no-refit: one validation split of whole sessions; the head kept is the one
    trained on the rest, with its validation scores."""
    from dataclasses import replace

    from training.fit import choose

    config, prepared = made_up(tmp_path)
    choice = choose(replace(config, refit=False, model_kind="linear"), prepared)
    assert choice.by == "validation" and choice.model is not None and list(choice.candidates) == ["linear"]
    assert {c.group for c in choice.held}.isdisjoint({c.group for c in choice.clips})
    assert sorted(choice.clips + choice.held, key=lambda c: str(c.path)) == prepared.train_clips
    assert choice.candidates["linear"]["windows"] == sum(len(prepared.features[str(c.path)]) for c in choice.held)


def test_refit_trains_the_kept_head_on_every_training_clip(tmp_path):
    """Stage 3: the kept head trained on every training clip: linear by L-BFGS to convergence,
    gru by Adam for --epochs x EPOCH_STEPS steps whatever the number of clips; --no-refit keeps
    the head as validated."""
    from dataclasses import replace

    from training.fit import Choice, choose, refit
    from training.train import EPOCH_STEPS

    config, prepared = made_up(tmp_path)
    model, record = refit(config, prepared, Choice("linear", ("linear",), "requested"))
    assert record["clips"] == len(prepared.train_clips) and record["method"] == "L-BFGS"
    assert 0 < record["iterations"] < 1000
    _, record = refit(replace(config, epochs=2), prepared, Choice("gru", ("gru",), "requested"))
    assert record["method"] == "Adam" and record["epochs"] == 2 and record["steps"] >= 2 * EPOCH_STEPS
    validated = choose(replace(config, refit=False, model_kind="linear"), prepared)
    assert refit(config, prepared, validated) == (validated.model, None)


def test_evaluate_scores_the_head_on_the_test_clips_and_its_own(tmp_path):
    """Stage 4: the bundle's head's metrics on the test clips (first window and all windows), and
    its scores on every window of the clips it trained on: it has learnt them; no test clips, no
    test metrics."""
    from dataclasses import replace

    from live.runtimes import compiled_call
    from training.fit import Choice, evaluate, evaluate_clips, refit

    config, prepared = made_up(tmp_path)
    choice = Choice("linear", ("linear",), "requested")
    model, _ = refit(config, prepared, choice)
    scores = evaluate(config, prepared, choice, model)
    test = scores["test"]
    assert test["all_windows"]["clips"] == len(prepared.test_clips) == 4
    assert test == evaluate_clips(compiled_call(model), prepared.test_clips, prepared.features, ["a", "b"], SEQ_LEN)
    training = scores["training"]
    assert training["clips"] == len(prepared.train_clips) and training["clip_accuracy"] == 1.0
    assert training["windows"] == sum(len(prepared.features[str(c.path)]) for c in prepared.train_clips)
    assert evaluate(config, replace(prepared, test_clips=[]), choice, model)["test"] is None


def test_write_puts_the_bundle_its_report_and_the_summary(tmp_path, capsys):
    """Stage 5: the bundle (head, labels, manifest with the choice and every candidate's
    cross-validated scores), its report and plots, and the summary's last line naming the head
    and its cross-validated accuracy."""
    from live.bundle import load_bundle
    from training.fit import choose, evaluate, refit, write

    config, prepared = made_up(tmp_path)
    choice = choose(config, prepared)
    model, record = refit(config, prepared, choice)
    scores = evaluate(config, prepared, choice, model)
    report = write(config, prepared, choice, model, record, scores, started=0.0)
    bundle = Path(config.out)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"] == report["model"] == choice.kind and manifest["refit"] == record
    selection = manifest["model_selection"]
    assert selection["by"] == "cross-validation" and selection["folds"] == 3
    assert selection["candidates"] == json.loads(json.dumps(choice.candidates)) == report["candidates"]
    accuracy = choice.candidates[choice.kind]["accuracy"]
    assert manifest["metrics"]["held_out_accuracy"] == accuracy
    assert manifest["metrics"]["training_clip_accuracy"] == scores["training"]["clip_accuracy"]
    assert json.loads((bundle / "report.json").read_text()) == json.loads(json.dumps(report))
    assert {"confusion_matrix.png", "training_curves.png"} <= {p.name for p in bundle.iterdir()}
    assert load_bundle(bundle).labels == ["a", "b"]
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"wrote {bundle}: {choice.kind} head, {accuracy:.1%} on held-out clips (cross-validated "
                           "over 3 folds of sessions, every window, chance 50.0%)")
