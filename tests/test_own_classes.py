"""Few clips a class: speed augmentation keeps live's window layout, heads trained on the same
batches see the same windows, and `fit` chooses its head by cross-validation, writes the chosen
one and records the choice."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIPS

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

SEQ_LEN = 20
CLIP_FRAMES = {"long": 60, "short": 12}  # the short one is shorter than a window


def numbered_clips():
    """Clip features whose frame i holds i + 1 (0 is padding), so a window shows which frames it took."""
    return {name: np.repeat(np.arange(1, count + 1, dtype=np.float32)[:, None], 4, axis=1)
            for name, count in CLIP_FRAMES.items()}


def window_batches(speed_range=None, per_clip=300):
    from training.windows import WindowBatches

    clips = numbered_clips()
    return WindowBatches(clips, list(clips), [0, 1], SEQ_LEN, per_clip, 64, np.random.default_rng(0), 0,
                         speed_range=speed_range)


def epoch_windows(batches):
    """(frames, mask, labels) of every window of the batches' current epoch, in batch order."""
    parts = [batches[i] for i in range(len(batches))]
    return (np.concatenate([p[0][0] for p in parts]), np.concatenate([p[0][1] for p in parts]),
            np.concatenate([p[1] for p in parts]))


def test_speed_augmentation_keeps_the_live_buffer_layout():
    """Training windows cut from clips replayed at 0.8x-1.25x are still live's layout (valid
    frames first, oldest first, zeros and a false mask after), at most seq_len frames, all of
    them frames of their own clip, in time order, never reversed: a frame is at most repeated
    once (0.8x) or one skipped (1.25x), and both happen, in every epoch's fresh draw. Without a
    speed range every step is one frame."""
    from training.augment import SPEED_RANGE

    batches = window_batches(SPEED_RANGE)
    steps = []
    for epoch in range(3):
        batches.draw_epoch(epoch)
        frames, masks, labels = epoch_windows(batches)
        assert frames.shape == (600, SEQ_LEN, 4) and sorted(np.bincount(labels)) == [300, 300]
        filled = masks.sum(axis=1)
        assert filled.min() >= 1 and (masks == (np.arange(SEQ_LEN) < filled[:, None])).all()
        assert (frames[~masks] == 0).all()
        taken = frames[..., 0]
        assert (np.where(masks, taken, np.inf).min(axis=1) >= 1).all()
        assert (taken.max(axis=1) <= np.array(list(CLIP_FRAMES.values()))[labels]).all()
        steps.extend(np.diff(taken, axis=1)[masks[:, 1:]])
        assert (filled[labels == 0] == SEQ_LEN).any()  # full windows of the long clip, too
    assert set(steps) == {0, 1, 2}

    frames, masks, _ = epoch_windows(window_batches(per_clip=50))
    assert (np.diff(frames[..., 0], axis=1)[masks[:, 1:]] == 1).all()


def test_every_candidate_trains_on_the_same_windows():
    """Heads trained one after another on the same WindowBatches (the validation split's, with
    --no-refit) see the same windows: a second model.fit starts again from the first draw, so
    epoch by epoch both see the same windows (and later epochs still draw new ones)."""
    from live.quiet import keras
    from training.augment import SPEED_RANGE
    from training.model import build_sequence_model

    batches = window_batches(SPEED_RANGE, per_clip=40)
    runs = []
    for _ in range(2):
        seen = []
        model = build_sequence_model("linear", SEQ_LEN, 4, 2)
        record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None, seen=seen:
                                                seen.append(epoch_windows(batches)))
        model.fit(batches, epochs=3, verbose=0, callbacks=[batches.epoch_callback(), record])
        runs.append(seen)
    for first, second in zip(*runs):
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][0][0], runs[0][1][0])


def test_the_linear_head_reads_the_newest_valid_frame():
    """NewestFrame (beside the mean, the linear head's input) picks each window's last valid
    frame: valid frames come first, padding after, and a window may be partial."""
    from live.quiet import keras
    from live.sequence_layers import NewestFrame

    features = np.random.default_rng(0).normal(size=(3, SEQ_LEN, 4)).astype(np.float32)
    lengths = np.array([1, 7, SEQ_LEN])
    mask = np.arange(SEQ_LEN)[None, :] < lengths[:, None]
    newest = keras.ops.convert_to_numpy(NewestFrame()([features, mask]))
    np.testing.assert_array_equal(newest, features[np.arange(3), lengths - 1])


def layer_classes(bundle):
    with zipfile.ZipFile(Path(bundle) / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
    return {layer["class_name"] for layer in config["config"]["layers"]}


@pytest.mark.slow
def test_fit_keeps_the_head_cross_validation_prefers_and_records_it(tmp_path, cache_dir):
    """On a tiny real dataset (two clips cut into segments, EfficientNet-Lite0 features at 5 fps),
    the default --model auto compares linear and gru by cross-validation (each class is one
    source, so its segments are dealt out one by one), keeps the best (a tie: the simpler), trains
    it on every training clip, writes that one, and records every candidate's scores, the choice
    and the training in the manifest and the report; the kept head has learnt its clips."""
    from live.bundle import load_bundle
    from training.config import FitConfig
    from training.crossval import simplest_best
    from training.demo_data import make_demo_data
    from training.fit import fit

    make_demo_data([str(CLIPS / "arm_wrestling.mp4"), str(CLIPS / "pool_cleaning.mp4")], tmp_path / "data", 6)
    report = fit(FitConfig.from_options(data=tmp_path / "data", out=tmp_path / "bundle", backbone="efficientnet_lite0",
                                        frame_rate=5.0, epochs=3, progress=False))
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    selection = manifest["model_selection"]
    assert selection["requested"] == "auto" and list(selection["candidates"]) == ["linear", "gru"]
    assert selection["by"] == "cross-validation" and selection["folds"] == 4 and manifest["evoked_classes"] is None
    assert selection["candidates"] == report["candidates"]
    assert manifest["model"] == report["model"] == simplest_best(selection["candidates"])
    assert ("GRU" in layer_classes(tmp_path / "bundle")) == (manifest["model"] == "gru")
    assert manifest["metrics"]["held_out_accuracy"] == selection["candidates"][manifest["model"]]["accuracy"]
    # The kept head was trained on every training clip, and has learnt them.
    assert manifest["refit"] == report["refit"] and report["refit"]["clips"] == report["dataset"]["train_clips"] == 8
    if manifest["model"] == "linear":
        assert report["training"]["clip_accuracy"] == 1.0 and report["refit"]["method"] == "L-BFGS"

    assert load_bundle(tmp_path / "bundle").labels == ["arm_wrestling", "cleaning_pool"]


@pytest.mark.parametrize("subset", [None, [1, 4, 6]], ids=["every feature", "evoked classes"])
def test_the_linear_head_runs_in_litert_as_in_keras(subset):
    """live's LiteRT head of a linear model (its NewestFrame, and its FeatureSubset where it reads
    some of the features, among builtin ops) gives Keras' probabilities, on partial and full windows."""
    from live.backbones import fingerprint
    from live.runtimes import LiteRTModel, compiled_call, make_head
    from training.model import build_sequence_model

    linear_model = build_sequence_model("linear", SEQ_LEN, 8, 3, np.zeros(8), np.ones(8), subset)
    features = np.random.default_rng(0).normal(size=(3, SEQ_LEN, 8)).astype(np.float32)
    mask = np.arange(SEQ_LEN)[None, :] < np.array([[1], [11], [SEQ_LEN]])  # partial and full windows
    head = make_head(linear_model, fingerprint(linear_model), "litert")
    assert isinstance(head, LiteRTModel)
    np.testing.assert_allclose(head(features, mask), compiled_call(linear_model)(features, mask), atol=1e-4)


def test_on_movinet_the_linear_head_reads_the_kinetics_classes_each_action_evokes(cache_dir):
    """On real clips, MoViNet's features (its Kinetics-600 scores) evoke the action's own Kinetics
    class most (a class with no clips, none), and a linear head built on the classes evoked reads those scores and no others:
    replacing every other score with noise leaves its probabilities as they were."""
    from live.backbones import backbone_class_names
    from live.runtimes import compiled_call
    from training.config import FitConfig
    from training.datasets import Clip
    from training.fit import evoked_classes, evoked_subset, feature_statistics, prepare_features, resolved_features
    from training.model import EVOKED_PER_CLASS, build_sequence_model
    from training.windows import window

    labels = ["arm_wrestling", "cleaning_pool"]
    clips = [Clip(CLIPS / "arm_wrestling.mp4", labels[0], "a"), Clip(CLIPS / "pool_cleaning.mp4", labels[1], "b")]
    config = resolved_features(FitConfig.from_options(data=CLIPS, out="-", backbone="movinet_a0_stream").features, clips)
    features = prepare_features(clips, config, progress=False)[0]
    # A class whose every clip was skipped (too short, unreadable) is in the labels but evokes nothing.
    evoked = evoked_classes(features, clips, labels + ["all_its_clips_skipped"])
    assert list(evoked) == labels
    names = backbone_class_names("movinet_a0_stream")
    assert [names[evoked[label][0]] for label in labels] == ["arm wrestling", "cleaning pool"]
    assert all(len(indices) == EVOKED_PER_CLASS for indices in evoked.values())
    subset = evoked_subset(evoked)

    model = build_sequence_model("linear", SEQ_LEN, 600, 2, *feature_statistics(features, clips), subset)
    windows, masks = zip(*(window(features[str(clip.path)], 0, SEQ_LEN, SEQ_LEN) for clip in clips))
    windows, masks = np.stack(windows), np.stack(masks)
    noisy = np.random.default_rng(0).normal(0, 10, size=windows.shape).astype(np.float32)
    noisy[..., subset] = windows[..., subset]
    run = compiled_call(model)
    np.testing.assert_allclose(run(noisy, masks), run(windows, masks), atol=1e-6)
    assert not np.allclose(run(windows[::-1], masks[::-1]), run(windows, masks))  # it does read them
