"""The default bundle, weights/kinetics600 (MoViNet-A0-Stream's own Kinetics-600 classifier),
on real clips, and transfer training on the streaming backbone, run as real subprocesses."""
import json
import shutil
from collections import Counter

import cv2
import numpy as np
import pytest

from conftest import CLIPS, MODELS, ROOT, assert_clean_error, read_jsonl, run_command, write_clip

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

KINETICS = ROOT / "weights" / "kinetics600"
# The Kinetics-600 classes that name what each clip shows (../shared/README.md says what that
# is), with why: read from the clip and the 600 class names, not from the model's outputs.
WHY_ACCEPTED = {
    "arm_wrestling.mp4": {  # two people arm wrestling at a table (itself a Kinetics clip)
        "arm wrestling": "the clip's action, named as such",
    },
    "basketball.mp4": {  # two players in a gym shooting at one hoop in turn, a shooting drill
        "shooting basketball": "most of the clip is one shot after another",
        "playing basketball": "the general class for basketball play on a court",
        "dribbling basketball": "the players dribble between their shots",
    },
    "eye_makeup_320x240.avi": {  # a woman draws on her eyelid with a pencil/brush, close up
        "putting on eyeliner": "a pencil line along the upper eyelid",
        "putting on mascara": "the other eye make-up class; at 320x240 the tool could be a lash brush",
    },
    "flipping_pancake.mkv": {  # a woman in a kitchen tossing a pancake in a pan
        "flipping pancake": "the clip's action, named as such",
    },
    "pool_cleaning.mp4": {  # someone skimming a swimming pool with a net on a pole
        "cleaning pool": "the clip's action, named as such",
    },
    "v_CricketShot_g04_c01_rgb.gif": {  # a televised match: bowler, batsman, umpire (UCF101 CricketShot)
        "playing cricket": "Kinetics-600's only cricket class",
    },
}
ACCEPTED = {clip: set(why) for clip, why in WHY_ACCEPTED.items()}


def read_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def top_labels(record, k=3):
    return [label for label, _ in record["top"][:k]]


def live_jsonl(tmp_path, clip, *args, name="out.jsonl", env=None):
    jsonl = tmp_path / name
    process = run_command("live", "--file", clip, "--jsonl", jsonl, "--no-display", *args, env=env)
    assert process.returncode == 0, process.stderr
    return read_jsonl(jsonl), process


@pytest.mark.parametrize("clip", sorted(ACCEPTED))
@pytest.mark.slow
def test_default_bundle_names_the_real_action(clip, cache_dir, tmp_path):
    records, process = live_jsonl(tmp_path, CLIPS / clip)  # no --weights: the default bundle
    labels = (MODELS / "movinet_a0_stream_k600" / "labels.txt").read_text().splitlines()
    assert len(labels) == 600 and {label for r in records for label, _ in r["top"]} <= set(labels)
    # The default record names the top 5 of 600 labels, not every probability: under 1 KB.
    assert all(len(r["top"]) == 5 and "probs" not in r for r in records)
    assert max(len(line.encode()) for line in (tmp_path / "out.jsonl").read_text().splitlines()) <= 1024
    print(clip, "top 3 at the end:", top_labels(records[-1]))
    assert ACCEPTED[clip] & set(top_labels(records[-1]))
    # The label the overlay showed most often over the clip is one of the accepted actions.
    assert Counter(r["label"] for r in records).most_common(1)[0][0] in ACCEPTED[clip]


def joined_clip(path, first, second, size=(340, 256), fps=25.0):
    """`first` then `second`, re-timed to one frame rate by taking each clip's frames in order."""
    frames = [cv2.resize(f, size) for clip in (first, second) for f in read_frames(CLIPS / clip)]
    write_clip(path, frames, fps=fps)
    return len(read_frames(CLIPS / first)) / fps  # when the second action starts, in seconds


@pytest.mark.slow
def test_label_follows_a_change_of_action_within_3_seconds(cache_dir, tmp_path):
    change = joined_clip(tmp_path / "joined.avi", "arm_wrestling.mp4", "pool_cleaning.mp4")
    records, _ = live_jsonl(tmp_path, tmp_path / "joined.avi")
    before = [r["label"] for r in records if 1.0 <= r["time"] < change]
    assert Counter(before)["arm wrestling"] / len(before) >= 0.9  # steady within one action
    after = [r for r in records if r["time"] >= change]
    followed = next(r["time"] for r in after if r["label"] == "cleaning pool")
    print(f"change at {change:.2f} s, label followed at {followed:.2f} s")
    assert followed - change <= 3.0
    settled = [r["label"] for r in after if r["time"] >= followed]
    assert Counter(settled)["cleaning pool"] / len(settled) >= 0.9


@pytest.mark.slow
def test_sources_at_different_rates_are_sampled_at_the_same_times(cache_dir, tmp_path):
    """A 10 fps and a 50 fps copy of one clip: the frames sampled at the model's 5 fps are taken
    at the same moments, so they are the same pictures and give the same probabilities."""
    frames = read_frames(CLIPS / "pool_cleaning.mp4")  # 30 fps, 10 s
    sampled = {}
    for rate in (10, 50):
        copy = [frames[min(round(i * 30 / rate), len(frames) - 1)] for i in range(int(len(frames) / 30 * rate))]
        write_clip(tmp_path / f"copy{rate}.avi", copy, fps=rate)
        records, _ = live_jsonl(tmp_path, tmp_path / f"copy{rate}.avi", "--jsonl-probs", name=f"{rate}.jsonl")
        sampled[rate] = {round(r["time"], 3): r["probs"] for r in records if r["sampled"]}
    assert sorted(sampled[10]) == sorted(sampled[50]) == [round(0.2 * i, 3) for i in range(50)]
    for time in sampled[10]:
        np.testing.assert_allclose(sampled[10][time], sampled[50][time], atol=1e-4)


@pytest.mark.parametrize("seed", range(20))
def test_a_source_that_drops_frames_does_not_stretch_the_window(seed):
    """A 30 fps camera that loses a third of its frames at random, and three runs of 4, still
    gives the model about one frame every 0.2 s: 20 frames span 3.8 s of the scene as in
    training, give or take the source's gaps at either end. Counting frames instead (every 6th,
    30 fps / 5 fps) gives 32 frames in 10 s and windows of 6.1 s on seed 0."""
    from live.frames import TimeSampler

    rng = np.random.default_rng(seed)
    lost = set(rng.choice(300, 100, replace=False)) | {i for start in (40, 140, 220) for i in range(start, start + 4)}
    arrived = [i / 30 for i in range(300) if i not in lost]
    sampler = TimeSampler(frame_step=1, frame_rate=5.0)
    kept = [t for t in arrived if sampler.keep(t)]
    assert 48 <= len(kept) <= 51, len(kept)  # 10 s at 5 fps
    spans = [kept[i + 19] - kept[i] for i in range(len(kept) - 19)]
    assert 3.8 - 0.6 <= min(spans) and max(spans) <= 3.8 + 0.6, (min(spans), max(spans))


@pytest.fixture(scope="module")
def movinet_data(tmp_path_factory, cache_dir):
    """Segments of three shared clips, a class each."""
    data = tmp_path_factory.mktemp("movinet-data")
    process = run_command("train", "demo-data", CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4",
                          CLIPS / "basketball.mp4", "--to", data, "--segments", 4)
    assert process.returncode == 0, process.stderr
    return data


@pytest.fixture(scope="module")
def movinet_frames_bundle(tmp_path_factory, movinet_data):
    """A GRU trained on MoViNet's per-frame embedding (movinet_a0_stream_frames) of the same segments."""
    out = tmp_path_factory.mktemp("movinet-frames-out") / "bundle"
    process = run_command("train", "fit", "--data", movinet_data, "--out", out, "--backbone", "movinet_a0_stream_frames",
                          "--model", "gru", "--epochs", 4, "--no-refit", "--quiet")
    assert process.returncode == 0, process.stderr
    return out


@pytest.fixture(scope="module")
def movinet_bundle(tmp_path_factory, movinet_data):
    """A sequence model trained on MoViNet features of segments of three shared clips: the default
    --model auto, which on MoViNet is the linear head on the Kinetics classes the clips evoke."""
    data = movinet_data
    out = tmp_path_factory.mktemp("movinet-out") / "bundle"
    process = run_command("train", "fit", "--data", data, "--out", out, "--backbone", "movinet_a0_stream",
                          "--epochs", 8, "--no-refit", "--quiet")
    assert process.returncode == 0, process.stderr
    return out


@pytest.mark.slow
def test_trained_movinet_bundle_names_its_backbone_in_the_store_and_its_rate(movinet_bundle):
    manifest = json.loads((movinet_bundle / "manifest.json").read_text())
    assert manifest["backbone"] == "movinet_a0_stream" and manifest["frame_rate"] == 5.0
    # The model is named by content, as the default bundle names it, and not copied.
    assert manifest["stored_files"]["backbone"] == json.loads((KINETICS / "manifest.json").read_text())[
        "stored_files"]["backbone"]
    assert "backbone_file" not in manifest and not list(movinet_bundle.glob("*.tflite"))
    assert manifest["stream_state"]["reset_every"] >= 2
    # auto on MoViNet: linear (reading the Kinetics classes each action evokes most) against gru,
    # here (--no-refit) on the validation clips; linear is kept.
    assert manifest["model"] == "linear" and list(manifest["model_selection"]["candidates"]) == ["linear", "gru"]
    assert manifest["model_selection"]["by"] == "validation"
    evoked = manifest["evoked_classes"]
    assert [evoked[label][0] for label in ("arm_wrestling", "cleaning_pool")] == ["arm wrestling", "cleaning pool"]


@pytest.mark.slow
@pytest.mark.parametrize("bundle_fixture", ["movinet_bundle", "movinet_frames_bundle"])
def test_live_equals_train_predict_at_every_window(bundle_fixture, request, cache_dir, tmp_path):
    """Every window live holds, partial ones while the buffer fills and shifted ones after,
    against `train predict`'s windows for the same clip (116 sampled frames here), on MoViNet's
    logits and on its per-frame embedding."""
    movinet_bundle = request.getfixturevalue(bundle_fixture)
    joined_clip(tmp_path / "joined.avi", "arm_wrestling.mp4", "pool_cleaning.mp4")
    records, _ = live_jsonl(tmp_path, tmp_path / "joined.avi", "--weights", movinet_bundle, "--jsonl-probs")
    process = run_command("train", "predict", "--weights", movinet_bundle, "--json", tmp_path / "joined.avi",
                          tmp_path / "joined.avi")  # named twice: predicted once, the cache stays whole
    assert process.returncode == 0, process.stderr
    (prediction,) = [json.loads(line) for line in process.stdout.splitlines()]
    windows = prediction["windows"]
    by_frame = {r["frame"]: r for r in records}
    assert [w["end_frame"] for w in windows] == [r["frame"] for r in records if r["sampled"]]
    assert len(windows) >= 60 and windows[25]["filled"] == 20 and windows[5]["filled"] == 6
    for entry in windows:
        record = by_frame[entry["end_frame"]]
        assert record["filled"] == entry["filled"]
        np.testing.assert_allclose(record["probs"], entry["probs"], atol=1e-4)


def test_a_bundle_carrying_a_damaged_backbone_file_is_refused(tmp_path, cache_dir):
    """A bundle may carry its backbone's file itself (one made before the model store, or on a
    file the store does not know): a damaged or missing carried file is refused."""
    bundle = tmp_path / "kinetics600"
    shutil.copytree(KINETICS, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["stored_files"]["backbone"]
    manifest["backbone_file"] = "backbone.tflite"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray((MODELS / "movinet_a0_stream_k600" / "model_int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "backbone.tflite").write_bytes(bytes(data))
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", bundle, "--no-display")
    assert_clean_error(process, "fingerprint")
    (bundle / "backbone.tflite").unlink()
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", bundle, "--no-display")
    assert_clean_error(process, "missing its backbone file")


def test_streaming_backbone_refuses_other_runtimes(cache_dir):
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--runtime", "litert-int8",
                          "--no-display")
    assert_clean_error(process, "(movinet_a0_stream) cannot run with --runtime litert-int8; it runs with litert")


def test_readme_first_command_runs_the_shared_clip_through_the_store():
    """The README's first command classifies a clip of the data folder beside the clone, with
    the model found through the model store there."""
    first = (ROOT / "README.md").read_text().split("```", 2)[1]
    assert "LIVE_MODELS=../shared/models" in first and "../shared/clips/arm_wrestling.mp4" in first
    assert len(read_frames(CLIPS / "arm_wrestling.mp4")) == 280


def test_default_bundle_on_the_jax_backend(cache_dir, tmp_path):
    """The streaming backbone is LiteRT on any backend; the head runs through jax.jit there."""
    pytest.importorskip("jax")
    import live

    records, _ = live_jsonl(tmp_path, CLIPS / "basketball.mp4", "--max-frames", 40, "--jsonl-probs",
                            name="jax.jsonl", env={"KERAS_BACKEND": "jax"})
    on_jax = np.array([r["probs"] for r in records])
    on_tensorflow = np.array([r.probs for r in live.load().stream(CLIPS / "basketball.mp4", max_frames=40)])
    np.testing.assert_allclose(on_jax, on_tensorflow, atol=1e-4)


@pytest.mark.slow
def test_events_of_a_joined_clip(cache_dir, tmp_path):
    """Arm wrestling then pool cleaning: two segments, in order, meeting near the change."""
    change = joined_clip(tmp_path / "joined.avi", "arm_wrestling.mp4", "pool_cleaning.mp4")
    events = tmp_path / "events.jsonl"
    records, _ = live_jsonl(tmp_path, tmp_path / "joined.avi", "--events", events)
    segments = read_jsonl(events)
    print(json.dumps(segments))
    assert [s["label"] for s in segments] == ["arm wrestling", "cleaning pool"]
    assert all(s["stream"] == str(tmp_path / "joined.avi") for s in segments)
    first, second = segments
    assert first["start"] <= 1.0 and abs(first["end"] - change) <= 3.0
    # Between them, a gap while no label is confident (>= 0.5); the new one opens once it has held
    # for 1 s, within 3 s of following the change plus that second.
    assert first["end"] <= second["start"] <= change + 4.0
    assert second["end"] == pytest.approx(records[-1]["time"], abs=0.05)
    assert sum(s["frames"] for s in segments) <= len(records)
    assert 0.5 <= min(s["peak_score"] for s in segments) <= 1.0


@pytest.mark.slow
def test_looped_file_and_ctrl_c_close_the_last_event(cache_dir, tmp_path):
    """--loop replays without end at --max-fps; Ctrl-C stops it, and the open segment is
    written with the time it reached."""
    import signal
    import subprocess

    from conftest import wait_for

    events, jsonl = tmp_path / "events.jsonl", tmp_path / "out.jsonl"
    process = subprocess.Popen(["live", "--file", str(CLIPS / "arm_wrestling.mp4"), "--loop", "--max-fps", "100",
                                "--no-display", "--events", str(events), "--jsonl", str(jsonl)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Past the clip's 280 frames: only the loop can have made these.
    assert wait_for(lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) > 400, 120), "no loop"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == list(range(len(records)))  # frames keep counting
    times = [r["time"] for r in records]
    assert all(b > a for a, b in zip(times, times[1:]))  # and time keeps rising
    (segment,) = read_jsonl(events)
    assert segment["label"] == "arm wrestling" and segment["end"] >= 10.0  # closed at Ctrl-C
    fps = float(stderr.split(" fps")[0].split(", ")[-1])  # the summary: "frames read N, classified M, X fps"
    assert fps <= 101, stderr  # --max-fps held it (it runs at ~200 fps unpaced here)
