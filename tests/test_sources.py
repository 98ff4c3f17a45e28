"""Sources in the field: a camera that drops out is reopened (and one that stays away ends the
run cleanly), a file's frames carry its container's presentation times (variable-rate phone
video keeps its real timing, in live and in training alike), and `read` is the cost of reading
a live source's frame, not the wait for it."""
import json
import shutil
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import CLIPS, ROOT, free_port, read_jsonl, serve_stream

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

KINETICS = ROOT / "weights" / "kinetics600"  # frame_rate 5: it samples by time


class FlakyDevice:
    """A test double of a USB camera (there is none here), as cv2.VideoCapture(index) sees it:
    MJPEG frames (a real clip's, JPEG-encoded) at 30 fps; grab() waits for the next one and
    retrieve() decodes it, as OpenCV's V4L2 backend does. `openings` says how each opening
    goes: a condition on which its reads start failing, as an unplugged camera's do (the cable
    is pulled once live has written so many records; None: never), or False for an opening
    that fails (the device is gone)."""

    FPS = 30.0

    def __init__(self, openings, clip=CLIPS / "arm_wrestling.mp4"):
        capture = cv2.VideoCapture(str(clip))
        self.jpegs = []
        while (frame := capture.read()[1]) is not None:
            self.jpegs.append(cv2.imencode(".jpg", frame)[1])
        capture.release()
        self.openings = list(openings)
        self.opened = 0
        self.delivered = []  # frames each opening delivered
        self.position = 0  # the scene goes on while the camera is away, as a real one's does

    def open(self, index):
        assert index == 0
        pulled = self.openings[min(self.opened, len(self.openings) - 1)]
        self.opened += 1
        self.delivered.append(0)
        return FlakyCapture(self, self.opened - 1, pulled)


class FlakyCapture:
    def __init__(self, device, opening, pulled):
        self.device, self.opening, self.pulled, self.open = device, opening, pulled, pulled is not False
        self.due, self.jpeg = time.perf_counter(), None

    def isOpened(self):
        return self.open

    def grab(self):
        if not self.open or (self.pulled and self.pulled()):
            self.pulled = lambda: True  # unplugged stays unplugged
            return False
        time.sleep(max(0.0, self.due - time.perf_counter()))  # the sensor's next frame
        self.due = max(self.due + 1 / self.device.FPS, time.perf_counter())
        self.jpeg = self.device.jpegs[self.device.position % len(self.device.jpegs)]
        self.device.position += 1
        self.device.delivered[self.opening] += 1
        return True

    def retrieve(self):
        return True, cv2.imdecode(self.jpeg, cv2.IMREAD_COLOR)

    def read(self):
        return self.retrieve() if self.grab() else (False, None)

    def get(self, prop):
        return self.device.FPS if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.open = False


@pytest.fixture
def camera(monkeypatch):
    """Camera 0 is a FlakyDevice; `camera(openings)` sets how it behaves. The backoff is 10 ms
    instead of 0.5 s, so a test does not wait for a human-scale pause."""
    from live.sources import CameraSource

    monkeypatch.setattr(CameraSource, "reconnect_backoff_s", 0.01)

    def install(openings):
        device = FlakyDevice(openings)
        monkeypatch.setattr(CameraSource, "open_capture", staticmethod(device.open))
        return device

    return install


def run_live(*args):
    """`live` in-process (the same `main` as the command), restoring the signal handlers it sets."""
    from live.cli import main

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return CliRunner().invoke(main, [str(arg) for arg in args])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def records_written(jsonl, count):
    """A cue: true once live has written `count` records to `jsonl`."""
    return lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) >= count


def warnings_in(stderr):
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_camera_that_drops_out_is_reopened_and_the_run_goes_on(camera, lite_bundle, tmp_path):
    """Its reads fail once 30 frames are classified; the first reopening finds no device, the
    second finds it back: the run goes on past the gap, says so twice on stderr, and ends at
    --max-frames with exit 0."""
    jsonl = tmp_path / "out.jsonl"
    device = camera([records_written(jsonl, 30), False, None])
    result = run_live("--camera", 0, "--weights", lite_bundle, "--no-display", "--max-frames", 70, "--jsonl", jsonl)
    assert result.exit_code == 0, result.stderr
    assert device.opened == 3
    dropped, back = warnings_in(result.stderr)
    assert dropped == "warning: camera 0 stopped delivering frames; reopening it (up to 3 tries)"
    assert back.startswith("warning: camera 0 is back after ")
    records = read_jsonl(jsonl)
    assert len(records) == 70
    # The reader counts frames across openings: those the first one delivered came before the gap.
    before_gap = [r for r in records if r["frame"] < device.delivered[0]]
    after_gap = [r for r in records if r["frame"] >= device.delivered[0]]
    assert len(before_gap) >= 30 and len(after_gap) >= 20 and all(r["sampled"] for r in after_gap)
    assert after_gap[0]["time"] - before_gap[-1]["time"] >= 0.01 + 0.02  # the two backoffs
    assert "error: " not in result.stderr


def test_camera_that_never_comes_back_ends_the_run_with_one_error(camera, lite_bundle, tmp_path):
    jsonl = tmp_path / "out.jsonl"
    device = camera([records_written(jsonl, 20), False])
    result = run_live("--camera", 0, "--weights", lite_bundle, "--no-display", "--jsonl", jsonl)
    assert result.exit_code == 1, result.stderr
    assert device.opened == 1 + 3  # the first opening, and the three tries
    assert "Traceback" not in result.stderr and isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: camera 0 stopped delivering frames and did not come back after 3 reconnect attempts; "
                      "check it is plugged in and no other program uses it"], result.stderr
    assert warnings_in(result.stderr) == ["warning: camera 0 stopped delivering frames; reopening it (up to 3 tries)"]
    records = read_jsonl(jsonl)  # every line parses: the file was closed whole
    assert len(records) >= 20 and records[-1]["frame"] < device.delivered[0]


def test_a_cameras_read_time_is_its_decoding_not_the_wait_for_the_next_frame(camera):
    """Frames come 33 ms apart; `read` is the JPEG decoding only (about 1 ms here)."""
    from live.sources import CameraSource

    camera([None])
    source = CameraSource(0)
    try:
        frames = [frame for frame, _ in zip(source.frames(), range(20))][1:]  # the first is read at opening
    finally:
        source.close()
    gaps = np.diff([frame.timestamp for frame in frames])
    read_ms = np.array([frame.read_ms for frame in frames])
    print(f"median gap {np.median(gaps) * 1000:.1f} ms, median read {np.median(read_ms):.2f} ms")
    assert np.median(gaps) == pytest.approx(1 / 30, abs=0.005)
    assert 0 < np.median(read_ms) < 10


# Variable frame rate: 4 s at 30 fps, then 4 s at 10 fps (every third frame), as phones record
# in low light. The container's r_frame_rate says 30; OpenCV's CAP_PROP_FPS says 20.5 (the mean).

@pytest.fixture(scope="module")
def rate_clips(tmp_path_factory):
    """(variable-rate clip, constant-rate clip): the first 8 s of a real 30 fps clip, the one
    with every third frame dropped after 4 s, H.264 in mp4 as a phone writes it."""
    folder = tmp_path_factory.mktemp("rates")
    source = CLIPS / "pool_cleaning.mp4"
    clips = {"vfr": folder / "vfr.mp4", "cfr": folder / "cfr.mp4"}
    keep = {"vfr": "select='lt(t\\,4)+not(mod(n\\,3))'", "cfr": "null"}
    for name, path in clips.items():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-t", "8", "-vf", keep[name],
                        "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    return clips["vfr"], clips["cfr"]


def presentation_times(path):
    """Each frame's pts_time as ffprobe reads it, from the first frame's."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    times = [float(line.strip(",")) for line in out.split()]
    return [t - times[0] for t in times]


@pytest.fixture(scope="module")
def kinetics_model(cache_dir):
    import live

    return live.load(KINETICS)


def test_variable_rate_clip_is_sampled_on_the_constant_rate_grid(rate_clips, kinetics_model):
    """Both clips give the model a frame every 0.2 s, from 0 to 7.8 s. Timed by index / fps, the
    variable-rate one was sampled 0.3 s apart in its first half and 0.5 s in its second."""
    vfr, cfr = rate_clips
    assert len(presentation_times(vfr)) == 120 + 40 and presentation_times(vfr)[-1] == pytest.approx(7.9)
    sampled = {}
    for name, clip in (("vfr", vfr), ("cfr", cfr)):
        sampled[name] = [r.frame.timestamp for r in kinetics_model.stream(clip) if r.sampled]
    grid = [0.2 * i for i in range(40)]
    np.testing.assert_allclose(sampled["vfr"], grid, atol=1e-3)
    np.testing.assert_allclose(sampled["cfr"], grid, atol=1e-3)


def test_jsonl_times_are_the_containers_presentation_times(rate_clips, cache_dir, tmp_path):
    vfr, _ = rate_clips
    jsonl = tmp_path / "out.jsonl"
    result = run_live("--file", vfr, "--weights", KINETICS, "--no-display", "--jsonl", jsonl)
    assert result.exit_code == 0, result.stderr
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == list(range(160))
    np.testing.assert_allclose([r["time"] for r in records], presentation_times(vfr), atol=1e-3)


def test_live_equals_train_predict_on_a_variable_rate_clip(rate_clips, kinetics_model):
    """`train predict` samples the clip through the same FileSource times as live: the same
    source frames end its windows, with the same probabilities (see test_kinetics'
    test_live_equals_train_predict_at_every_window)."""
    from training.cli import main as train

    vfr, _ = rate_clips
    live_sampled = [r for r in kinetics_model.stream(vfr) if r.sampled]
    result = CliRunner().invoke(train, ["predict", "--weights", str(KINETICS), "--json", str(vfr)])
    assert result.exit_code == 0, result.stderr
    (prediction,) = [json.loads(line) for line in result.stdout.splitlines()]
    windows = prediction["windows"]
    assert [w["end_frame"] for w in windows] == [r.frame.index for r in live_sampled]
    # 0 to 3.8 s every 6th frame, then 4.0 to 7.8 s every other one (of the 10 fps half)
    assert [w["end_frame"] for w in windows] == [*range(0, 120, 6), *range(120, 160, 2)]
    for window, record in zip(windows, live_sampled):
        np.testing.assert_allclose(window["probs"], record.probs, atol=1e-4)


def test_loop_keeps_presentation_times_rising(rate_clips):
    """A second pass starts one frame interval (the last one, 0.1 s) after the first ended."""
    from live.sources import FileSource

    vfr, _ = rate_clips
    source = FileSource(vfr, loop=True)
    try:
        times = [frame.timestamp for frame, _ in zip(source.frames(), range(320))]
    finally:
        source.close()
    first = presentation_times(vfr)
    np.testing.assert_allclose(times[:160], first, atol=1e-6)
    np.testing.assert_allclose(times[160:], [7.9 + 0.1 + t for t in first], atol=1e-6)


def test_a_file_without_timestamps_is_timed_by_its_frame_rate(tmp_path):
    """A raw H.264 stream carries no presentation times (OpenCV gives 0 for each frame):
    frame i is at i / 25 s, 25 being the rate FFmpeg assumes for it."""
    from live.sources import FileSource

    raw = tmp_path / "clip.h264"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(CLIPS / "pool_cleaning.mp4"), "-t", "2", "-c:v", "libx264",
                    str(raw)], check=True)
    source = FileSource(raw)
    try:
        times = [frame.timestamp for frame in source.frames()]
    finally:
        source.close()
    assert source.fps == 25.0 and len(times) == 60
    np.testing.assert_allclose(times, [i / 25 for i in range(60)], atol=1e-6)


def test_training_rate_is_measured_from_presentation_times(rate_clips):
    """The median rate `train fit` records comes from the frames' times (30 fps over the first
    64 frames), not from OpenCV's CAP_PROP_FPS (20.5 here)."""
    from training.fit import measured_frame_rate

    vfr, _ = rate_clips
    assert cv2.VideoCapture(str(vfr)).get(cv2.CAP_PROP_FPS) == pytest.approx(20.5, abs=0.1)
    assert measured_frame_rate(vfr) == pytest.approx(30.0, abs=1e-3)


# Decode only what is used: a planned source converts only the frames its sampler takes.

def read_all(source, sampler=None, every_picture=False, limit=None):
    """(index, time, sampled, picture) of each frame of a FileSource: planned with `sampler`, or
    as today (every frame converted, sampled by the caller, as the pipeline did) without."""
    from live.frames import TimeSampler

    if sampler:
        source.plan(sampler, every_picture)
    today = TimeSampler(1, 5.0)
    try:
        return [(frame.index, frame.timestamp, frame.sampled if sampler else today.keep(frame.timestamp),
                 None if frame.image is None else frame.image.copy())
                for frame, _ in zip(source.frames(), range(limit or 10 ** 9))]
    finally:
        source.close()


@pytest.mark.parametrize("clip, loop", [("vfr", False), ("vfr", True), ("flipping_pancake.mkv", False),
                                        ("eye_makeup_320x240.avi", False)])
def test_skipped_frames_left_unconverted_give_the_same_sampled_frames(rate_clips, clip, loop):
    """Decoded but not converted, the frames the sampler skips change nothing: the same frames
    are sampled at the same times with the same pixels as when every frame is converted (the
    path training's extraction takes), across a --loop restart too; the skipped ones carry no
    picture. With every picture asked for (a window, a video), every frame has its own."""
    from live.frames import TimeSampler
    from live.sources import FileSource

    path = rate_clips[0] if clip == "vfr" else CLIPS / clip
    limit = 200 if loop else None  # the 160-frame clip, and 40 frames of its second pass
    today = read_all(FileSource(path, loop=loop), limit=limit)
    unconverted = read_all(FileSource(path, loop=loop), TimeSampler(1, 5.0), limit=limit)
    every = read_all(FileSource(path, loop=loop), TimeSampler(1, 5.0), every_picture=True, limit=limit)
    assert [row[:3] for row in unconverted] == [row[:3] for row in today] == [row[:3] for row in every]
    assert sum(row[2] for row in today) >= len(today) // 6  # a frame in five or six is sampled
    for (*_, sampled, picture), (*_, converted), (*_, drawn) in zip(unconverted, today, every):
        assert (picture is not None) == sampled
        if sampled:
            assert np.array_equal(picture, converted)
        assert np.array_equal(drawn, converted)


class CountingSampler:
    """A real TimeSampler that counts the sample points it decided on."""

    def __init__(self):
        from live.frames import TimeSampler

        self.sampler, self.kept = TimeSampler(1, 5.0), 0

    def keep(self, timestamp):
        kept = self.sampler.keep(timestamp)
        self.kept += kept
        return kept


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")
def test_a_stream_read_too_slowly_keeps_its_sample_points_and_counts_those_it_misses():
    """A real 28 fps stream, planned with a 5 fps sampler. Taken 10 times a second, it drops most
    frames but hands out every sample point, converted, and the skipped frames unconverted.
    Taken once a second, it holds the last few sample points and counts the rest as missed,
    in the summary and the overlay's figures. Every frame read is handed out or dropped, and
    every sample point decided is handed out or missed."""
    from live.outputs import RunSummary, summary_text
    from live.sources import ENDED, StreamSource
    from live.status import OverlayStatus

    port = free_port()
    server = serve_stream(CLIPS / "arm_wrestling.mp4", port)
    sampler = CountingSampler()
    try:
        source = StreamSource(f"http://127.0.0.1:{port}/stream.ts")
        try:
            source.plan(sampler, every_picture=False)
            handed = []
            for pause, seconds in ((0.1, 3.0), (1.0, 3.0)):
                started = time.perf_counter()
                while time.perf_counter() - started < seconds:
                    frame = source.take(timeout=1.0)
                    handed += [frame] if frame not in (None, ENDED) else []
                    time.sleep(pause)
                if pause == 0.1:
                    assert source.missed == 0 and source.dropped > len(handed)  # kept up with the samples only
                    quick = len(handed)
        finally:
            source.close()
        while (frame := source.take()) is not ENDED:  # what was still held when it closed
            handed.append(frame)
    finally:
        server.kill()
    assert all((frame.image is not None) == frame.sampled for frame in handed)
    samples = [frame.timestamp for frame in handed[:quick] if frame.sampled]
    assert len(samples) >= 12 and np.median(np.diff(samples)) == pytest.approx(0.2, abs=0.02)
    assert source.missed >= 5, source.missed  # 3 s at 5 a second, 3 taken and 3 held
    assert source.frames_read == len(handed) + source.dropped
    assert sampler.kept == sum(frame.sampled for frame in handed) + source.missed
    assert OverlayStatus(source).as_dict()["missed"] == source.missed
    summary = summary_text({source.name: RunSummary()}, [source], {}, 1.0)
    assert summary.startswith(f"frames read {source.frames_read}, classified 0, 0.0 fps, "
                              f"sample points missed {source.missed}")
