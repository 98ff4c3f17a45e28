"""Shared fixtures: the data folder of real clips, photos and models (../shared beside the
clone, or LIVE_TEST_DATA; the project commits none of them), bundles built with real
architectures, and a helper that runs `live` and `train` as real subprocesses.

A test that needs the data folder is marked `real_data` (a module's `pytestmark` or the test's
own mark): without the folder it is skipped with a reason that names it, and under CI=true any
such skip fails the run (pytest_sessionfinish below), so CI never loses coverage quietly."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIVE_TEST_DATA") or ROOT.parent / "shared").absolute()
CLIPS = DATA / "clips"
PHOTOS = DATA / "photos"
MODELS = DATA / "models"  # the model store's folder for the tests (LIVE_MODELS)
KINETICS = ROOT / "weights" / "kinetics600"  # the default bundle: MoViNet, named in the model store
MISSING_DATA = f"needs the data folder {DATA} (clips, photos, models), which is not there; set LIVE_TEST_DATA"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    """One cache for the test run (converted weights, LiteRT models, features), kept out of ~.
    Under pytest-xdist every worker has a base folder of its own; they share their parent's
    cache, so a backbone is converted once per run, not once per worker (entries are written
    to a temporary name and renamed, so two workers filling one entry at once is safe)."""
    base = tmp_path_factory.getbasetemp()
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "live-cache"
    path.mkdir(exist_ok=True)
    os.environ["LIVE_CACHE_DIR"] = str(path)
    os.environ["LIVE_MODELS"] = str(MODELS)  # for every `live` and `train` the tests start, too
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", f"real_data: reads the data folder ({DATA}); skipped without it")


def pytest_runtest_setup(item):
    if item.get_closest_marker("real_data") and not CLIPS.is_dir():
        pytest.skip(MISSING_DATA)


_skipped_for_data = []


def pytest_runtest_logreport(report):
    if report.skipped and MISSING_DATA in str(report.longrepr):
        _skipped_for_data.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """Under CI=true a test skipped for want of the data folder fails the run (on the controller:
    xdist's workers report their tests to it)."""
    if os.environ.get("CI") == "true" and _skipped_for_data and not hasattr(session.config, "workerinput"):
        print(f"\nerror: {len(_skipped_for_data)} tests were skipped because the data folder {DATA} is missing "
              f"(first: {_skipped_for_data[0]}); CI must run them all", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def run_command(command, *args, env=None, timeout=600, **kwargs):
    """Run `live` or `train` as a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([command, *map(str, args)], capture_output=True, text=True, env=full_env,
                          timeout=timeout, **kwargs)


def assert_clean_error(process, *fragments):
    """A failure the user can read: non-zero exit, one `error: …` line, no traceback."""
    assert process.returncode != 0, process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, process.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def make_bundle(path, backbone_name, weights=None, labels=("alpha", "beta", "gamma"), seq_len=20):
    """An untrained bundle with a real backbone and the real sequence model architecture."""
    import live  # noqa: F401
    from live.backbones import fingerprint, get_backbone, load_backbone_model
    from live.bundle import write_bundle
    from training.model import build_sequence_model

    backbone = get_backbone(backbone_name)
    model = load_backbone_model(backbone_name, weights)
    head = build_sequence_model("motion", seq_len, backbone.feature_size, len(labels))
    manifest = dict(backbone=backbone_name, image_size=backbone.image_size, feature_size=backbone.feature_size,
                    backbone_fingerprint=fingerprint(model), seq_len=seq_len, frame_step=1, frame_rate=None,
                    trained_on="untrained test bundle", metrics={})
    return write_bundle(path, head, list(labels), manifest, force=True)


@pytest.fixture(scope="session")
def lite_bundle(tmp_path_factory, cache_dir):
    """Untrained head on the real EfficientNet-Lite0 backbone with its ImageNet weights."""
    return make_bundle(tmp_path_factory.mktemp("bundles") / "lite", "efficientnet_lite0")


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory, cache_dir):
    """A local InceptionV3 weights file, written from a weights=None model (no ImageNet here)."""
    import live  # noqa: F401
    from live.backbones import load_backbone_model

    path = tmp_path_factory.mktemp("weights") / "inception_v3_random.weights.h5"
    load_backbone_model("inception_v3", "random").layers[-1].save_weights(path)
    return path


@pytest.fixture(scope="session")
def inception_bundle(tmp_path_factory, inception_weights):
    return make_bundle(tmp_path_factory.mktemp("bundles") / "inception", "inception_v3", str(inception_weights))


def write_clip(path, frames, fps=25.0, codec="MJPG"):
    import cv2

    frames = list(frames)
    height, width = frames[0].shape[:2]
    colour = frames[0].ndim == 3
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height), colour)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def frame_count(path):
    """Frames OpenCV decodes from a video, counted by reading them all."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def as_a_background_job():
    """What a script's `command &` (a CI runner's) gives the process: SIGINT ignored, so that
    Python installs no handler of its own. Ctrl-C and `kill -INT` must still stop it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for(condition, timeout, interval=0.1):
    """Poll `condition` until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.time() + timeout
    while not (result := condition()) and time.time() < deadline:
        time.sleep(interval)
    return result


def unchanged_for(value, seconds):
    """A condition for wait_for: true once `value()` has not changed for `seconds` (a reader
    that has stopped getting frames, an output that stopped growing)."""
    last = [value(), time.time()]

    def condition():
        current = value()
        if current != last[0]:
            last[:] = [current, time.time()]
        return time.time() - last[1] >= seconds

    return condition


@pytest.fixture
def display():
    """A fresh Xvfb, for the tests of real windows, on a display number it picks itself
    (-displayfd), so tests on two xdist workers, or a desktop already on :0, never collide.
    -noreset: by default an X server resets whenever its last client leaves (every `xdotool
    search` while no window is up), and a Qt connecting during a reset aborts the process ("no
    Qt platform plugin could be initialized"; 1 start in 8 with a client polling beside it,
    none with -noreset). A desktop always has clients, so only the test's bare server has this
    race."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1600x1200x24", "-nolisten", "tcp", "-noreset"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,))
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        number = announced.readline().strip()  # written once the server is ready
    assert number.isdigit(), "Xvfb did not start"
    assert wait_for(lambda: subprocess.run(["xdpyinfo", "-display", f":{number}"], capture_output=True).returncode == 0,
                    30, interval=0.2), "Xvfb did not answer"
    yield f":{number}"
    server.terminate()
    server.wait()


def x_env(screen):
    return {**os.environ, "DISPLAY": screen, "QT_QPA_PLATFORM": "xcb"}


@pytest.fixture
def window_manager(display):
    """openbox on the test display, as on a desktop: it frames the window and sends the close
    button's request. Tests that read the window's picture want one: on a bare Xvfb, Qt now and
    then never paints a mapped window (4 runs in 40 of a bare imshow script; none of 24 with
    openbox)."""
    env = x_env(display)

    def managing():
        return subprocess.run(["wmctrl", "-m"], env=env, capture_output=True).returncode == 0

    for _ in range(3):  # now and then openbox exits at once, with status 1 and not a word: start it again
        manager = subprocess.Popen(["openbox", "--sm-disable"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if wait_for(lambda: manager.poll() is not None or managing(), 30, interval=0.2) and manager.poll() is None:
            break
    assert managing(), "openbox did not start"
    yield display
    manager.terminate()
    manager.wait()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port):
    """True once something listens on 127.0.0.1:`port`, read from /proc/net/tcp: connecting to
    find out would use up ffmpeg's single-client listener."""
    wanted = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)  # 0A: LISTEN


def serve_stream(clip, port, timeout=30):
    """ffmpeg serving `clip` in real time, looped, as an HTTP MPEG-TS stream on 127.0.0.1:`port`;
    returns once it listens."""
    server = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                               "-c:v", "mpeg2video", "-q:v", "5", "-an", "-f", "mpegts", "-listen", "1",
                               f"http://127.0.0.1:{port}/stream.ts"])
    if not wait_for(lambda: listening(port) or server.poll() is not None, timeout) or server.poll() is not None:
        server.kill()
        raise RuntimeError(f"ffmpeg did not start listening on port {port}")
    return server


class CameraServer:
    """An IP camera as many are: an endless MJPEG stream over HTTP (`url`), looped over a clip at
    `fps`, to every client that connects, so that a reader that reconnects (a stream moved to
    another Ray worker) gets it again, as ffmpeg's single-client listener (serve_stream) does not."""
    def __init__(self, clip, port, fps=25.0):
        import cv2

        capture = cv2.VideoCapture(str(clip))
        self.jpegs = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            self.jpegs.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        capture.release()
        self.period, server = 1.0 / fps, self
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                started, number = time.perf_counter(), 0
                try:
                    while not server.stopped.is_set():
                        jpeg = server.jpegs[number % len(server.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                        number += 1
                        time.sleep(max(0.0, started + number * server.period - time.perf_counter()))
                except (BrokenPipeError, ConnectionResetError):
                    pass
            def log_message(self, *args):
                pass
        self.stopped = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/video.mjpg"
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
    def kill(self):
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into node ids
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`--dist loadgroup`), tests are spread one by one over the workers,
    except that the tests of a module that share a module-scoped fixture (a trained bundle, a
    quantized backbone, a served stream) go to one worker together, so the fixture is built
    once. Tests that need only session fixtures or none go wherever a worker is free."""
    for item in items:
        definitions = item._fixtureinfo.name2fixturedefs
        if any(fixture.scope == "module" for name in item.fixturenames for fixture in definitions.get(name, ())):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
