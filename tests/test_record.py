"""`train record`: clips recorded from a file or a local stream (there is no camera here)
land in the class-folders layout that `train fit` reads, one session one group, each clip the
source's own frames at its own times (a file's from its first frame, a stream's after a
countdown), only finished clips survive a stop, and no clip replaces the file recorded from."""
import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import CLIPS, assert_clean_error, free_port, run_command, serve_stream, wait_for, x_env

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

SOURCE = CLIPS / "pool_cleaning.mp4"  # 340x256, 30 fps, 300 frames of a moving scene


def decoded(path):
    """Every frame of a video, and its presentation time, as live's file source reads them."""
    from live.sources import FileSource

    source = FileSource(path)
    try:
        frames = [(frame.timestamp, frame.image) for frame in source.frames()]
    finally:
        source.close()
    return [t for t, _ in frames], [image for _, image in frames]


def assert_same_frames(clip, source_frames, first):
    """Each frame of `clip` is source frame first + k: nearer to it than to its neighbours
    (the scene moves from frame to frame) and close to it (H.264's loss only)."""
    _, frames = decoded(clip)
    for k, image in enumerate(frames):
        distance = {i: np.abs(image.astype(int) - source_frames[i].astype(int)).mean()
                    for i in (first + k - 1, first + k, first + k + 1) if 0 <= i < len(source_frames)}
        assert min(distance, key=distance.get) == first + k, (clip, k, distance)
        assert distance[first + k] < 6, (clip, k, distance)


def hidden(folder):
    return [path.name for path in folder.rglob(".*")]


def test_recorded_folder_feeds_the_trainer_one_session_one_group(tmp_path):
    """On the command line: progress lines, the clips of the asked length, frame for frame the
    source's; in process, more sessions and a class: the dataset reader sees both classes, and
    the grouped split keeps each session whole."""
    from training.datasets import load_dataset
    from training.record import record

    data = tmp_path / "data"
    process = run_command("train", "record", data, "--label", "waving", "--clips", 2, "--seconds", 1,
                          "--countdown", 0.5, "--file", SOURCE, "--session", "anna", "--no-window", timeout=120)
    assert process.returncode == 0, process.stderr
    lines = process.stderr.splitlines()
    for expected in ["clip 1/2 (waving): starting in 0.5 s", "clip 1/2 (waving): recording 1 s",
                     f"clip 1/2 (waving): saved {data / 'waving' / 'anna__01.mp4'} (1.0 s, 30 frames at 30 fps)",
                     "clip 2/2 (waving): starting in 0.5 s"]:
        assert expected in lines, process.stderr
    assert lines[-1] == f"recorded 2 clips of waving (2.0 s in all) into {data / 'waving'}, session anna; " \
                        "the folder holds 2", process.stderr
    times, source_frames = decoded(SOURCE)
    clip_times, _ = decoded(data / "waving" / "anna__01.mp4")
    assert np.allclose(clip_times, np.arange(30) / 30, atol=1e-3)  # 1 s at the source's 30 fps
    # After a 0.5 s countdown (15 frames) each: frames 15..44, then 60..89.
    assert_same_frames(data / "waving" / "anna__01.mp4", source_frames, 15)
    assert_same_frames(data / "waving" / "anna__02.mp4", source_frames, 60)

    assert record(data, "waving", clips=2, seconds=0.5, countdown=0, file=str(SOURCE), session="ben", display=False) == 0
    assert record(data, "waving", clips=1, seconds=0.5, countdown=0, file=str(SOURCE), session="anna", display=False) == 0
    assert record(data, "dribbling", clips=2, seconds=0.5, countdown=0, file=str(CLIPS / "basketball.mp4"),
                  display=False) == 0
    names = sorted(path.name for path in (data / "waving").iterdir())
    assert names == ["anna__01.mp4", "anna__02.mp4", "anna__03.mp4", "ben__01.mp4", "ben__02.mp4"]  # numbers go on
    assert not hidden(data)

    dataset = load_dataset(data, test_fraction=0.4, seed=0)
    assert dataset.layout == "class folders" and dataset.classes == ["dribbling", "waving"]
    clips = dataset.train + dataset.test
    assert {clip.group for clip in clips if clip.label == "waving"} == {"waving/anna", "waving/ben"}
    assert len({clip.group for clip in clips if clip.label == "dribbling"}) == 1
    for session in ("waving/anna", "waving/ben"):  # a session on one side of the split only
        sides = {side for side, part in (("train", dataset.train), ("test", dataset.test))
                 for clip in part if clip.group == session}
        assert len(sides) == 1, (session, sides)


def test_variable_rate_source_is_written_at_its_measured_rate(tmp_path):
    """A file that claims 30 fps but holds 10 frames a second: its clips are 10 fps, each
    second holds 10 source frames, none repeated to fill a 30 fps grid."""
    from training.record import record

    source = tmp_path / "ten_fps.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(SOURCE), "-t", "4", "-vf", "setpts=N/10/TB",
                    "-fps_mode", "passthrough", "-c:v", "mjpeg", "-q:v", "2", str(source)], check=True)
    assert cv2.VideoCapture(str(source)).get(cv2.CAP_PROP_FPS) == 30  # what the container claims
    assert record(tmp_path / "data", "pool", clips=1, seconds=2, countdown=1, file=str(source), display=False) == 0
    (clip,) = (tmp_path / "data" / "pool").iterdir()
    clip_times, _ = decoded(clip)
    assert np.allclose(clip_times, np.arange(20) / 10, atol=1e-3)
    assert_same_frames(clip, decoded(source)[1], 10)  # after 1 s of countdown: frame 10 on


def test_jittery_camera_frames_give_full_length_clips_at_their_times(tmp_path):
    """A camera's frames, made here, come about every 1/30 s but early and late, and one is
    late enough to skip a clip's last slot: each clip still holds 1 s at 30 fps, every frame
    at its slot, the last picture held where no frame came."""
    from live.render import OverlayRenderer
    from live.sources import Frame
    from training.record import MeasuredRate, Recorder

    rng = np.random.default_rng(0)
    times = np.arange(200) / 30 + rng.uniform(-0.008, 0.008, 200)  # each frame still nearest its own slot
    # Clip 1 is frames 30..59, clip 2 (after 1 s of countdown) 90..119; frames 59 and 119 come
    # after their clip has ended, so its last slot is empty.
    times[[89, 90, 91]] = times[30] + 2 + np.array([-1 / 30, 0.001, 1 / 30 + 0.001])
    times[59], times[119] = times[30] + 1.005, times[90] + 1.005
    images = [np.full((48, 64, 3), 8 * (k % 30), np.uint8) for k in range(200)]  # each second's frames, their own grey
    recorder = Recorder(tmp_path, "waving", "s", clips=2, seconds=1, countdown=1,
                        rate=MeasuredRate(30, live=True), say=lambda message: None)
    renderer = OverlayRenderer()
    for k, (t, image) in enumerate(zip(times, images)):
        renderer.draw_rows(image, recorder.take(Frame(k, float(t), image, 0.0, 0.0)))  # what the window shows
        if recorder.done:
            break
    assert [path.name for path, _, _ in recorder.saved] == ["s__01.mp4", "s__02.mp4"]
    for path, frames, fps in recorder.saved:
        clip_times, _ = decoded(path)
        assert frames == 30 and fps == pytest.approx(30, rel=0.01)  # as measured: about 30
        assert np.allclose(clip_times, np.arange(30) / fps, atol=1e-3)
    for clip in ("s__01.mp4", "s__02.mp4"):  # frames 30..58 and 90..118, then the last held in slot 29
        greys = [int(round(image.mean() / 8)) for image in decoded(tmp_path / clip)[1]]
        assert greys == list(range(29)) + [28], (clip, greys)


def test_source_ending_mid_clip_keeps_finished_clips_only(tmp_path):
    """A 10 s file asked for three 4 s clips: two are kept, the third is deleted, and the run
    says so and fails (exit 1), so a script notices it got fewer clips than it asked for."""
    process = run_command("train", "record", tmp_path, "--label", "pool", "--clips", 3, "--seconds", 4,
                          "--countdown", 0, "--file", SOURCE, "--session", "s", "--no-window", timeout=120)
    assert_clean_error(process, "ended after 2 of the 3 clips")
    assert process.returncode == 1
    assert "clip 3/3 was cut short and deleted" in process.stderr
    assert sorted(path.name for path in (tmp_path / "pool").iterdir()) == ["s__01.mp4", "s__02.mp4"]


def test_a_file_is_recorded_from_its_first_frame(tmp_path):
    """From a file there is no countdown unless asked for: the 10 s file gives two clips of the
    default length (a window of the default backbone, movinet_a0_stream's 20 frames at 5 fps,
    and 1 s), its frames 0..149 and 150..299 (with 3 s of countdown before each, it holds one)."""
    process = run_command("train", "record", tmp_path, "--label", "pool", "--clips", 2, "--file", SOURCE,
                          "--session", "s", "--no-window", timeout=120)
    assert process.returncode == 0, process.stderr
    assert "starting in" not in process.stderr, process.stderr
    _, source_frames = decoded(SOURCE)
    assert len(source_frames) == 300
    for number, first in ((1, 0), (2, 150)):
        clip = tmp_path / "pool" / f"s__0{number}.mp4"
        assert f"saved {clip} (5.0 s, 150 frames at 30 fps)" in process.stderr, process.stderr
        assert_same_frames(clip, source_frames, first)


def test_a_stream_keeps_its_countdown(tmp_path):
    """From a stream (as from a camera) someone steps in front of it: the countdown stays."""
    port = free_port()
    server = serve_stream(SOURCE, port)
    try:
        process = run_command("train", "record", tmp_path, "--label", "pool", "--clips", 1, "--seconds", 0.5,
                              "--file", f"http://127.0.0.1:{port}/stream.ts", "--session", "s", "--no-window",
                              timeout=120)
    finally:
        server.kill()
        server.wait()
    assert process.returncode == 0, process.stderr
    assert "clip 1/1 (pool): starting in 3 s" in process.stderr.splitlines(), process.stderr
    assert [path.name for path in (tmp_path / "pool").iterdir()] == ["s__01.mp4"]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["s__01.mp4", "S__01.MP4", "a link named s__01.mp4"])
def test_recording_never_replaces_its_source(name, tmp_path):
    """The file recorded from lies in the class folder the clips go to, under the name the
    session's first clip would take, or that name in capitals (the same file on a case-insensitive
    file system), or is a link of that name to a file elsewhere. The clips take other names, and
    the source keeps every byte."""
    folder = tmp_path / "data" / "pool"
    folder.mkdir(parents=True)
    if name.startswith("a link"):
        source = folder / "s__01.mp4"
        source.symlink_to(shutil.copy(SOURCE, tmp_path / "elsewhere.mp4"))
    else:
        source = shutil.copy(SOURCE, folder / name)
    before = sha256(source)
    process = run_command("train", "record", tmp_path / "data", "--label", "pool", "--clips", 2, "--seconds", 1,
                          "--file", source, "--session", "s", "--no-window", timeout=120)
    assert process.returncode == 0, process.stderr
    assert sha256(source) == before == sha256(SOURCE)
    assert Path(source).is_symlink() == name.startswith("a link")
    clips = [path for path in folder.iterdir() if not os.path.samefile(path, source)]
    assert len(clips) == 2 and all(path.name.startswith("s__") for path in clips), clips


@pytest.mark.parametrize("arguments, message", [
    (["{data}", "--file", SOURCE], "give --label NAME"),
    (["{data}", "--label", "../up", "--file", SOURCE], "--label '../up' cannot name a folder"),
    (["{file}", "--label", "waving", "--file", SOURCE], "is a file, not a folder"),
    (["{data}", "--label", "waving", "--file", "{data}/missing.mp4"], "no such file"),
])
def test_bad_input_is_one_error_line(tmp_path, arguments, message):
    (tmp_path / "a_file").write_text("")
    given = [str(a).format(data=tmp_path / "data", file=tmp_path / "a_file") for a in arguments]
    process = run_command("train", "record", *given, "--no-window", timeout=60)
    assert_clean_error(process, message)
    assert process.returncode == 2
    assert not (tmp_path / "data").exists()  # nothing made for a run that could not start


def test_ctrl_c_on_a_stream_keeps_finished_clips_and_deletes_the_partial_one(tmp_path):
    port = free_port()
    server = serve_stream(SOURCE, port)
    try:
        process = subprocess.Popen(["train", "record", str(tmp_path), "--label", "pool", "--clips", "5", "--seconds",
                                    "1.5", "--countdown", "0.3", "--file", f"http://127.0.0.1:{port}/stream.ts",
                                    "--session", "s", "--no-window"], stderr=subprocess.PIPE, text=True)
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "clip 2/5 (pool): recording" in line:
                break
        folder = tmp_path / "pool"
        assert wait_for(lambda: hidden(folder), 5), lines  # clip 2 is being written
        process.send_signal(signal.SIGINT)
        rest = process.stderr.read()
        assert process.wait(timeout=30) == 130, "".join(lines) + rest
    finally:
        server.kill()
        server.wait()
    assert "clip 2/5 was cut short and deleted" in rest
    assert "recorded 1 clip of pool" in rest
    assert [path.name for path in folder.iterdir()] == ["s__01.mp4"]
    clip_times, frames = decoded(folder / "s__01.mp4")
    assert len(frames) == round(1.5 * 30) and frames[0].shape == (256, 340, 3)


@pytest.mark.slow
@pytest.mark.skipif(not all(shutil.which(t) for t in ("Xvfb", "import", "tesseract", "xdotool")),
                    reason="needs Xvfb, ImageMagick, tesseract-ocr and xdotool")
def test_window_shows_the_recording_and_q_keeps_finished_clips(window_manager, tmp_path):
    """For real, on Xvfb: the window shows "recording 2/2 (pool)" over the picture while the
    second clip records; q then stops with the first clip kept and the second deleted."""
    from test_window import find_window, press_q

    env = x_env(window_manager)
    source = tmp_path / "twice.mp4"  # 20 s: the source plays twice, without re-encoding
    subprocess.run(["ffmpeg", "-loglevel", "error", "-stream_loop", "1", "-i", str(SOURCE), "-c", "copy", str(source)],
                   check=True)
    # In a window a file plays at its own pace: 0.5 s countdown, clip 1 (5 s), countdown, clip 2,
    # whose 5 s leave time to read the window and press q on a busy machine.
    process = subprocess.Popen(["train", "record", str(tmp_path), "--label", "pool", "--clips", "2", "--seconds", "5",
                                "--countdown", "0.5", "--file", str(source), "--session", "s"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        window = find_window(env, process)
        assert window, process.stderr.read() if process.poll() is not None else "no window appeared"
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "clip 2/2 (pool): recording" in line:
                break
        text = wait_for(lambda: "recording 2/2 (pool)" in (seen := window_text(window, env, tmp_path)) and seen,
                        3, interval=0.2)
        assert text, window_text(window, env, tmp_path)
        press_q(window, env)
        rest = process.stderr.read()
        assert process.wait(timeout=30) == 0, "".join(lines) + rest
    finally:
        process.kill()
    assert "clip 2/2 was cut short and deleted" in rest
    assert [path.name for path in (tmp_path / "pool").iterdir()] == ["s__01.mp4"]
    assert len(decoded(tmp_path / "pool" / "s__01.mp4")[1]) == 5 * 30


def window_text(window, env, folder):
    """OCR of the top of the window: the overlay's text (bright, in any colour) against the box
    darkened behind it, as black on white."""
    shot = folder / "screen.png"
    subprocess.run(["import", "-window", window, str(shot)], env=env, check=True, timeout=30)
    window = cv2.imread(str(shot))
    ink = np.where(window[:window.shape[0] * 2 // 5].max(axis=2) > 150, 0, 255).astype(np.uint8)
    cv2.imwrite(str(shot), ink)
    return subprocess.run(["tesseract", str(shot), "-", "--psm", "6"], capture_output=True, text=True).stdout
