"""Hardening: a closed stdout pipe, memory that stays flat on a day-long run, thread counts from
the CPUs this process may use, and a bundle that tries to smuggle code through a Lambda layer."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import cv2
import numpy as np
import pytest

from conftest import (CLIPS, as_a_background_job, assert_clean_error, free_port, listening, read_jsonl, run_command,
                      serve_stream, unchanged_for, wait_for)

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)


@pytest.mark.slow
def test_jsonl_to_a_closed_pipe_ends_quietly(lite_bundle):
    """`live --jsonl - | head -n 1`: the reader leaves after one line; live stops with exit 0
    and says nothing about the pipe."""
    command = (f"live --file {CLIPS / 'basketball.mp4'} --weights {lite_bundle} --jsonl - --no-display "
               "| head -n 1; exit ${PIPESTATUS[0]}")
    process = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert len(process.stdout.splitlines()) == 1 and json.loads(process.stdout)["frame"] == 0
    assert "error" not in process.stderr.lower() and "Exception" not in process.stderr, process.stderr


@pytest.mark.slow
def test_run_summary_memory_stays_flat_over_200000_results():
    import live  # noqa: F401
    from live.outputs import RunSummary
    from live.pipeline import Result
    from live.sources import Frame

    rng = np.random.default_rng(0)
    latencies = rng.lognormal(mean=2.5, sigma=0.4, size=200_000)
    frame = Frame(0, 0.0, np.zeros((4, 4, 3), np.uint8), 0.0, 0.1)
    probs = np.array([0.7, 0.2, 0.1], np.float32)
    summary = RunSummary()

    def add(values):
        for value in values:
            summary.add(Result(frame, ["a", "b", "c"], 20, 20, probs, True,
                               {"read": 0.2, "embed": value / 2, "latency_ms": value}))

    add(latencies[:10_000])
    tracemalloc.start()
    add(latencies[10_000:])
    growth = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert growth < 64 * 1024, growth  # a list of every value would hold ~5 MB more
    text = summary.text(200_000, 100.0)
    median, p95 = (float(part.split()[-2]) for part in text.splitlines()[1].split(","))
    assert abs(median - np.median(latencies)) / np.median(latencies) < 0.02, text
    assert abs(p95 - np.percentile(latencies, 95)) / np.percentile(latencies, 95) < 0.02, text


def test_threads_follow_the_cpus_this_process_may_use(tmp_path):
    probe = "from live.cpus import usable_cpus; print(usable_cpus())"
    pinned = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", probe], capture_output=True, text=True)
    assert pinned.stdout.strip() == "1", pinned.stderr
    from live.cpus import cgroup_cpu_limit

    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a quota of 1.5 CPUs
    assert cgroup_cpu_limit(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    from live.cpus import own_cgroup_limit

    service = tmp_path / "system.slice" / "live.service"  # a systemd CPUQuota=100% under an unlimited root
    service.mkdir(parents=True)
    (service / "cpu.max").write_text("100000 100000\n")
    (tmp_path / "self-cgroup").write_text("0::/system.slice/live.service\n")
    assert own_cgroup_limit(tmp_path, tmp_path / "self-cgroup") == 1


@pytest.mark.slow
def test_tensorflow_thread_pools_follow_live_cpus():
    """TensorFlow sizes its pools by the affinity mask alone; importing live caps them to the
    CPUs this process may use, so a Ray worker given one CPU runs one compute thread, also when
    it was started by a process that imported live first (a local Ray cluster). TensorFlow
    names its inter-op threads tf_Compute; the intra-op ones get the same cap but no name."""
    probe = ("import os, live\nfrom live.quiet import keras\n"
             "keras.ops.convert_to_numpy(keras.ops.matmul(keras.ops.ones((256, 256)), keras.ops.ones((256, 256))))\n"
             "names = []\n"
             "for task in os.listdir('/proc/self/task'):\n"
             "    try:\n"
             "        names.append(open(f'/proc/self/task/{task}/comm').read().strip())\n"
             "    except OSError:\n"
             "        pass\n"
             "print(names.count('tf_Compute'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    env["KERAS_BACKEND"] = "tensorflow"

    def compute_threads(command=(sys.executable, "-c", probe), **variables):
        process = subprocess.run(command, capture_output=True, text=True, env={**env, **variables})
        assert process.returncode == 0, process.stderr
        return int(process.stdout.split()[-1])

    assert compute_threads(LIVE_CPUS="1") == 1
    if len(os.sched_getaffinity(0)) > 1:
        assert compute_threads() > 1  # without the cap: one per CPU
        # A parent with every CPU imports live, then starts a worker capped to one.
        parent = ("import os, subprocess, sys\nimport live.quiet\n"
                  f"sys.exit(subprocess.run([sys.executable, '-c', {probe!r}], env={{**os.environ, 'LIVE_CPUS': '1'}})"
                  ".returncode)")
        assert compute_threads((sys.executable, "-c", parent)) == 1
    assert compute_threads(LIVE_CPUS="1", TF_NUM_INTEROP_THREADS="3") == 3  # the user's own setting wins


def test_bundle_with_a_lambda_layer_is_refused(lite_bundle, tmp_path):
    """safe_mode refuses a Lambda layer (arbitrary code) in model.keras: one error line."""
    import live  # noqa: F401
    from live.quiet import keras

    bundle = tmp_path / "lambda"
    shutil.copytree(lite_bundle, bundle)
    features = keras.Input((20, 1280), name="features")
    mask = keras.Input((20,), dtype="bool", name="mask")
    pooled = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=1))(features)
    model = keras.Model([features, mask], keras.layers.Dense(3, activation="softmax")(pooled))
    model.save(bundle / "model.keras")
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", bundle, "--no-display")
    assert_clean_error(process, "model.keras does not load")


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 0)])
@pytest.mark.slow
def test_signal_during_a_stream_reconnect_exits_cleanly(sig, code, lite_bundle, tmp_path):
    """Kill the stream server, wait until live is in its reconnect backoff (no new records),
    then Ctrl-C or SIGTERM: the mid-run exit code (130 or 0) at once, the summary printed, no
    traceback, the JSONL whole."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}/stream.ts"
    server = serve_stream(CLIPS / "arm_wrestling.mp4", port)
    jsonl = tmp_path / "out.jsonl"

    def records():
        return len(jsonl.read_text().splitlines()) if jsonl.exists() else 0

    try:
        process = subprocess.Popen(["live", "--weights", str(lite_bundle), "--no-display", "--file", url,
                                    "--jsonl", str(jsonl)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: records() >= 10 or process.poll() is not None, 90), "no records"
        server.kill()
        server.wait()
        assert wait_for(unchanged_for(records, 1.0), 30)  # no new record for a second: it is reconnecting
        assert process.poll() is None, "live gave up before the signal"
        interrupted = time.time()
        process.send_signal(getattr(signal, sig))
        _, stderr = process.communicate(timeout=30)
        took = time.time() - interrupted
    finally:
        server.kill()
    assert process.returncode == code, stderr
    assert took < 8.0, took  # not the whole backoff and its timeouts
    # FFmpeg's own log lines may say "error" while the stream is down; ours start with "error: ".
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in stderr and not errors and "frames read" in stderr, stderr
    assert len(read_jsonl(jsonl)) >= 10


class WatchedCapture:
    """A real cv2.VideoCapture that notes whether release() came while a read (read() or
    grab(), which waits for the frame) was running, and can fail its Nth read as a decoder
    fault would."""

    def __init__(self, capture, fail_on_read=None):
        self._capture, self._fail_on_read = capture, fail_on_read
        self.opened = capture.isOpened()
        self.reads = 0
        self.reading = self.released_while_reading = False

    def _watched(self, call):
        self.reads += 1
        if self.reads == self._fail_on_read:
            raise cv2.error("injected decoder fault")
        self.reading = True
        try:
            return call()
        finally:
            self.reading = False

    def read(self):
        return self._watched(self._capture.read)

    def grab(self):
        return self._watched(self._capture.grab)

    def release(self):
        self.released_while_reading |= self.reading
        self._capture.release()

    def __getattr__(self, name):  # isOpened, retrieve, get: the real capture's own
        return getattr(self._capture, name)


def watched_stream(url, fail_on_read=None, hold_reopen=None):
    """The real StreamSource, its captures wrapped in WatchedCaptures (kept in .captures, in
    order). With `hold_reopen` (an Event), a reconnect's open sets .reopening and waits for it."""
    from live.sources import StreamSource

    class WatchedStream(StreamSource):
        def __init__(self, url):
            self.captures, self.reopening = [], threading.Event()
            super().__init__(url)

        def _open(self):
            if self.captures and hold_reopen is not None:
                self.reopening.set()
                hold_reopen.wait(60)
            capture = WatchedCapture(super()._open(), fail_on_read)
            self.captures.append(capture)
            return capture

    return WatchedStream(url)


def reader_running(source):
    return any(thread.name == f"reader:{source.name}" for thread in threading.enumerate())


@pytest.mark.slow
def test_close_lets_a_read_in_progress_finish_before_the_capture_is_released():
    """A stream whose server is stopped (SIGSTOP) leaves the reader inside read() until the
    5 s read timeout. close() waits for that read to return, and the reader then releases the
    capture: nothing is released under a running read, and no reader is left behind."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    port = free_port()
    server = serve_stream(CLIPS / "arm_wrestling.mp4", port)
    try:
        source = watched_stream(f"http://127.0.0.1:{port}/stream.ts")
        try:
            assert wait_for(lambda: source.frames_read > 10, 30), "no frames from the stream"
            server.send_signal(signal.SIGSTOP)
            # The frames already in the socket are read; then the reader waits in read().
            assert wait_for(unchanged_for(lambda: source.frames_read, 1.0), 30)
            [capture] = source.captures
            assert capture.reading
        finally:
            closing = time.time()
            source.close()
        took = time.time() - closing
    finally:
        server.kill()
    assert not capture.released_while_reading
    assert not capture.isOpened()  # released all the same, by the reader once its read timed out
    assert not reader_running(source), "close() returned with the reader still inside read()"
    assert took < 7.0, took  # the read's own 5 s timeout, not longer


@pytest.mark.slow
def test_a_reconnect_that_finishes_after_close_leaves_no_capture_open():
    """The stream drops; the reader's reconnect is held inside its open while the server comes
    back and close() is called, then let go: the capture it opens after close() is released."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    port = free_port()
    server = serve_stream(CLIPS / "arm_wrestling.mp4", port)
    hold = threading.Event()
    try:
        source = watched_stream(f"http://127.0.0.1:{port}/stream.ts", hold_reopen=hold)
        assert wait_for(lambda: source.frames_read > 10, 30), "no frames from the stream"
        server.kill()
        server.wait()
        assert source.reopening.wait(30), "the reader never tried to reconnect"
        server = serve_stream(CLIPS / "arm_wrestling.mp4", port)  # so the held open succeeds
        source.close()  # gives up waiting for a reader held in its open (after its join timeout)
        hold.set()  # the reconnect goes on, after close()
        assert wait_for(lambda: not reader_running(source), 30), "the reader did not end"
    finally:
        hold.set()
        server.kill()
    first, reopened = source.captures
    assert reopened.opened  # the reconnect did open the restarted stream, after close()
    assert not first.isOpened() and not reopened.isOpened()


def test_a_fault_in_the_reader_ends_frames_with_an_error():
    """The reader thread's capture raises on its 5th read (a file through the same StreamSource,
    which reads any FFmpeg input): frames() ends with that error instead of waiting for ever."""
    from live.errors import UserError

    source = watched_stream(str(CLIPS / "arm_wrestling.mp4"), fail_on_read=5)
    outcome = []

    def consume():
        try:
            outcome.append(sum(1 for _ in source.frames()))
        except UserError as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(20)
    source.close()
    assert not consumer.is_alive(), "frames() is still waiting for a reader that died"
    [error] = outcome
    assert isinstance(error, UserError) and error.exit_code == 1, error
    assert "reading failed" in str(error) and "injected decoder fault" in str(error), error
    assert not source.captures[0].isOpened()  # the dying reader released its capture


def test_replacing_a_bundle_never_leaves_the_folder_missing(lite_bundle, tmp_path):
    """A reader polling weights/NAME while it is replaced 10 times sees a complete bundle every
    time: the old one or the new one, never a gap and never a mix."""
    import live  # noqa: F401
    from live.bundle import add_to_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(lite_bundle, bundle)
    gaps, reads, done = [], [0], threading.Event()

    def watch():
        while not done.is_set():
            manifest = bundle / "manifest.json"
            try:
                json.loads(manifest.read_text())
                reads[0] += 1
            except (OSError, ValueError) as exc:
                gaps.append(repr(exc))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for round_ in range(10):
            add_to_bundle(bundle, {}, {"round": round_})
    finally:
        done.set()
        watcher.join()
    assert not gaps, gaps[:3]
    assert reads[0] > 10
    assert json.loads((bundle / "manifest.json").read_text())["round"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging folder left behind


def _unicode(text):
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data  # BINUNICODE


def _int(value):
    return b"J" + value.to_bytes(4, "little", signed=True)  # BININT


def legacy_checkpoint(path, size, stride, numel=4, offset=0, build_after_tensor=False):
    """A legacy-format torch checkpoint written opcode by opcode (no torch here): one float
    tensor 'w' of `size`/`stride` over a storage that declares `numel` floats and holds 4."""
    import pickle
    import struct

    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n("                               # GLOBAL, MARK
              + b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode("0") + _unicode("cpu")
              + _int(numel) + b"tQ"                                                  # TUPLE, BINPERSID
              + _int(offset) + b"(" + b"".join(map(_int, size)) + b"t"
              + b"(" + b"".join(map(_int, stride)) + b"t" + b"\x89"                  # NEWFALSE
              + b"ccollections\nOrderedDict\n)R" + b"tR")                            # args, REDUCE
    if build_after_tensor:  # BUILD: point the tensor at another storage, then at a huge size
        tensor += b"}(" + _unicode("size") + b"(" + _int(1 << 20) + b"t" + _unicode("offset") + _int(1 << 30) + b"ub"
    tree = b"\x80\x02}" + _unicode("w") + tensor + b"s."
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True, "protocol_version": 1001}):
            f.write(pickle.dumps(header, protocol=2))
        f.write(tree)
        f.write(pickle.dumps(["0"], protocol=2))
        f.write(struct.pack("<q", numel) + np.arange(4, dtype=np.float32).tobytes())  # 4 floats, whatever it says
    return path


def test_malformed_pickles_are_refused_not_crashed_on(tmp_path):
    """A memo index that would make the unpickler allocate gigabytes, and a pickle that calls
    OrderedDict with nonsense: UnsafeCheckpointError, not MemoryError or TypeError."""
    import pickle

    from live.torch_legacy import UnsafeCheckpointError, load_state_dict

    header = b"".join(pickle.dumps(value, protocol=2) for value in
                      (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    for tree in (b"\x80\x02J\x00\x00\x00\x01r\x00\x00\x00\x01.",  # LONG_BINPUT 2**24
                 b"ccollections\nOrderedDict\nK\x01\x85R."):         # OrderedDict((1,))
        path = tmp_path / "bad.pth"
        path.write_bytes(header + tree)
        with pytest.raises(UnsafeCheckpointError):
            load_state_dict(path)


def test_checkpoint_reader_reads_a_well_formed_tensor(tmp_path):
    from live.torch_legacy import load_state_dict

    path = legacy_checkpoint(tmp_path / "ok.pth", size=(2, 2), stride=(1, 2))  # a transposed view
    np.testing.assert_array_equal(load_state_dict(path)["w"], [[0, 2], [1, 3]])



HOSTILE = [
    dict(size=(1 << 20,), stride=(1,)),              # a million floats over a 4-float storage
    dict(size=(2, 2), stride=(1, 2), offset=3),      # an offset that walks off the end
    dict(size=(2,), stride=(1,), numel=1 << 26),     # a storage bigger than the file
    dict(size=(2, 2), stride=(1, 2), build_after_tensor=True),  # BUILD on a tensor (crashed before)
    dict(size=(16384, 16384), stride=(0, 0)),        # one float repeated into a 1 GiB array
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_checkpoint_is_refused_not_crashed_on(hostile, tmp_path):
    """Each hostile checkpoint is refused by the reader, in a process of its own so that a
    crash (a signal) would show as one instead of taking the test run down."""
    from live.torch_legacy import UnsafeCheckpointError, load_state_dict

    path = legacy_checkpoint(tmp_path / "hostile.pth", **hostile)
    probe = subprocess.run([sys.executable, "-c", f"from live.torch_legacy import load_state_dict as l; l({str(path)!r})"],
                           capture_output=True, text=True)
    assert probe.returncode == 1 and "UnsafeCheckpointError" in probe.stderr, probe.stderr  # not a crash
    with pytest.raises(UnsafeCheckpointError):
        load_state_dict(path)


@pytest.mark.slow
def test_hostile_checkpoint_gives_one_error_line(tmp_path, lite_bundle, cache_dir):
    """`live` and `train` reach the reader by the same path whatever the damage, so one hostile
    file (the one that crashed the reader before) is enough to check their one error line."""
    path = legacy_checkpoint(tmp_path / "hostile.pth", **HOSTILE[3])
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", lite_bundle,
                          "--backbone-weights", path, "--no-display")
    assert_clean_error(process, "not a usable EfficientNet-Lite0 checkpoint")
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        shutil.copy(CLIPS / "eye_makeup_320x240.avi", data / label / "clip.avi")
    process = run_command("train", "fit", "--data", data, "--out", tmp_path / "out", "--backbone",
                          "efficientnet_lite0", "--backbone-weights", path, "--quiet")
    assert_clean_error(process, "not a usable EfficientNet-Lite0 checkpoint")


def test_frames_dropped_while_loading_do_not_say_falling_behind():
    """A real stream left unread for 3 s (as while a model loads) drops ~80 frames; once frames
    are taken as they come, the overlay's drop share is about the recent frames, not those."""


    from live.pipeline import Result
    from live.sources import open_source
    from live.status import OverlayStatus

    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    port = free_port()
    server = serve_stream(CLIPS / "arm_wrestling.mp4", port)
    try:
        source = open_source(file=f"http://127.0.0.1:{port}/stream.ts")
        try:
            wait_for(lambda: source.dropped > 60, 10)  # "loading the model": nobody reads
            assert source.dropped > 60  # the reader kept only the newest frame meanwhile
            status = OverlayStatus(source)
            for count, frame in enumerate(source.frames()):
                status.update(Result(frame, ["a"], 20, 20, np.ones(1), True, {"latency_ms": 1.0}))
                if count == 40:
                    break
        finally:
            source.close()
    finally:
        server.kill()
    assert status.dropped_fraction < 0.05, (status.dropped_fraction, source.dropped, source.frames_read)
    assert source.dropped / source.frames_read > 0.3  # what the old cumulative share would have shown


def serve_fast_stream(clip, port, folder, fps=300):
    """`clip` re-timed to `fps` frames a second (frame n at n / fps s: the same pictures, played
    fast), then served as serve_stream serves a clip: in real time, looped, as an HTTP MPEG-TS
    stream on 127.0.0.1:`port`. The stream says `fps`, and its frames arrive that fast. MPEG-2
    allows only the broadcast rates, so the re-timed copy is MPEG-4 Part 2, served as it is."""
    fast = folder / f"{clip.stem}-{fps}fps.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-vf", f"setpts=N/({fps}*TB)", "-r", str(fps),
                    "-c:v", "mpeg4", "-q:v", "5", "-an", "-f", "mpegts", str(fast)], check=True)
    server = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(fast), "-c", "copy",
                               "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/stream.ts"])
    if not wait_for(lambda: listening(port) or server.poll() is not None, 30) or server.poll() is not None:
        server.kill()
        raise RuntimeError(f"ffmpeg did not start listening on port {port}")
    return server


@pytest.mark.slow
def test_output_from_a_dropping_live_source_plays_in_real_time(lite_bundle, tmp_path):
    """A live source that delivers frames faster than they are classified drops the ones in
    between; the H.264 output holds each picture over the gap, so it lasts as long as the run did.

    The drops come from the source, not from a slow machine: the stream delivers 300 frames a
    second, and a run on live sources alone takes a stream's next frame at most once a turn,
    turns at least 10 ms apart (live.pipeline.LIVE_TURN_S), however fast the model. So at most
    one frame in three is classified, and the 300 fps output has, on average, a gap of two
    slots or more after each picture, to hold it over. (A 28 fps stream dropped frames only on a machine
    that took over 36 ms a frame: InceptionV3 takes 13 ms on a fast one, and nothing dropped.)"""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    port = free_port()
    server = serve_fast_stream(CLIPS / "arm_wrestling.mp4", port, tmp_path)
    try:
        jsonl, video = tmp_path / "out.jsonl", tmp_path / "out.mp4"
        process = run_command("live", "--file", f"http://127.0.0.1:{port}/stream.ts", "--weights", lite_bundle,
                              "--jsonl", jsonl, "--output", video, "--max-frames", 40, "--no-display", timeout=300)
    finally:
        server.kill()
    assert process.returncode == 0, process.stderr
    records = read_jsonl(jsonl)
    indices = [r["frame"] for r in records]
    assert len(indices) == 40
    assert indices[-1] - indices[0] + 1 >= 2 * len(indices), indices  # frames were dropped (2 in 3 or more)
    span = records[-1]["time"] - records[0]["time"]
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"h264", b"avc1")
    fps, frames = capture.get(cv2.CAP_PROP_FPS), 0
    while capture.read()[0]:
        frames += 1
    assert fps == pytest.approx(300, abs=1), fps  # the source's rate
    assert abs(frames / fps - span) <= 0.15 * span + 2 / fps, (frames, fps, span)
    # A record puts at most one picture of its own in the video: the rest are pictures held
    # over the gaps. (Comparing pixels cannot tell them apart: x264 refines a repeated picture,
    # and two records 10 ms apart show nearly the same one.)
    assert frames >= 2 * len(records), (frames, len(records))


@pytest.mark.slow
def test_damaged_files_sample_of_the_fuzz_run(lite_bundle, tmp_path):
    """Four damaged copies of the test clips (tests/benchmarks/fuzz_files.py runs 200 of the shared ones)."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
    import fuzz_files

    counts, failures = fuzz_files.fuzz(count=4, seed=1, workers=1, weights=lite_bundle, folder=tmp_path, clips=CLIPS)
    print(dict(counts))
    assert not failures, failures
    assert sum(counts.values()) == 4


@pytest.mark.parametrize("after_the_signal", [None, "SystemError"])
def test_an_error_raised_by_the_signal_in_set_up_is_the_stop(after_the_signal):
    """A signal's KeyboardInterrupt is raised wherever Python is, and inside C code that calls back
    into Python it can come out as an error of that code's (a CI run: "SystemError: bad argument
    to internal function" from the LiteRT converter, and exit 3 instead of 130). Here code that
    turns it into such an error stands in for that C code, with a real SIGINT to the process.
    The same error without a signal stays an error (exit 3)."""
    script = f"""
import os, signal
from live.cli import StopRequest, run_with_errors

def set_up():
    with stop.guard():
        if {after_the_signal is not None}:
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:
                raise SystemError("bad argument to internal function")
        raise SystemError("a fault of its own")

stop = StopRequest()
raise SystemExit(run_with_errors(set_up))
"""
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                             preexec_fn=as_a_background_job)
    if after_the_signal:
        assert (process.returncode, process.stderr) == (130, "stopped\n")
    else:
        assert process.returncode == 3
        assert process.stderr.startswith("error: unexpected SystemError: a fault of its own"), process.stderr


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 0)])
@pytest.mark.slow
def test_signal_while_the_model_loads_stops_at_once(sig, code, lite_bundle, tmp_path):
    """With an empty cache, live spends its first seconds converting the backbone to LiteRT. A
    signal then ends it with the mid-run exit code, without waiting for the conversion, and
    the cache holds no half-written file."""

    cache = tmp_path / "cache"
    process = subprocess.Popen(["live", "--file", str(CLIPS / "arm_wrestling.mp4"), "--weights", str(lite_bundle),
                                "--no-display"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "LIVE_CACHE_DIR": str(cache)}, preexec_fn=as_a_background_job)
    def converted():  # the weights file in place (not its hidden temporary): the LiteRT export is next
        return [p for p in cache.glob("*.weights.h5") if not p.name.startswith(".")]

    wait_for(converted, 120)
    assert converted(), "live never reached the conversion"
    sent = time.time()
    process.send_signal(getattr(signal, sig))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    took = time.time() - sent
    print(f"{sig} stopped live {took:.1f} s after it was sent")
    assert "Traceback" not in stderr and "error" not in stderr, stderr
    assert "frames read" not in stderr  # it stopped in set-up, not after running the loop
    # Without waiting for the conversion to end: no LiteRT file was finished. (A time bound alone
    # proves nothing on a machine that converts in less: ~20 s on a slow one, 7 s on a fast one.)
    assert not [p.name for p in cache.rglob("*.tflite") if not p.name.startswith(".")], list(cache.rglob("*"))
    assert took < 10.0  # and at once: not stuck in the conversion's native code either
    assert not [p.name for p in cache.rglob("*") if ".tmp." in p.name], list(cache.rglob("*"))


NOTOP = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.mark.parametrize("where", ["keras cache", "keras cache, a folder", "environment"])
@pytest.mark.slow
def test_damaged_inception_weights_are_named_not_called_offline(where, inception_bundle, tmp_path):
    """Garbage where the InceptionV3 weights are looked for: Keras' cache under KERAS_HOME (read
    when Keras is imported, so set for the subprocess), the same path taken by a folder, or
    LIVE_INCEPTION_V3_WEIGHTS. One error line names the damaged path and what is wrong with it,
    instead of "not cached and could not be downloaded"."""
    keras_home = tmp_path / "keras-home"
    (keras_home / "models").mkdir(parents=True)
    damaged = keras_home / "models" / NOTOP if where.startswith("keras cache") else tmp_path / "weights.h5"
    if where == "keras cache, a folder":
        damaged.mkdir()
    else:
        damaged.write_bytes(b"not an HDF5 file\n" * 64)
    # The checksum fails, so Keras downloads again: make that download fail here whether or not
    # this machine is online, through a proxy on a port where nothing listens.
    proxy = f"http://127.0.0.1:{free_port()}"
    env = {"KERAS_HOME": str(keras_home), "https_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": "", "NO_PROXY": "",
           "LIVE_INCEPTION_V3_WEIGHTS": str(damaged) if where == "environment" else ""}
    if where == "keras cache, a folder":  # through train this time: the same loader, the same message
        data = tmp_path / "data"
        for label in ("a", "b"):
            (data / label).mkdir(parents=True)
            shutil.copy(CLIPS / "eye_makeup_320x240.avi", data / label / "clip.avi")
        process = run_command("train", "fit", "--data", data, "--out", tmp_path / "out", "--backbone", "inception_v3",
                              "--quiet", env=env)
    else:
        process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", inception_bundle,
                              "--no-display", env=env)
    error = assert_clean_error(process, str(damaged))
    assert process.returncode == 2, process.stderr  # bad set-up, not an unexpected fault
    expected = {"keras cache": "damaged (wrong checksum",  # and the download that would replace it failed
                "keras cache, a folder": "Is a directory",
                "environment": "file signature not found"}[where]  # h5py's own words
    assert expected in error, error
    assert ("could not be downloaded" in error) == (where == "keras cache"), error
