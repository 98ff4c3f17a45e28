"""Bad input and faults: one `error: …` line, a non-zero exit, no traceback, outputs intact."""
import json
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import pytest

from conftest import CLIPS, assert_clean_error, free_port, read_jsonl, run_command, serve_stream, wait_for

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)


def live(bundle, *args, **kwargs):
    weights = ("--weights", bundle) if bundle is not None else ()  # None: the default bundle
    return run_command("live", *weights, "--no-display", *args, **kwargs)


@pytest.fixture(params=["trained", "default"])
def bundle(request):
    """Bad inputs are tried with a trained bundle and with no --weights at all: the default
    Kinetics-600 bundle, whose streaming backbone loads differently."""
    return request.getfixturevalue("lite_bundle") if request.param == "trained" else None


def test_missing_file(bundle, tmp_path):
    assert_clean_error(live(bundle, "--file", tmp_path / "nope.mp4"), "no such file")


def test_directory(bundle, tmp_path):
    assert_clean_error(live(bundle, "--file", tmp_path), "is a directory")


def test_empty_file(bundle, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert_clean_error(live(bundle, "--file", tmp_path / "empty.mp4"), "empty")


def test_not_a_video(bundle, tmp_path):
    (tmp_path / "notes.mp4").write_text("these are not frames\n" * 100)
    assert_clean_error(live(bundle, "--file", tmp_path / "notes.mp4"), "not a video")


def test_camera_that_is_not_there(bundle):
    assert_clean_error(live(bundle, "--camera", 7), "camera 7 is not available")


def test_url_that_does_not_answer(bundle):
    url = f"http://127.0.0.1:{free_port()}/live.ts"
    assert_clean_error(live(bundle, "--file", url), "cannot open stream")


def test_no_input(bundle):
    assert_clean_error(live(bundle), "give an input", "--camera", "--file")


def test_missing_bundle(tmp_path):
    process = run_command("live", "--file", CLIPS / "eye_makeup_320x240.avi", "--weights", tmp_path / "none")
    assert_clean_error(process, "no model bundle", "train fit")


@pytest.mark.parametrize("damage", ["no_labels", "bad_manifest", "wrong_label_count", "wrong_fingerprint",
                                    "wrong_feature_size", "broken_model"])
@pytest.mark.slow
def test_damaged_bundle(damage, lite_bundle, tmp_path):
    bundle = Path(shutil.copytree(lite_bundle, tmp_path / "bundle"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    if damage == "no_labels":
        (bundle / "labels.txt").unlink()
        expected = "incomplete"
    elif damage == "bad_manifest":
        (bundle / "manifest.json").write_text("{not json")
        expected = "unreadable manifest"
    elif damage == "wrong_label_count":
        (bundle / "labels.txt").write_text("alpha\nbeta\n")
        expected = "3 outputs but labels.txt has 2"
    elif damage == "wrong_fingerprint":
        manifest["backbone_fingerprint"] = "0123456789abcdef"
        expected = "fingerprint"
    elif damage == "wrong_feature_size":
        manifest["feature_size"] = 2048
        expected = "mismatched"
    else:
        (bundle / "model.keras").write_bytes(b"PK\x03\x04 truncated")
        expected = "does not load"
    if damage in ("wrong_fingerprint", "wrong_feature_size"):
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert_clean_error(live(bundle, "--file", CLIPS / "eye_makeup_320x240.avi"), expected)


@pytest.mark.slow
def test_file_that_stops_decoding(lite_bundle, tmp_path):
    """Half an MJPEG AVI: what decodes is processed and kept, then the shortfall is reported."""
    source = cv2.VideoCapture(str(CLIPS / "eye_makeup_320x240.avi"))
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    while True:
        ok, frame = source.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    jsonl = tmp_path / "out.jsonl"
    process = live(lite_bundle, "--file", cut, "--jsonl", jsonl, "--output", tmp_path / "out.mp4")
    error = assert_clean_error(process, "stopped decoding after", "of 164 frames")
    assert process.returncode == 1
    decoded = int(error.split("after ")[1].split(" of")[0])
    assert 40 < decoded < 130
    assert len(read_jsonl(jsonl)) == decoded
    assert "frames read" in process.stderr  # the summary still comes


def long_run(bundle, tmp_path):
    """`live` on a 300-frame file, replayed at 25 frames a second (--max-fps): 12 s whatever the
    machine, so it is still running when the test's signal comes. Unpaced, a headless run goes
    as fast as it can (10 ms a frame here, loaded): a machine 15 times faster ends it within
    the 0.2 s the test takes to see the 30th record."""
    jsonl, video = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    process = subprocess.Popen(["live", "--weights", str(bundle), "--no-display", "--file",
                                str(CLIPS / "pool_cleaning.mp4"), "--max-fps", "25", "--jsonl", str(jsonl),
                                "--output", str(video)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) >= 30 or process.poll() is not None,
             120, interval=0.2)
    return process, jsonl, video


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
@pytest.mark.slow
def test_signal_stops_cleanly(sig, code, lite_bundle, tmp_path):
    process, jsonl, video = long_run(lite_bundle, tmp_path)
    assert process.poll() is None, process.communicate()[1]  # mid-run: the signal, not the end, stops it
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "frames read" in stderr
    records = read_jsonl(jsonl)  # every line parses
    assert 30 <= len(records) < 300
    capture = cv2.VideoCapture(str(video))
    written = 0
    while capture.read()[0]:
        written += 1
    assert written == len(records)  # the video was closed properly and is playable


@pytest.mark.slow
def test_stream_that_drops(lite_bundle, tmp_path):
    """A real HTTP stream from ffmpeg on 127.0.0.1, killed mid-stream: live reconnects, gives up
    cleanly, and keeps what it classified."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}/stream.ts"
    server = serve_stream(CLIPS / "arm_wrestling.mp4", port)
    try:
        jsonl = tmp_path / "out.jsonl"
        process = subprocess.Popen(["live", "--weights", str(lite_bundle), "--no-display", "--file", url,
                                    "--jsonl", str(jsonl)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        wait_for(lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) >= 25, 90, interval=0.2)
        assert jsonl.exists(), process.stderr.read() if process.poll() is not None else "no output yet"
        server.kill()
        server.wait()
        _, stderr = process.communicate(timeout=90)
    finally:
        server.kill()
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "dropped and did not come back after 3 reconnect attempts" in stderr
    records = read_jsonl(jsonl)
    assert len(records) >= 25
    assert records[-1]["filled"] == 20
