"""`fit`'s stages, each on its own: prepare (real clips through a real backbone), then choose,
refit, evaluate and write on features made up in memory (two classes whose frames drift apart),
so that each is checked without the ones before it."""
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


def test_choose_trains_every_candidate_and_keeps_the_best(tmp_path):
    """Stage 2: auto on image features trains gru and linear on the same windows of the training
    clips less a validation split (whole sessions), and keeps the better by validation."""
    from training.fit import choose

    config, prepared = made_up(tmp_path)
    choice = choose(config, prepared)
    assert set(choice.trained) == {"gru", "linear"} and choice.kind in choice.trained
    assert {c.group for c in choice.val_clips}.isdisjoint({c.group for c in choice.fit_clips})
    assert sorted(choice.fit_clips + choice.val_clips, key=lambda c: str(c.path)) == prepared.train_clips
    best = max(choice.candidates.values(), key=lambda s: s["validation_accuracy"])["validation_accuracy"]
    assert choice.candidates[choice.kind]["validation_accuracy"] == best
    assert choice.evoked is None and choice.subset_for("linear") is None  # image features: no class scores


def test_refit_trains_the_kept_head_again_on_every_training_clip(tmp_path):
    """Stage 3: the kept head, trained from scratch on the training and validation clips for the
    epochs validation chose; --no-refit keeps the head as validated."""
    from dataclasses import replace

    from training.fit import choose, refit

    config, prepared = made_up(tmp_path)
    config = replace(config, model_kind="linear")
    choice = choose(config, prepared)
    model, record = refit(config, prepared, choice)
    assert model is not choice.model
    assert record == {"clips": len(prepared.train_clips), "epochs": choice.best_epoch + 1,
                      "windows": len(prepared.train_clips) * config.windows_per_clip}
    assert refit(replace(config, refit=False), prepared, choice) == (choice.model, None)


def test_evaluate_scores_the_head_and_every_candidate_on_the_test_clips(tmp_path):
    """Stage 4: the bundle's head's metrics on the test clips (first window and all windows), and
    each candidate's accuracy recorded beside its scores; no test clips, no metrics."""
    from dataclasses import replace

    from live.runtimes import compiled_call
    from training.fit import choose, evaluate, evaluate_clips, refit

    config, prepared = made_up(tmp_path)
    config = replace(config, model_kind="linear")
    choice = choose(config, prepared)
    model, record = refit(config, prepared, choice)
    test = evaluate(config, prepared, choice, model, record)
    assert test["all_windows"]["clips"] == len(prepared.test_clips) == 4
    assert test == evaluate_clips(compiled_call(model), prepared.test_clips, prepared.features, ["a", "b"], SEQ_LEN)
    assert 0 <= choice.candidates["linear"]["test_accuracy_all_windows"] <= 1
    assert evaluate(config, replace(prepared, test_clips=[]), choice, model, record) is None


def test_write_puts_the_bundle_its_report_and_the_summary(tmp_path, capsys):
    """Stage 5: the bundle (head, labels, manifest with the choice), its report and plots, and
    the summary's last line naming the head and its held-out accuracy."""
    from dataclasses import replace

    from live.bundle import load_bundle
    from training.fit import choose, evaluate, refit, write

    config, prepared = made_up(tmp_path)
    config = replace(config, model_kind="linear")
    choice = choose(config, prepared)
    model, record = refit(config, prepared, choice)
    test = evaluate(config, prepared, choice, model, record)
    report = write(config, prepared, choice, model, record, test, started=0.0)
    bundle = Path(config.out)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"] == report["model"] == "linear" and manifest["refit"] == record
    assert manifest["model_selection"]["by"] == "requested"
    assert json.loads((bundle / "report.json").read_text()) == json.loads(json.dumps(report))
    assert {"confusion_matrix.png", "training_curves.png"} <= {p.name for p in bundle.iterdir()}
    assert load_bundle(bundle).labels == ["a", "b"]
    last = capsys.readouterr().err.strip().splitlines()[-1]
    accuracy = test["all_windows"]["accuracy"]
    assert last.startswith(f"wrote {bundle}: linear head, {accuracy:.1%} on held-out clips (test, chance 50.0%)")
