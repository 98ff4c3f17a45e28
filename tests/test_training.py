"""`train` end to end on real features: the temporal task that one frame can't solve, the
live/offline agreement, the report, and robustness to bad data."""
import json
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

import temporal_clips
from conftest import CLIPS, assert_clean_error, read_jsonl, run_command, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.real_data]  # every test here starts live or train, or fits a model

LITE0 = ("--backbone", "efficientnet_lite0")
# The suite's split of the temporal task: fold 1 of tests/benchmarks/temporal_eval.py's
# cross-validation, not fold 0 (whose photos the clips were tuned on), so the fixture's one fit
# (seed 0) is that benchmark's run (3x, fold 1, gru, seed 0), one of the 12 the README reports.
FOLD = 1
# Lowest within-pair accuracy the run must reach: the worst of the README's 12 runs on these clips
# (4 folds x 3 seeds, commit bc6ca2f), so every run it reports satisfies them: mean 0.854,
# saturation 0.62 (10/16), zoom 0.67; fade and focus, perfect in every run, may lose one clip of
# 16. A fit is not bit-exact across machines and thread counts.
MIN_WITHIN_PAIR = {"mean": 0.85, "fade_in/fade_out": 0.93, "focus_in/focus_out": 0.93,
                   "saturate/desaturate": 0.62, "zoom_in/zoom_out": 0.66}


@pytest.fixture(scope="module")
def temporal_data(tmp_path_factory):
    return temporal_clips.make_fold(tmp_path_factory.mktemp("temporal"), FOLD)


def fit(data, out, *args):
    """`train fit` of the gru head alone, not trained again: what these tests check is neither the
    head choice nor the refit (--model auto would train a second head, the refit the first again,
    and cost CI their time)."""
    process = run_command("train", "fit", "--data", data, "--out", out, *LITE0, "--model", "gru", "--no-refit",
                          "--quiet", *args)
    assert process.returncode == 0, process.stderr
    return Path(out)


@pytest.fixture(scope="module")
def temporal_bundle(temporal_data, tmp_path_factory, cache_dir):
    # --no-augment, and fit()'s --no-refit: the README's runs, whose worst figures MIN_WITHIN_PAIR
    # holds it to, predate speed augmentation and the refit on the validation clips (which would
    # double this fit's time).
    return fit(temporal_data, tmp_path_factory.mktemp("out") / "temporal", "--no-augment")


def predictions(bundle, videos):
    process = run_command("train", "predict", "--weights", bundle, "--json", *videos)
    assert process.returncode == 0, process.stderr
    return [json.loads(line) for line in process.stdout.splitlines()]


def within_pair_wins(bundle, data):
    """{pair: [is the clip's class more probable than its time reversal?]} over the held-out clips."""
    labels = (Path(bundle) / "labels.txt").read_text().split()
    clips = sorted((Path(data) / "test").glob("*/*.avi"))
    wins = {pair: [] for pair in temporal_clips.PAIRS}
    for clip, result in zip(clips, predictions(bundle, clips)):
        label = clip.parent.name
        probs = result["first_window"]["probs"]
        pair = next(pair for pair in temporal_clips.PAIRS if label in pair)
        wins[pair].append(probs[labels.index(label)] > probs[labels.index(temporal_clips.TWIN[label])])
    return wins


def within_pair_accuracy(bundle, data):
    wins = [win for pair_wins in within_pair_wins(bundle, data).values() for win in pair_wins]
    return float(np.mean(wins)), len(wins)


def model_layer_classes(bundle):
    """Class names of the layers in a bundle's model.keras, read from its config without Keras."""
    with zipfile.ZipFile(Path(bundle) / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
    return {layer["class_name"] for layer in config["config"]["layers"]}


def test_temporal_task_is_learned_from_order(temporal_bundle, temporal_data):
    """The default model is a GRU and tells each change from its time reversal on photos it
    never saw, as well as every run of the README's cross-validation did (4 folds x 3 seeds on
    these clips): on fold 1, not the fold the clips were tuned on, at least MIN_WITHIN_PAIR
    over all pairs and on each pair. Far above chance (0.5), but saturation and zoom are weak:
    a grey photo's saturation clips are one still picture, and zoom runs the other way in
    feature space for some photos."""
    assert "GRU" in model_layer_classes(temporal_bundle)
    wins = within_pair_wins(temporal_bundle, temporal_data)
    accuracy = float(np.mean([win for pair_wins in wins.values() for win in pair_wins]))
    per_pair = {"/".join(pair): float(np.mean(pair_wins)) for pair, pair_wins in wins.items()}
    print(f"within-pair accuracy on held-out photos: {accuracy:.1%}; per pair {per_pair}")
    assert all(len(pair_wins) == 2 * 2 * len(temporal_clips.FOLDS[FOLD]) for pair_wins in wins.values())
    assert accuracy >= MIN_WITHIN_PAIR["mean"]
    assert all(per_pair[pair] >= MIN_WITHIN_PAIR[pair] for pair in per_pair), per_pair


def test_bundle_and_report(temporal_bundle):
    manifest = json.loads((temporal_bundle / "manifest.json").read_text())
    assert manifest["backbone"] == "efficientnet_lite0" and manifest["feature_size"] == 1280
    assert manifest["seq_len"] == 20 and manifest["model"] == "gru"
    report = json.loads((temporal_bundle / "report.json").read_text())
    assert report["dataset"]["layout"] == "split folders"
    assert report["dataset"]["test_clips"] == 64
    test = report["test"]["all_windows"]
    assert len(test["confusion_matrix"]) == 8 and sum(map(sum, test["confusion_matrix"])) == 64
    assert set(test["per_class"]) == set(temporal_clips.TWIN)
    assert report["timings"]["extraction_fps"] is None or report["timings"]["extraction_fps"] > 0
    for png in ("confusion_matrix.png", "training_curves.png"):
        assert (temporal_bundle / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in temporal_bundle.parent.iterdir()] == ["temporal"]  # no staging folder left behind


def test_live_and_offline_agree(temporal_bundle, tmp_path):
    """At every frame of 80, the GRU's probabilities in live equal train predict's window that
    ends there: partial windows while the buffer fills (frames 0-18), the first full one (19)
    and shifted ones after it."""
    clip = CLIPS / "eye_makeup_320x240.avi"  # 25 fps, the bundle's recorded rate: every frame is sampled
    jsonl = tmp_path / "live.jsonl"
    process = run_command("live", "--file", clip, "--weights", temporal_bundle, "--jsonl", jsonl,
                          "--jsonl-probs", "--no-display", "--max-frames", 80)
    assert process.returncode == 0, process.stderr
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records if r["sampled"]] == list(range(80))
    assert [r["filled"] for r in records[:21]] == list(range(1, 21)) + [20]
    windows = {w["end_frame"]: w for w in predictions(temporal_bundle, [clip])[0]["windows"]}
    for record in records:
        window = windows[record["frame"]]
        assert window["filled"] == record["filled"]
        np.testing.assert_allclose(record["probs"], window["probs"], atol=1e-4, rtol=0)


def test_evaluate(temporal_bundle, temporal_data):
    """Evaluate scores the clips fit held out, from the same cached features, so it repeats the
    report exactly. With `--runtime keras` its head is the very Keras computation fit scored
    with; the default LiteRT head agrees with it to 1e-4 (tested below), which could turn a
    near-tie, so the exact comparison is made on the Keras head."""
    process = run_command("train", "evaluate", "--weights", temporal_bundle, "--data", temporal_data, "--json",
                          "--runtime", "keras")
    assert process.returncode == 0, process.stderr
    metrics = json.loads(process.stdout)
    report = json.loads((temporal_bundle / "report.json").read_text())
    assert len(metrics["clips"]) == report["dataset"]["test_clips"]
    for scoring in ("all_windows", "first_window"):
        assert metrics[scoring] == report["test"][scoring]
    text = run_command("train", "evaluate", "--weights", temporal_bundle, "--data", temporal_data)
    assert "confusion matrix" in text.stdout and "precision" in text.stdout


def test_predict_text_output(temporal_bundle):
    process = run_command("train", "predict", "--weights", temporal_bundle, CLIPS / "basketball.mp4")
    assert process.returncode == 0, process.stderr
    assert "first window:" in process.stdout and "all windows:" in process.stdout


def test_existing_bundle_needs_force(temporal_bundle, temporal_data):
    process = run_command("train", "fit", "--data", temporal_data, "--out", temporal_bundle, *LITE0)
    assert_clean_error(process, "already exists", "--force")
    assert (temporal_bundle / "model.keras").exists()


def test_bad_clips_are_skipped_and_reported(temporal_data, tmp_path, cache_dir):
    data = tmp_path / "data"
    for label in ("fade_in", "fade_out"):
        for clip in sorted((temporal_data / "train" / label).glob("*.avi"))[:12]:
            (data / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, data / label / clip.name)
    (data / "fade_in" / "empty.avi").write_bytes(b"")
    (data / "fade_out" / "garbage.mp4").write_text("not a video\n" * 50)
    out = fit(data, tmp_path / "bundle", "--epochs", 3)
    report = json.loads((out / "report.json").read_text())
    skipped = {Path(s["video"]).name for s in report["skipped"]}
    assert skipped == {"empty.avi", "garbage.mp4"}


def test_interrupted_extraction_leaves_a_valid_cache(temporal_data, tmp_path):
    cache = tmp_path / "cache"
    command = ["train", "fit", "--data", str(temporal_data), "--out", str(tmp_path / "b"), *LITE0,
               "--cache", str(cache), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list(cache.glob("*/*.npy"))) >= 20 or process.poll() is not None, 180)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "b").exists()  # no half-written bundle
    entries = list(cache.glob("*/*"))
    assert entries and all(e.suffix == ".npy" for e in entries)  # no temporary files left
    for entry in entries:
        assert np.load(entry).shape[1] == 1280


def test_predict_skips_a_file_that_is_no_video_and_says_so(temporal_bundle, tmp_path):
    """A missing clip is an error before anything runs (tests/test_train_checks.py); a file that
    is there but does not decode is skipped with a warning, and the others are predicted."""
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 50)
    process = run_command("train", "predict", "--weights", temporal_bundle, "--json", bad,
                          CLIPS / "v_CricketShot_g04_c01_rgb.gif")
    assert process.returncode == 1
    assert "Traceback" not in process.stderr and "is not a video" in process.stderr
    [result] = [json.loads(line) for line in process.stdout.splitlines()]
    assert result["video"].endswith(".gif")
    assert [w["filled"] for w in result["windows"][18:21]] == [19, 20, 20]  # the gif was read past a window


def test_gru_head_runs_in_litert_with_builtin_ops(temporal_bundle, temporal_data, cache_dir, capfd):
    """The gru head converts to LiteRT with builtin ops only (no Flex/TensorFlow ops,
    no while loop: the GRU is unrolled over the window), and on real features gives the Keras
    model's probabilities to 1e-4, on full windows and on partial ones (1..19 frames, as live
    sees while it warms up)."""
    import re

    from ai_edge_litert.interpreter import Interpreter

    from live.bundle import load_bundle
    from live.runtimes import LiteRTModel, compiled_call, litert_file, make_head
    from training.config import FeatureConfig
    from training.datasets import Clip, load_dataset
    from training.fit import prepare_features
    from training.windows import window

    bundle = load_bundle(temporal_bundle)
    capfd.readouterr()
    head = make_head(bundle.model, bundle.fingerprint, "litert")
    assert isinstance(head, LiteRTModel), capfd.readouterr().err  # no fallback, so no `note:` either
    interpreter = Interpreter(model_path=str(litert_file(bundle.model, bundle.fingerprint)))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    # Builtin ops have upper-case names; custom and Flex (select TensorFlow) ops are CamelCase.
    assert ops and all(re.fullmatch(r"[A-Z][A-Z0-9_]*", op) for op in ops), ops
    assert not ops & {"WHILE", "CUSTOM", "DELEGATE"}, ops

    clips = load_dataset(temporal_data).test[::8] + [Clip(CLIPS / "eye_makeup_320x240.avi", "", "")]
    features, skipped, _, _ = prepare_features(clips, FeatureConfig("efficientnet_lite0"), progress=False)
    assert not skipped and len(features) == len(clips)
    keras_head = compiled_call(bundle.model)
    compared = 0
    for clip_features in features.values():
        for start, length in [(0, n) for n in (1, 2, 3, 7, 12, 19, 20)] + [(len(clip_features) - 20, 20)]:
            frames, mask = window(clip_features, start, length, bundle.seq_len)
            litert, keras_probs = head(frames[None], mask[None]), keras_head(frames[None], mask[None])
            np.testing.assert_allclose(litert, keras_probs, atol=1e-4, rtol=0)
            compared += 1
    assert compared == 8 * len(clips)
