"""The window behaves like a player: a file plays at its own pace (or as fast as it can be
classified with --fast), and every way a user ends a player ends the run with exit 0: the
title bar's close button under a real window manager (openbox), Esc, and the window destroyed
by another program with no manager in between. Real `live` processes on Xvfb."""
import shutil
import subprocess
import time

import cv2
import numpy as np
import pytest

from conftest import CLIPS, write_clip, x_env
from test_window import find_window

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

needs_x = pytest.mark.skipif(not all(shutil.which(t) for t in ("Xvfb", "xdotool", "xdpyinfo", "openbox", "wmctrl")),
                             reason="needs Xvfb, xdotool, x11-utils, openbox and wmctrl")


def slow_clip(path):
    """25 frames of a real clip at 5 fps: 4.8 s from the first frame to the last, in 25 frames."""
    capture = cv2.VideoCapture(str(CLIPS / "arm_wrestling.mp4"))  # 28 fps: every 6th frame is about 5 fps
    return write_clip(path, [capture.read()[1] for _ in range(150)][::6], fps=5.0)


def test_api_replays_a_file_at_its_own_pace_only_when_asked(cache_dir, tmp_path):
    """model.stream(realtime=True), what a window uses: results come no faster than the frames'
    timestamps (a lower bound, at least 80% of the clip's span), and latency counts from when a
    frame is due, not from when it was decoded ahead of it. By default, as fast as it goes."""
    import live

    clip, model = slow_clip(tmp_path / "slow.avi"), live.load()
    for realtime in (True, False):
        arrivals = [(time.perf_counter(), result) for result in model.stream(clip, realtime=realtime)]
        wall = arrivals[-1][0] - arrivals[0][0]
        media = arrivals[-1][1].frame.timestamp - arrivals[0][1].frame.timestamp
        assert len(arrivals) == 25 and abs(media - 4.8) < 0.05
        if realtime:
            assert wall >= 0.8 * media, (wall, media)
            latencies = [result.timings["latency_ms"] for _, result in arrivals]
            assert np.median(latencies) < 100, latencies  # held up to 200 ms before it was due
        else:
            assert wall < 0.5 * media, (wall, media)


def looping_run(env):
    """`live` replaying a clip without end: only the user can stop it."""
    return subprocess.Popen(["live", "--file", str(CLIPS / "arm_wrestling.mp4"), "--loop"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def ends_cleanly(process, window):
    assert window, process.stderr.read() if process.poll() is not None else "no window appeared"
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "error" not in stderr and "frames read" in stderr, stderr


def closing_commands(how, window):
    """What closes the window: the title bar's close button (sent through the window manager),
    another program destroying it with no manager in between (Qt hears nothing of it), or Esc
    (with no manager the keyboard follows the pointer)."""
    return {"close button": [["wmctrl", "-c", "live"]],
            "destroyed": [["xdotool", "windowclose", window]],
            "escape": [["xdotool", "mousemove", "--window", window, "20", "20"], ["xdotool", "key", "Escape"]]}[how]


@needs_x
@pytest.mark.slow
@pytest.mark.parametrize("how", ["close button", "destroyed", "escape"])
def test_closing_the_window_ends_the_run(how, request):
    env = x_env(request.getfixturevalue("window_manager" if how == "close button" else "display"))
    process = looping_run(env)
    window = find_window(env, process)
    if window:
        time.sleep(1)  # a few frames shown first
        for command in closing_commands(how, window):
            subprocess.run(command, env=env, check=True, timeout=10)
    ends_cleanly(process, window)


def record_arrivals(command, env):
    """Run `live … --jsonl -` and note when each record arrives: (wall seconds, record time)."""
    import json

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrivals = []
    try:
        for line in process.stdout:
            arrivals.append((time.monotonic(), json.loads(line)["time"]))
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, process.stderr.read()
    return arrivals


@needs_x
@pytest.mark.slow
def test_windowed_file_plays_at_its_own_pace_and_fast_does_not(display, tmp_path):  # noqa: F811
    """A 5 fps clip of 25 frames spans 4.8 s. In a window its records come over about that
    much wall time (a lower bound: at least 80% of it); with --fast, in well under half of it
    (25 frames through the model take about 0.5 s here)."""
    env = x_env(display)
    command = ["live", "--file", str(slow_clip(tmp_path / "slow.avi")), "--jsonl", "-"]
    for fast in (False, True):
        arrivals = record_arrivals(command + ["--fast"] * fast, env)
        assert len(arrivals) == 25
        wall = arrivals[-1][0] - arrivals[0][0]
        media = arrivals[-1][1] - arrivals[0][1]
        assert abs(media - 4.8) < 0.05
        if fast:
            assert wall < 0.5 * media, (wall, media)
        else:
            assert wall >= 0.8 * media, (wall, media)
