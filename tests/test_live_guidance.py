"""What `live` tells a new user: shipped bundles by name from any folder, runtimes a bundle
cannot use refused before TensorFlow loads with the ones it can, a window asked for without a
screen refused, labels shown as words, and a file's own rate in the summary when it runs beside
a live stream."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import CLIPS, KINETICS, assert_clean_error, free_port, run_command, serve_stream, write_clip

# `live` with TensorFlow and Keras made unimportable: what it says must come before it needs them.
WITHOUT_TENSORFLOW = ("import sys; sys.modules['tensorflow'] = sys.modules['keras'] = None; "
                      "from live.cli import command; sys.argv[0] = 'live'; command()")


def live_without_tensorflow(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "clip.avi", [np.full((64, 80, 3), 8 * i, np.uint8) for i in range(12)])


@pytest.mark.parametrize("given", ["demo", "weights/demo"])
def test_a_shipped_bundle_by_name_from_another_folder(given, clip, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = run_command("live", "--file", clip, "--weights", given, "--no-display", "--jsonl", "-", cwd=elsewhere)
    assert process.returncode == 0, process.stderr
    assert len(process.stdout.splitlines()) == 12
    assert f"model: {KINETICS.parent / 'demo'} (efficientnet_lite0 features" in process.stderr


def test_a_missing_bundle_lists_the_shipped_ones_and_never_suggests_training_over_them(clip, tmp_path):
    process = live_without_tensorflow("--file", clip, "--weights", "no-such-bundle", "--no-display", cwd=tmp_path)
    error = assert_clean_error(process, "no model bundle at no-such-bundle", "demo, kinetics600")
    assert "--out weights/kinetics600" not in error and "--out weights/demo" not in error


@pytest.mark.real_data  # the default bundle's model comes from the data folder
@pytest.mark.parametrize("runtime", ["keras", "litert-int8", "openvino-int8"])
def test_a_runtime_movinet_cannot_use_is_refused_before_tensorflow(runtime, clip):
    process = live_without_tensorflow("--file", clip, "--runtime", runtime, "--no-display")
    assert_clean_error(process, f"cannot run with --runtime {runtime}; it runs with litert")
    assert process.returncode == 2


def test_openvino_int8_on_an_image_bundle_names_the_command_that_makes_it(clip):
    process = live_without_tensorflow("--file", clip, "--weights", "demo", "--runtime", "openvino-int8",
                                      "--no-display")
    assert_clean_error(process, "has no int8 backbone", "`train quantize --weights demo --data DIR`")


def test_display_without_a_screen_is_an_error(clip):
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    process = run_command("live", "--file", clip, "--weights", "demo", "--display", env=env)
    assert_clean_error(process, "--display: no screen")
    assert process.returncode == 2
    process = run_command("live", "--file", clip, "--weights", "demo", env=env)  # by default: headless, said once
    assert process.returncode == 0 and "note: no screen" in process.stderr


def test_labels_are_shown_as_words_and_recorded_as_named():
    """The overlay shows `playing_basketball` (a folder name) as "playing basketball"; the record
    keeps the bundle's label."""
    from live.pipeline import Result
    from live.render import OverlayRenderer

    result = Result(None, ["playing_basketball", "golf_swing"], 1, 1, np.array([0.9, 0.1], np.float32), True,
                    {"latency_ms": 1.0})
    status = {"source_fps": 25.0, "model_fps": 5.0, "model_ms": 6.0}
    texts = [text for text, *_ in OverlayRenderer(top_k=2).rows(result, status)]
    assert texts[:3] == ["playing basketball 90%", "playing basketball 90%", "golf swing 10%"]
    assert result.label == "playing_basketball"


@pytest.mark.real_data
def test_a_file_beside_a_live_stream_goes_at_its_own_rate(tmp_path):
    """Headless, a file is classified as fast as it goes, not at the pace of a live stream beside
    it: 200 frames of 1 fps video (200 s if it were paced) end while the stream is still running,
    and the summary gives the file's rate over its own time."""
    rng = np.random.default_rng(0)
    slow = write_clip(tmp_path / "slow.avi", [rng.integers(0, 255, (96, 128, 3), np.uint8) for _ in range(200)],
                      fps=1.0)
    port = free_port()
    server = serve_stream(write_clip(tmp_path / "loop.avi", [np.full((96, 128, 3), i, np.uint8) for i in range(50)]),
                          port)
    try:
        process = run_command("live", "--file", slow, "--file", f"http://127.0.0.1:{port}/stream.ts", "--no-display",
                              "--max-frames", 200, "--jsonl", tmp_path / "out.jsonl", timeout=180)
    finally:
        server.kill()
    assert process.returncode == 0, process.stderr
    block = process.stderr.split(f"stream {slow}:", 1)[1]
    fps = float(re.search(r"classified 200, ([\d.]+) fps", block).group(1))
    stream_fps = float(re.search(r"stream http://[^\n]*\n  frames read \d+, classified 200, ([\d.]+) fps",
                                 process.stderr).group(1))
    assert fps > 2 * stream_fps, process.stderr  # paced, it would be 1 fps; the stream comes at 25


def test_import_live_changes_nothing_process_wide_and_reaches_every_module():
    """A host program keeps its environment; `live.web.WebSink` (as the README writes it) and
    `live.Sink` work after a bare `import live`."""
    script = ("import os, sys\n"
              "before = dict(os.environ)\n"
              "import live\n"
              "print(dict(os.environ) == before)\n"
              "print(live.web.WebSink.__name__, live.Sink.__name__, live.sources.open_source.__name__)\n"
              "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")}
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert process.returncode == 0, process.stderr
    assert process.stdout.splitlines() == ["True", "WebSink Sink open_source", "False False"]


@pytest.mark.real_data
def test_the_summary_counts_label_changes_and_smoothing_cuts_them():
    """The default (ema:0.5) against none (ema:1) on a real clip whose top label wavers between
    close Kinetics classes; the records' labels follow the smoothing, their probs do not."""
    figures = {}
    for smoothing in ("ema:1", None):
        process = run_command("live", "--file", CLIPS / "basketball.mp4", "--no-display", "--jsonl", "-", "--jsonl-probs",
                              *(["--smooth", smoothing] if smoothing else []))
        assert process.returncode == 0, process.stderr
        changes = int(re.search(r"^label changes: (\d+) \([\d.]+ per 10 s of the stream\)$", process.stderr,
                                re.MULTILINE).group(1))
        records = [json.loads(line) for line in process.stdout.splitlines()]
        assert changes == sum(a["label"] != b["label"] for a, b in zip(records, records[1:]))
        figures[smoothing] = changes, records
    (raw_changes, raw_records), (changes, records) = figures["ema:1"], figures[None]
    assert changes < raw_changes, (changes, raw_changes)
    np.testing.assert_allclose([r["probs"] for r in records], [r["probs"] for r in raw_records], atol=1e-6)
