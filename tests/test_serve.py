"""`live --serve` over real HTTP: real `live` processes on the shipped arm-wrestling sample,
looped, with the default bundle, and plain sockets, http.client and Debian's chromium
(headless, driven by Playwright) on 127.0.0.1 as the viewers. One server is shared by the tests
that only look; the token and SIGTERM tests start their own, bound to 0.0.0.0 (every request
still goes to 127.0.0.1), and the four-stream page its own, with the clip given four times."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import CLIPS, wait_for

SAMPLE = CLIPS / "arm_wrestling.mp4"
pytestmark = [pytest.mark.slow, pytest.mark.real_data]  # each server loads the Kinetics-600 bundle: tens of seconds on a busy CI machine


class Served:
    """A `live --serve` subprocess; `port` and `token` as it printed them."""

    def __init__(self, tmp_path, *options, env=None, files=(SAMPLE,)):
        self.log = tmp_path / "live.err"
        self.events = tmp_path / "events.jsonl"
        self.started = time.time()
        # `python -m live`: this checkout's entry point, as the `live` script runs it once installed.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "live", *[arg for file in files for arg in ("--file", str(file))], "--loop",
             "--no-display", "--events", str(self.events), *options],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), env={**os.environ, **(env or {})})
        assert wait_for(lambda: "serving " in self.log.read_text() or self.process.poll() is not None, 240), \
            "live did not start serving"
        self.serving = time.time()
        found = re.search(r"serving http://[^:]+:(\d+)/(?:\?token=(\S+))?", self.log.read_text())
        assert found, self.log.read_text()
        self.port, self.token = int(found[1]), found[2]

    def get(self, path, headers=None):
        """(status, headers, body) of a GET to 127.0.0.1, the path sent as given (no clean-up)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, response.headers, body

    def open_stream(self, path, receive_buffer=None):
        """A socket that has sent the GET for `path`, and a file to read the response from."""
        connection = socket.socket()
        if receive_buffer:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        connection.settimeout(20)
        connection.connect(("127.0.0.1", self.port))
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return connection, connection.makefile("rb")

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(tmp_path_factory.mktemp("served"), "--serve", "0")
    assert wait_for(lambda: json.loads(server.get("/api/streams")[2])[0]["label"] == "arm wrestling", 120)
    yield server
    server.stop()


def read_headers(reader):
    status = reader.readline()
    headers = {}
    while (line := reader.readline().strip()):
        key, _, value = line.decode().partition(":")
        headers[key.lower()] = value.strip()
    return int(status.split()[1]), headers


def read_parts(reader, count):
    """The next `count` JPEGs of a multipart MJPEG response, as bytes."""
    parts = []
    while len(parts) < count:
        boundary = reader.readline().strip()
        assert boundary == b"--frame", boundary
        _, headers = (None, {})
        while (line := reader.readline().strip()):
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(reader.read(int(headers["content-length"])))
        assert reader.readline() == b"\r\n"
    return parts


def clip_frames():
    capture = cv2.VideoCapture(str(SAMPLE))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    return np.array(frames)


def is_a_frame_of_the_clip(picture, frames):
    """Whether the picture's lower half (under the overlay) is one of the clip's frames, within
    JPEG's loss: a frame whose memory the decoder reused before it was drawn is not."""
    low = picture.shape[0] // 2
    differences = np.abs(frames[:, low:].astype(np.int16) - picture[low:].astype(np.int16)).mean(axis=(1, 2, 3))
    return differences.min() < 6


def difference_from_the_clip(picture, frames, rows=slice(None), columns=slice(None), size=None):
    """How far a region of the picture is from the same region of the nearest of the clip's
    frames (mean absolute difference, 0-255), the frames scaled to the picture's size first.
    With `size` (width, height), both are scaled to it first: a picture as a browser showed it
    is resampled and may be a pixel off the frame's edges."""
    if size:
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    height, width = picture.shape[:2]
    if frames.shape[1:3] != (height, width):
        frames = np.array([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in frames])
    region = picture[rows, columns].astype(np.int16)
    return np.abs(frames[:, rows, columns].astype(np.int16) - region).mean(axis=(1, 2, 3)).min()


def decode(jpeg):
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9", "not a JPEG"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_frames_are_encoded_only_for_viewers_and_once_for_all_of_them(served):
    """First in the module: no one has watched yet."""
    def status():
        return json.loads(served.get("/api/streams")[2])[0]

    before = status()
    time.sleep(1)
    idle = status()
    assert idle["frame"] > before["frame"] and idle["jpegs"] == 0

    def watch():
        connection, reader = served.open_stream("/streams/1.mjpg")
        with connection:
            read_headers(reader)
            read_parts(reader, 10)

    viewers = [threading.Thread(target=watch) for _ in range(3)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(60)
    watched = status()
    assert 10 <= watched["jpegs"] <= watched["frame"] - idle["frame"]  # not 30: three viewers, one JPEG a frame


def test_mjpeg_parts_are_jpegs_of_the_clip_that_change(served):
    connection, reader = served.open_stream("/streams/1.mjpg")
    with connection:
        status, headers = read_headers(reader)
        assert status == 200 and headers["content-type"].startswith("multipart/x-mixed-replace; boundary=frame")
        pictures = [decode(part) for part in read_parts(reader, 5)]
    width, height = cv2.VideoCapture(str(SAMPLE)).get(cv2.CAP_PROP_FRAME_WIDTH), \
        cv2.VideoCapture(str(SAMPLE)).get(cv2.CAP_PROP_FRAME_HEIGHT)
    assert all(picture.shape[:2] == (height, width) for picture in pictures)
    assert np.abs(pictures[0].astype(int) - pictures[-1].astype(int)).mean() > 1  # the video moves
    frames = clip_frames()
    assert all(is_a_frame_of_the_clip(picture, frames) for picture in pictures)

    connection, reader = served.open_stream("/streams/1.mjpg?height=120&fps=4")
    with connection:
        read_headers(reader)
        started = time.monotonic()
        small = [decode(part) for part in read_parts(reader, 3)]
        assert time.monotonic() - started >= 0.45  # three parts at 4 a second take at least half a second
    assert all(picture.shape[0] == 120 for picture in small)


def test_the_snapshot_health_and_status(served):
    status, headers, body = served.get("/streams/1.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert decode(body).shape[:2] == (int(cv2.VideoCapture(str(SAMPLE)).get(cv2.CAP_PROP_FRAME_HEIGHT)),
                                      int(cv2.VideoCapture(str(SAMPLE)).get(cv2.CAP_PROP_FRAME_WIDTH)))
    assert served.get("/healthz")[:1] == (200,)
    (stream,) = json.loads(served.get("/api/streams")[2])
    assert stream["stream"] == 1 and stream["name"] == str(SAMPLE) and stream["fps"] == pytest.approx(28, abs=1)
    assert stream["dropped"] == stream["missed"] == 0  # a file drops nothing
    assert stream["label"] == "arm wrestling" and stream["top"][0][0] == "arm wrestling"
    page = served.get("/")[2].decode()
    assert "/streams/" in page and "EventSource" in page and "<script src" not in page  # nothing from outside


def test_server_sent_events_carry_results_and_label_events(served):
    connection, reader = served.open_stream("/events")
    messages = []
    with connection:
        status, headers = read_headers(reader)
        assert status == 200 and headers["content-type"] == "text/event-stream"
        started = time.monotonic()
        while len([kind for kind, _ in messages if kind == "result"]) < 6:
            lines = []
            while (line := reader.readline().decode().rstrip("\n")):
                lines.append(line)
            fields = dict(line.split(": ", 1) for line in lines if not line.startswith(":"))
            if "event" in fields:
                messages.append((fields["event"], json.loads(fields["data"])))
        elapsed = time.monotonic() - started
    results = [data for kind, data in messages if kind == "result"]
    labels = [data for kind, data in messages if kind == "label"]
    assert results[-1]["label"] == "arm wrestling" and results[-1]["stream"] == 1
    assert elapsed >= 0.8  # at most a few results a second: 6 take over a second, not a burst of 28 a second
    # The segment opened when the clip began (sent to a page that connects later) is the clip's label.
    assert {"stream": 1, "state": "open", "label": "arm wrestling"}.items() <= labels[0].items()


def one_picture(served, path):
    """The first picture a GET of `path` gives (a snapshot, or an MJPEG stream's first part)."""
    if ".mjpg" not in path:
        status, _, body = served.get(path)
        assert status == 200
        return decode(body)
    connection, reader = served.open_stream(path)
    with connection:
        assert read_headers(reader)[0] == 200
        return decode(read_parts(reader, 1)[0])


TOP_LEFT = (slice(0, 60), slice(0, 100))  # where the overlay draws its box (headline and first bars)


def test_pictures_carry_the_overlay_only_when_asked(served):
    """The page shows the labels beside the picture, so its pictures are the clip's frames as
    they are; ?overlay=1 draws the overlay on them, for a viewer that shows only the picture."""
    frames = clip_frames()
    for kind in ("jpg", "mjpg"):
        plain = one_picture(served, f"/streams/1.{kind}")
        assert difference_from_the_clip(plain, frames) < 6  # the whole picture is a frame: nothing drawn on it
        assert difference_from_the_clip(plain, frames, *TOP_LEFT) < 6
        annotated = one_picture(served, f"/streams/1.{kind}?overlay=1")
        assert is_a_frame_of_the_clip(annotated, frames)  # under the overlay, the frame
        assert difference_from_the_clip(annotated, frames, *TOP_LEFT) > 20  # the overlay's darkened box and text
    small = one_picture(served, "/streams/1.jpg?overlay=1&height=128")
    assert small.shape[0] == 128 and difference_from_the_clip(small, frames, slice(0, 30), slice(0, 50)) > 20


def read_events(reader, enough):
    """(kind, data) of the Server-Sent Events read until `enough(messages)` is true."""
    messages = []
    while not enough(messages):
        lines = []
        while (line := reader.readline().decode().rstrip("\n")):
            lines.append(line)
        fields = dict(line.split(": ", 1) for line in lines if not line.startswith(":"))
        if "event" in fields:
            messages.append((fields["event"], json.loads(fields["data"])))
    return messages


def test_results_and_label_events_carry_wall_clock_time(served):
    """A page says when a label event happened on the clock (14:03:07), not at which second of
    the stream; the results say when their frame was read, and what the overlay would have
    drawn on the picture (its size, the rates, the warm-up)."""
    connection, reader = served.open_stream("/events")
    with connection:
        read_headers(reader)
        messages = read_events(reader, lambda messages: {"label", "result"} <= {kind for kind, _ in messages})
        received = time.time()
    first = next(data for kind, data in messages if kind == "label")  # the backlog's first, or the run's
    result = next(data for kind, data in messages if kind == "result")
    assert first["state"] == "open" and first["start"] < 2  # the segment opened as the clip began
    assert served.started <= first["wall_start"] <= served.serving + 30  # so, on the clock, as the run began
    assert 0 <= received - result["wall"] < 5
    capture = cv2.VideoCapture(str(SAMPLE))
    assert (result["width"], result["height"]) == (capture.get(cv2.CAP_PROP_FRAME_WIDTH),
                                                   capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    assert result["source_fps"] == pytest.approx(28, abs=1) and result["model_fps"] > 0 and result["model_ms"] > 0
    assert result["filled"] == result["seq_len"] and result["uncertain"] is False and result["dropped_fraction"] == 0


def test_twenty_viewers_at_once_each_get_the_newest_frames(served):
    received, failures = [], []

    def watch():
        try:
            connection, reader = served.open_stream("/streams/1.mjpg")
            with connection:
                assert read_headers(reader)[0] == 200
                received.append(len([decode(part) for part in read_parts(reader, 3)]))
        except Exception as exc:  # noqa: BLE001  (reported below, with the others)
            failures.append(repr(exc))

    viewers = [threading.Thread(target=watch) for _ in range(20)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(60)
    assert failures == [] and received == [3] * 20


def test_a_viewer_that_never_reads_slows_nothing(served):
    """The stream plays at its own pace (28 frames a second): with a viewer whose socket is full,
    frames are still classified at that pace, and another viewer still gets new frames."""
    stuck, _ = served.open_stream("/streams/1.mjpg", receive_buffer=4096)
    with stuck:
        time.sleep(2)  # long enough to fill the stuck viewer's socket buffers (the server's holds 256 KB)

        def classified():
            return json.loads(served.get("/api/streams")[2])[0]["frame"]

        before = classified()
        time.sleep(4)
        after = classified()
        assert after - before >= 0.8 * 4 * 28, f"{after - before} frames classified in 4 s"
        connection, reader = served.open_stream("/streams/1.mjpg")
        with connection:
            read_headers(reader)
            assert len(read_parts(reader, 3)) == 3


@pytest.mark.parametrize("path", ["/streams/99.mjpg", "/streams/0.jpg", "/streams/1.png", "/../../etc/passwd",
                                  "/%2e%2e/%2e%2e/etc/passwd", "/index.html", "/weights"])
def test_unknown_paths_and_streams_are_404(served, path):
    status, _, body = served.get(path)
    assert status == 404 and b"root:" not in body


def test_only_get_is_served(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
    connection.request("POST", "/api/streams", body=b"x" * 100)
    assert connection.getresponse().status == 405


def test_off_the_loopback_a_token_is_needed_and_sigterm_ends_at_once_with_viewers(tmp_path):
    server = Served(tmp_path, "--serve", "0.0.0.0:0")
    try:
        assert server.token and len(server.token) >= 16  # made up, printed once
        assert server.get("/healthz")[0] == 200
        for path in ("/", "/api/streams", "/streams/1.jpg", "/events", "/streams/1.mjpg", f"/?token=x{server.token}"):
            assert server.get(path)[0] == 401, path
        status, headers, _ = server.get(f"/?token={server.token}")
        assert status == 200
        cookie = headers["Set-Cookie"].split(";")[0]
        assert cookie == f"live_token={server.token}" and "HttpOnly" in headers["Set-Cookie"]
        # Two seconds of the clip classified: a label segment is open, to be closed on the way out.
        assert wait_for(lambda: (json.loads(server.get("/api/streams", {"Cookie": cookie})[2])[0]["time"] or 0) > 2, 120)

        viewers = []
        for path in ["/streams/1.mjpg"] * 4 + ["/events"]:
            connection, reader = server.open_stream(f"{path}?token={server.token}")
            assert read_headers(reader)[0] == 200
            viewers.append(connection)
        stopped = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(10) == 0, server.log.read_text()
        assert time.monotonic() - stopped < 2, f"{time.monotonic() - stopped:.1f} s to stop"
        for connection in viewers:
            connection.close()
        assert "classified" in server.log.read_text()  # the summary, as after any run
        events = [json.loads(line) for line in server.events.read_text().splitlines()]
        assert events and events[-1]["label"] == "arm wrestling"  # the open segment closed on the way out
    finally:
        server.stop()


def test_a_port_in_use_is_one_error_line(tmp_path):
    from conftest import assert_clean_error

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = subprocess.run([sys.executable, "-m", "live", "--file", str(SAMPLE), "--no-display",
                                  "--max-frames", "5", "--serve", str(taken.getsockname()[1])],
                                 capture_output=True, text=True, timeout=300)
    assert_clean_error(process, "cannot serve on 127.0.0.1:")


def test_a_bad_address_is_refused_before_loading(tmp_path):
    from conftest import assert_clean_error

    process = subprocess.run([sys.executable, "-m", "live", "--file", str(SAMPLE), "--no-display",
                              "--serve", "localhost:http"], capture_output=True, text=True, timeout=60)
    assert process.returncode == 2
    assert_clean_error(process, "--serve localhost:http")


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def test_the_page_in_a_real_browser(served, tmp_path):
    """Debian's chromium, headless, driven by Playwright (no browser of its own downloaded)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(f"http://127.0.0.1:{served.port}/")
            page.wait_for_function("document.querySelector('.stream .label')?.textContent.startsWith('arm wrestling')",
                                   timeout=30000)
            page.wait_for_selector("#events li", timeout=30000)
            assert "arm wrestling" in page.locator("#events li").first.text_content()
            picture = page.locator(".stream img")
            page.wait_for_function("document.querySelector('.stream img').naturalWidth > 0", timeout=30000)
            first = decode_png(picture.screenshot())
            time.sleep(1)
            second = decode_png(picture.screenshot())
            assert first.mean() > 20  # the clip, not an empty box
            assert np.abs(first.astype(int) - second.astype(int)).mean() > 1  # and it plays
            page.screenshot(path=str(tmp_path / "page.png"))
            assert page.locator(".bar").count() == 3  # --top-k's default
        finally:
            browser.close()


def decode_png(data):
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


# Each picture's place, its size as shown and as loaded, and its card's: read in one go.
PICTURES = """[...document.querySelectorAll('.stream')].map(card => {
  const img = card.querySelector('img'), box = img.getBoundingClientRect(), rect = card.getBoundingClientRect();
  return {x: box.x, y: box.y, width: box.width, height: box.height, naturalWidth: img.naturalWidth,
          src: img.src, room: card.querySelector('.body').clientWidth, left: rect.left, right: rect.right};
})"""
# Each card's bars, legend, chart lines and time axis, read in one go (a result between two
# reads would change the bars).
CHARTS = """[...document.querySelectorAll('.stream')].map(card => ({
  bars: [...card.querySelectorAll('.bar span')].map(node => node.textContent.replace(/ \\d+%$/, '')),
  legend: [...card.querySelectorAll('.legend span')].map(node => node.textContent.replace(/^\\u25A0 /, '')),
  lines: JSON.parse(card.querySelector('canvas').dataset.lines || 'null'),
  axis: [...card.querySelectorAll('.axis span')].map(node => node.textContent)}))"""


def check_the_page_at_1280x800(server, count, screenshot, history_s=0):
    """What a user sees of `count` streams of the clip on a 1280x800 screen, in Debian's chromium;
    with `history_s`, that the charts show at least that many seconds from before the page opened."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    capture = cv2.VideoCapture(str(SAMPLE))
    clip_width = capture.get(cv2.CAP_PROP_FRAME_WIDTH)
    frames = clip_frames()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            # A script or style the Content-Security-Policy blocked, a request that failed, an exception.
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"http://127.0.0.1:{server.port}/")  # returns at the load event
            first = decode_png(page.screenshot(path=str(screenshot.with_suffix(".first.png"))))
            pictures = page.evaluate(PICTURES)
            assert len(pictures) == count
            for picture in pictures:
                # In the first screenshot: each picture, whole on the screen, and not a black box.
                assert picture["naturalWidth"] > 0
                x, y = round(picture["x"]), round(picture["y"])
                right, bottom = x + round(picture["width"]), y + round(picture["height"])
                assert 0 <= x and right <= 1280 and 0 <= y and bottom <= 800, picture
                assert first[y:bottom, x:right].mean() > 20, picture
            # The grid uses the screen's width.
            assert max(p["right"] for p in pictures) - min(p["left"] for p in pictures) > 0.9 * 1280
            for index in range(count if history_s else 0):
                box = page.locator(".stream canvas").nth(index).bounding_box()
                x, y, width, height = (round(box[key]) for key in ("x", "y", "width", "height"))
                chart = cv2.cvtColor(first[y:y + height, x:x + width], cv2.COLOR_BGR2HSV)
                # The lines are in colour; the grid and its figures are grey.
                drawn = np.flatnonzero(((chart[..., 1] > 80) & (chart[..., 2] > 80)).any(axis=0))
                assert drawn.size and drawn[-1] - drawn[0] >= width * history_s / 60, (index, drawn)

            page.wait_for_function("[...document.querySelectorAll('.stream .label')]"
                                   ".every(label => label.textContent.startsWith('arm wrestling'))", timeout=30000)
            page.wait_for_function("[...document.images].every(img => img.src.includes('.mjpg') && img.complete)",
                                   timeout=30000)
            assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
            for picture in page.evaluate(PICTURES):
                # As wide as the source or the card allows, and never enlarged: as sharp as the source.
                assert picture["width"] == pytest.approx(min(clip_width, picture["room"]), abs=1), picture
                assert picture["width"] <= picture["naturalWidth"] + 0.5, picture
            for index in range(count):
                # The labels are beside the picture, not on it: its top left is the clip's.
                shown = decode_png(page.locator(".stream img").nth(index).screenshot())
                # The overlay darkens this corner to a third (tens of levels off); resampling costs a few.
                assert difference_from_the_clip(shown, frames, slice(0, 20), slice(0, 40), size=(80, 60)) < 15
            for chart in page.evaluate(CHARTS):
                # The legend names the chart's lines, which are the bars' labels.
                assert len(chart["bars"]) == 3 and chart["legend"] == chart["lines"] == chart["bars"], chart
                assert chart["bars"][0] == "arm wrestling"
                assert chart["axis"] == ["60 s ago", "30 s ago", "now"]

            # The label events on the clock: each stream's segment opened as its clip began.
            page.wait_for_function(f"document.querySelectorAll('#events li').length >= {count}", timeout=30000)
            events = page.locator("#events li")
            assert len([text for text in events.all_text_contents() if "arm wrestling" in text]) >= count
            for index in range(events.count()):
                when = events.nth(index).locator("time")
                moment = datetime.fromisoformat(when.get_attribute("datetime").replace("Z", "+00:00")).timestamp()
                assert server.started <= moment <= time.time()
                assert when.text_content().startswith(time.strftime("%H:%M:%S", time.localtime(moment)))
            page.screenshot(path=str(screenshot))
            assert errors == []
        finally:
            browser.close()


def test_one_stream_on_a_1280x800_screen(served, tmp_path):
    check_the_page_at_1280x800(served, 1, tmp_path / "page-1-stream.png")


def test_four_streams_on_a_1280x800_screen(tmp_path):
    """`--file` given four times (the same clip): four cards side by side, each with its picture."""
    server = Served(tmp_path, "--serve", "0", files=[SAMPLE] * 4)
    try:
        assert wait_for(lambda: [stream["label"] for stream in json.loads(server.get("/api/streams")[2])]
                        == ["arm wrestling"] * 4, 120)
        time.sleep(max(0.0, server.serving + 20 - time.time()))  # 20 s of scores before the page opens
        check_the_page_at_1280x800(server, 4, tmp_path / "page-4-streams.png", history_s=10)
    finally:
        server.stop()
