"""`live --engine ray`: a run's streams on the actors of a local 2-worker Ray cluster, the sinks
on the driver. Each stream's records equal a local run's, even after a worker is killed
mid-run; Ctrl-C and a killed driver leave no actor behind."""
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIPS, CameraServer, assert_clean_error, free_port, frame_count, read_jsonl, run_command, \
    wait_for

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)
pytest.importorskip("ray")

FILES = [CLIPS / name for name in ("arm_wrestling.mp4", "pool_cleaning.mp4", "basketball.mp4",
                                   "eye_makeup_320x240.avi")] * 2  # 8 streams: the second of each is NAME#2
ACTOR = "ray::StreamWorker"


def actors_of(process):
    """The pids of the Ray actors under `process` (its local Ray's raylet starts them): tests on
    other workers of the suite may run clusters of their own at the same time."""
    children = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children[int(stat.read_text().rsplit(")", 1)[1].split()[1])].append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], list(children[process.pid])
    while todo:
        pid = todo.pop()
        todo += children[pid]
        with contextlib.suppress(OSError):
            if ACTOR in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.append(pid)
    return found


def running(pids):
    """Those of `pids` still running (not ended, not a zombie waiting to be reaped)."""
    alive = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.append(pid)
    return alive


def by_stream(records):
    streams = collections.defaultdict(list)
    for record in records:
        streams[record["stream"]].append(record)
    return streams


def most_common_label(records):
    return collections.Counter(record["label"] for record in records).most_common(1)[0][0]


@pytest.mark.slow
def test_sixteen_streams_on_two_workers_equal_local_runs_after_one_is_killed(tmp_path):
    servers = []
    try:
        for _ in range(8):  # 8 IP cameras, each an MJPEG stream that a moved stream reconnects to
            servers.append(CameraServer(CLIPS / "arm_wrestling.mp4", free_port()))
        urls = [server.url for server in servers]
        jsonl = tmp_path / "out.jsonl"
        # --max-fps 25 replays each file over 6 s, so the run is still going when a worker dies.
        process = subprocess.Popen(["live", "--engine", "ray", "--workers", "2", "--no-display", "--max-frames", "150",
                                    "--max-fps", "25", "--jsonl-probs", "--jsonl", "-",
                                    *[arg for source in [*FILES, *urls] for arg in ("--file", str(source))]],
                                   stdout=jsonl.open("w"), stderr=subprocess.PIPE, text=True)
        try:
            if not wait_for(lambda: len(jsonl.read_text().splitlines()) >= 200 or process.poll() is not None, 240):
                process.kill()
                pytest.fail(f"no 200 records in 240 s; live said: {process.communicate()[1][-3000:]}")
            workers = actors_of(process)
            assert len(workers) == 2, workers
            os.kill(workers[0], signal.SIGKILL)  # as a crash in native code would end it
            _, stderr = process.communicate(timeout=300)
        finally:
            process.kill()
    finally:
        for server in servers:
            server.kill()
    assert process.returncode == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: a ray worker died")]
    assert len(warnings) == 1 and "move to the 1 left" in warnings[0], stderr
    assert "Traceback" not in stderr and "raylet" not in stderr, stderr
    streams = by_stream(read_jsonl(jsonl))  # stdout held records only: every line parses
    assert len(streams) == 16, list(streams)
    import live

    # The same 8 files side by side in this process: each stream equals a run on it alone
    # (test_streams.py), so this is each file's local run.
    local = by_stream(result.to_dict(probs=True) for result in live.load().stream(FILES, max_frames=150))
    for name, records in local.items():
        remote = streams[name]
        assert [r["frame"] for r in remote] == [r["frame"] for r in records] == list(range(150)), name
        assert [r["sampled"] for r in remote] == [r["sampled"] for r in records], name
        difference = np.abs(np.array([r["probs"] for r in remote]) - np.array([r["probs"] for r in records]))
        assert difference.max() <= 1e-4, (name, difference.max())
    expected = most_common_label(local[str(FILES[0])])
    for url in urls:  # live: sampled by the wall clock, so not frame for frame; in order, and named alike
        frames = [record["frame"] for record in streams[url]]
        assert frames == sorted(set(frames)) and len(frames) == 150, (url, frames)
        assert most_common_label(streams[url]) == expected, url


@pytest.mark.slow
def test_ctrl_c_stops_every_actor_and_keeps_the_outputs(tmp_path):
    jsonl, video = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    process = subprocess.Popen(["live", "--engine", "ray", "--workers", "2", "--no-display", "--loop", "--max-fps", "25",
                                "--file", str(CLIPS / "arm_wrestling.mp4"), "--file", str(CLIPS / "pool_cleaning.mp4"),
                                "--jsonl", str(jsonl), "--output", str(video)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(actors_of(process)) == 2 or process.poll() is not None, 120), "no actors"
        actors = actors_of(process)

        def both_streams_going():  # (a complete line of each: the last may be half-written)
            lines = jsonl.read_text().splitlines()[:-1] if jsonl.exists() else []
            counts = collections.Counter(json.loads(line)["stream"] for line in lines)
            return len(counts) == 2 and min(counts.values()) >= 20

        assert wait_for(lambda: both_streams_going() or process.poll() is not None, 120)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert wait_for(lambda: not running(actors), 30), running(actors)
    streams = by_stream(read_jsonl(jsonl))
    # The pictures came from the actors (JPEG) for the driver's videos: one per stream, a
    # frame for each record.
    for number, name in enumerate([str(CLIPS / "arm_wrestling.mp4"), str(CLIPS / "pool_cleaning.mp4")], start=1):
        written = tmp_path / f"out-{number}.mp4"
        assert frame_count(written) == len(streams[name]) >= 20, (written, len(streams[name]))


@pytest.mark.slow
def test_a_killed_driver_leaves_no_actor(tmp_path):
    jsonl = tmp_path / "out.jsonl"
    process = subprocess.Popen(["live", "--engine", "ray", "--workers", "2", "--no-display", "--loop", "--max-fps", "25",
                                "--file", str(CLIPS / "arm_wrestling.mp4"), "--jsonl", str(jsonl)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(actors_of(process)) == 2 or process.poll() is not None, 120), "no actors"
        actors = actors_of(process)
        process.kill()  # SIGKILL: nothing of the driver runs after this
        process.wait()
    finally:
        process.kill()
    assert wait_for(lambda: not running(actors), 60), running(actors)


def test_streams_are_placed_by_measured_cost():
    from live.cluster import place

    # An actor twice as fast takes twice the streams of equal cost.
    assert collections.Counter(place([5.0] * 9, [10.0, 20.0])) == {0: 6, 1: 3}
    # A costly stream (a 30 fps bundle rate) goes where there is room, cheap ones fill the rest.
    assert place([30.0, 5.0, 5.0, 5.0], [10.0, 10.0]) == [0, 1, 1, 1]
    # Load an actor already has (streams moved from a dead one) counts.
    assert place([5.0, 5.0], [10.0, 10.0], loads=[100.0, 0.0]) == [1, 1]


def test_ray_options_need_the_ray_engine():
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--workers", "2", "--no-display")
    assert_clean_error(process, "--engine ray")
    assert process.returncode == 2


def test_ray_engine_without_ray_says_what_to_install():
    # sys.modules["ray"] = None makes `import ray` fail as it does where Ray isn't installed.
    code = ("import sys; sys.modules['ray'] = None; from live.cli import main; "
            f"main(['--engine', 'ray', '--file', {str(CLIPS / 'arm_wrestling.mp4')!r}, '--no-display'])")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert_clean_error(process, "pip install")
    assert process.returncode == 2


@pytest.mark.slow
def test_the_web_view_shows_a_watched_streams_pictures(tmp_path):
    from test_serve import Served, clip_frames, decode, is_a_frame_of_the_clip, read_headers, read_parts

    served = Served(tmp_path, "--serve", "0", "--engine", "ray", "--workers", "2",
                    files=(CLIPS / "pool_cleaning.mp4", CLIPS / "arm_wrestling.mp4"))
    try:
        assert wait_for(lambda: [stream["label"] for stream in json.loads(served.get("/api/streams")[2])]
                        == ["cleaning pool", "arm wrestling"], 180), served.log.read_text()
        actors = actors_of(served.process)
        # The actors send a stream's pictures only once someone watches it: they come, and
        # they are frames of that stream's clip.
        connection, reader = served.open_stream("/streams/2.mjpg")
        with connection:
            assert read_headers(reader)[0] == 200
            pictures = [decode(part) for part in read_parts(reader, 5)]
        frames = clip_frames()  # arm_wrestling.mp4
        assert all(is_a_frame_of_the_clip(picture, frames) for picture in pictures)
        assert np.abs(pictures[0].astype(int) - pictures[-1].astype(int)).mean() > 1  # the video moves
    finally:
        served.stop()
    assert actors and wait_for(lambda: not running(actors), 60), running(actors)


def test_a_stream_is_shed_from_an_actor_that_falls_behind_to_one_with_room():
    from live.cluster import ActorLoad, stream_to_shed
    from live.cluster_worker import StreamSpec
    from live.cluster import RemoteSource

    def camera(name, live=True):
        source = RemoteSource(StreamSpec(name, file=f"http://127.0.0.1/{name}"))
        source.live = live
        return source

    a, b, c = camera("a"), camera("b"), camera("c")
    behind = ActorLoad("busy", 10.0, [(a, 5.0, 0), (b, 5.0, 4), (c, 5.0, 1)])
    # The stream that missed the most moves, to the actor with the most room.
    roomy, roomier = ActorLoad("roomy", 10.0, [(camera("d"), 5.0, 0)] * 10), ActorLoad("roomier", 10.0, [])
    assert stream_to_shed([behind, roomy, roomier]) == ("busy", b, "roomier", 4)
    # Not to an actor without room (10 streams of 5 points at 16 ms: 800 ms a second already),
    # nor to one that falls behind itself, nor back where it came from.
    assert stream_to_shed([behind, ActorLoad("full", 16.0, roomy.streams)]) is None
    assert stream_to_shed([behind, ActorLoad("also behind", 1.0, [(camera("e"), 5.0, 2)])]) is None
    b.left.add("roomier")
    assert stream_to_shed([behind, roomier]) == ("busy", c, "roomier", 1)
    # A file is never shed (it does not fall behind: it goes slower), nor is anything where none is missed.
    assert stream_to_shed([ActorLoad("files", 10.0, [(camera("f", live=False), 5.0, 3)]), roomier]) is None
    assert stream_to_shed([roomy, roomier]) is None


@pytest.mark.slow
def test_sigterm_while_the_actors_load_stops_cleanly(tmp_path):
    # Ray replaces the driver's SIGTERM handler with one that exits with status 15 at once.
    process = subprocess.Popen(["live", "--engine", "ray", "--workers", "2", "--no-display", "--loop",
                                "--file", str(CLIPS / "arm_wrestling.mp4"), "--jsonl", str(tmp_path / "out.jsonl")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: actors_of(process) or process.poll() is not None, 120), "no actor started"
        actors = actors_of(process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0 and stderr.strip().splitlines()[-1] == "stopped", stderr
    assert wait_for(lambda: not running(actors), 30), running(actors)


def test_a_cluster_address_nothing_answers_on_is_one_line():
    process = run_command("live", "--engine", "ray", "--address", f"127.0.0.1:{free_port()}", "--no-display",
                          "--file", CLIPS / "arm_wrestling.mp4", timeout=60)
    assert_clean_error(process, "cannot reach a Ray cluster", "ray start --head")
    assert process.returncode == 2
