"""The web view (`live --serve`): a page, each stream's picture as MJPEG and as a snapshot
(annotated on request), results and label events as Server-Sent Events, and a JSON status,
served while the run goes on.

The server is the standard library's ThreadingHTTPServer: no new dependency, and a thread per
viewer suits an app that is threaded already (the classifier runs on the main thread, each
viewer's stream waits on a condition). Its docs warn that http.server is not meant for
production (it implements only basic security checks): this serves a handful of viewers on a
local network, binds to the loopback unless told otherwise, asks for a token off it, limits
viewers and request sizes, and serves no file at all: the page (live/page: HTML, CSS and
JavaScript, shipped in the package) is one response, read once, under a Content-Security-Policy
that allows its own script and style and nothing else.

The page shows each label once, as text and bars beside the picture, so the pictures it asks for
carry no overlay (`?overlay=1` draws the window's overlay, for a viewer that only shows the
picture). It asks for the picture at the size it is shown, never larger than the source, and
starts with a snapshot so that its first paint has a picture. Label events carry the wall-clock
time of their start and end (`wall_start`, `wall_end`, Unix seconds) beside the stream time, so
the page can say when they happened.

Frames cost nothing until someone watches: the classifying thread only keeps a reference to the
newest result. The first viewer to want a new frame draws and encodes it (off the classifying
thread); the others reuse that JPEG. A viewer always gets the newest frame, so one that stops
reading holds no queue and slows nobody.
"""
import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import sys
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from urllib.parse import parse_qs, urlsplit

import cv2

from live.errors import UserError
from live.sinks.base import DrawingSink, Overlay

RESULTS_PER_SECOND = 4   # per stream, on /events: enough for the bars and the chart
HISTORY_S = 60           # the page's chart spans the last minute: a page gets that much history when it opens
HISTORY_PER_SECOND = 2   # points of that history per stream and second (the chart's live part gets 4)
MAX_VIEWERS = 32         # streams (MJPEG and SSE) open at once; more are answered 503
MAX_PATH = 2048          # a longer request target is answered 414
JPEG_QUALITY = 80
COOKIE = "live_token"
BACKLOG_EVENTS = 50      # label events a page gets when it connects
# A picture stream's socket buffer: the kernel's default grows to 4 MB, seconds of stale frames
# queued for a slow viewer; this holds a few, so a slow viewer's next frame is a recent one.
SEND_BUFFER = 128 * 1024
YES = ("1", "true", "yes", "on")  # a query flag that is set, as in ?overlay=1


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class StreamView:
    """One stream as the web view sees it: the newest result and its overlay figures, and the
    JPEGs made of it (one per height asked for), each made once."""

    def __init__(self, info):
        self.info = info
        self.result = self.status = self.image = None
        self.seq = 0  # how many results so far: a viewer waits for a larger one
        self.wall = None  # the newest frame's wall-clock time (Unix seconds): when it was read
        self.size = info.size  # (width, height) of the pictures, once known
        self.encoded = {}  # (height, overlay): (seq, JPEG bytes)
        self.encodes = 0   # JPEGs made so far: at most one per frame, size and overlay, none without viewers
        self.encoding = threading.Lock()
        self.watchers = 0  # viewers of its pictures now
        self.last_published = 0.0
        self.history = deque()  # [wall, top], for the chart of a page that opens now

    def summary(self, top_k, threshold=0.0):
        """The stream as /api/streams and the `result` events give it. `width`, `height`, the
        overlay's figures (`source_fps`, `model_fps`, `model_ms`, `dropped_fraction`), `filled`,
        `seq_len`, `uncertain` and `wall` came after the rest: the page shows them instead of
        drawing them on the picture."""
        result, status = self.result, self.status or {}
        width, height = self.size or (None, None)
        return {"stream": self.info.number, "name": self.info.name, "fps": round(self.info.fps, 3),
                "label": result.label if result else None, "score": round(result.score, 4) if result else None,
                "top": [[label, round(score, 4)] for label, score in result.top(top_k)] if result else [],
                "frame": result.frame.index if result else None, "jpegs": self.encodes,
                "dropped": getattr(self.info.source, "dropped", 0), "missed": getattr(self.info.source, "missed", 0),
                "time": round(result.frame.timestamp, 3) if result else None,
                "wall": round(self.wall, 3) if self.wall else None,
                "width": width, "height": height,
                "filled": result.filled if result else None, "seq_len": result.seq_len if result else None,
                "uncertain": bool(result and result.score < threshold),
                **{key: round(status[key], 3) if key in status else None
                   for key in ("source_fps", "model_fps", "model_ms", "dropped_fraction")}}

    def wall_time(self, stream_time):
        """The wall-clock time (Unix seconds) of a moment of the stream's time, from the newest
        frame's: exact while a source plays at its own pace, near for a --fast run's recent moments."""
        if self.wall is None or self.result is None:
            return None
        return round(self.wall - (self.result.frame.timestamp - stream_time), 3)


class WebSink(DrawingSink):
    """Serves the run on `address` (host, port) while it goes on. `token`: required off the
    loopback (made up and printed once if not given). Usable from the API:

        model.stream("clip.mp4", sinks=[live.web.WebSink(("127.0.0.1", 8080))])
    """

    def __init__(self, address, token=None, top_k=3, threshold=0.0, max_viewers=MAX_VIEWERS, overlay=None,
                 announce=None):
        self.host, self.port = address
        self.token = token  # made up at open() when one is needed and none was given
        self.needs_token = not is_loopback(self.host)
        self.top_k = top_k
        self.threshold = threshold
        self.max_viewers = max_viewers
        super().__init__(overlay or Overlay(top_k=top_k, threshold=threshold))
        self.announce = announce or (lambda text: print(text, file=sys.stderr, flush=True))
        self.changed = threading.Condition()  # a new result, message or the end
        self.views, self.by_name = [], {}
        self.messages = deque(maxlen=1000)  # (id, kind, JSON text), for /events
        self.label_events = deque(maxlen=BACKLOG_EVENTS)
        self.message_id = 0
        self.viewers = 0
        self.closing = False
        self.server = self.thread = None

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def open(self, streams):
        page()  # read now: a broken install fails at start, not at the first viewer
        self.views = [StreamView(info) for info in streams]
        self.by_name = {view.info.name: view for view in self.views}
        self.server = bind(self.host, self.port, _handler_for(self))
        self.port = self.server.server_address[1]
        if self.needs_token and not self.token:
            self.token = secrets.token_urlsafe(18)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="live-web", daemon=True)
        self.thread.start()
        self.announce(f"serving {self.url}" + (f"?token={self.token}" if self.needs_token else ""))

    def put(self, result):
        view = self.by_name[result.stream]
        status = result.status
        now = time.monotonic()
        frame = result.frame
        # A copy of the picture, and only while someone watches: the decoder may reuse the
        # frame's memory for the next frames once this call returns.
        image = frame.image.copy() if self.viewers and frame.image is not None else None
        # When the frame was read, on the wall clock (read_at is on the monotonic clock).
        wall = time.time() - (time.perf_counter() - frame.read_at)
        with self.changed:
            view.result, view.status, view.image, view.wall = result, status, image, wall
            if frame.image is not None:
                view.size = (frame.image.shape[1], frame.image.shape[0])
            view.seq += 1
            for event in result.events:
                self._publish_event(view, event)
            if now - view.last_published >= 1 / RESULTS_PER_SECOND:
                view.last_published = now
                self._publish("result", view.summary(self.top_k, self.threshold))
            if not view.history or wall - view.history[-1][0] >= 1 / HISTORY_PER_SECOND:
                top = [[label, round(score, 4)] for label, score in result.top(self.top_k)]
                view.history.append([round(wall, 3), top])
                while wall - view.history[0][0] > HISTORY_S:
                    view.history.popleft()
            self.changed.notify_all()

    def _publish_event(self, view, event):
        """A label event as the page gets it: the stream's number and name, and wall-clock times."""
        walls = {"wall_start": view.wall_time(event["start"])}
        if event["state"] == "closed":
            walls["wall_end"] = view.wall_time(event["end"])
        self._publish("label", {**event, "stream": view.info.number, "name": view.info.name, **walls})

    def finish(self, events):
        with self.changed:
            for event in events:
                self._publish_event(self.by_name[event["stream"]], event)
            self.changed.notify_all()

    def _publish(self, kind, payload):
        self.message_id += 1
        message = (self.message_id, kind, json.dumps(payload))
        self.messages.append(message)
        if kind == "label":
            self.label_events.append(message)

    def close(self):
        with self.changed:
            self.closing = True
            self.changed.notify_all()  # every viewer's loop ends
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # What the viewers' threads call.

    def wait_frame(self, view, seen, timeout):
        """The newest frame's number once it is newer than `seen` (or `seen` after `timeout`);
        None once the run ends."""
        with self.changed:
            self.changed.wait_for(lambda: self.closing or (view.seq > seen and view.image is not None), timeout)
            return None if self.closing else view.seq if view.image is not None else seen

    def jpeg(self, view, height=None, overlay=False):
        """The newest frame as JPEG bytes (at most `height` pixels high, with the overlay drawn
        if asked), made once for everyone who asks for the same."""
        key = (height, overlay)
        with view.encoding:
            with self.changed:
                result, status, seq, image = view.result, view.status, view.seq, view.image
            cached = view.encoded.get(key)
            if cached and cached[0] == seq:
                return cached[1]
            picture = self.overlay.renderer.draw(image, result, status) if overlay else as_bgr(image)
            if height and height < picture.shape[0]:
                width = max(1, round(picture.shape[1] * height / picture.shape[0]))
                picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            view.encoded = {size: item for size, item in view.encoded.items() if item[0] == seq}
            view.encoded[key] = (seq, data.tobytes())
            view.encodes += 1
            return view.encoded[key][1]

    def summaries(self, history=False):
        """What /api/streams says of each stream; with `history`, the scores of the last minute too."""
        with self.changed:
            return [{**view.summary(self.top_k, self.threshold), **({"history": list(view.history)} if history else {})}
                    for view in self.views]

    def wait_messages(self, after, timeout):
        """Messages newer than id `after` (waiting up to `timeout`); None once the run ends."""
        with self.changed:
            self.changed.wait_for(lambda: self.closing or self.message_id > after, timeout)
            if self.closing:
                return None
            return [message for message in self.messages if message[0] > after]

    def take_viewer(self, view=None):
        """A viewer comes (of `view`'s pictures, if given); False when there are too many."""
        with self.changed:
            if self.viewers >= self.max_viewers:
                return False
            self.viewers += 1
            if view is not None:
                view.watchers += 1
            return True

    def leave(self, view=None):
        with self.changed:
            self.viewers -= 1
            if view is not None:
                view.watchers -= 1

    def wants_pictures(self, stream):
        """Pictures of `stream` only while someone watches it (--engine ray sends them then only)."""
        view = self.by_name.get(stream)  # (asked before open() too: none watches yet)
        return bool(view and view.watchers)


def as_bgr(image):
    """A grey or BGRA frame as BGR, as the overlay draws on: every picture served is colour JPEG."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


@functools.cache
def page():
    """(template, Content-Security-Policy): index.html with page.css and page.js put inline, so
    the page is one response and no file is served; the policy names their hashes, so no other
    script or style runs (an injected one included)."""
    folder = files("live") / "page"
    style, script = (folder / "page.css").read_text("utf-8"), (folder / "page.js").read_text("utf-8")
    template = (folder / "index.html").read_text("utf-8")
    for marker in ("<!-- page.css -->", "<!-- page.js -->", "<!-- streams -->"):
        if template.count(marker) != 1:
            raise RuntimeError(f"live/page/index.html: {marker} must appear once")
    template = template.replace("<!-- page.css -->", f"<style>{style}</style>").replace(
        "<!-- page.js -->", f"<script>{script}</script>")

    def digest(text):
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    policy = (f"default-src 'none'; script-src {digest(script)}; style-src {digest(style)}; img-src 'self' data:; "
              "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return template, policy


def page_with(streams):
    """The page, with the streams as /api/streams gives them (and their last minute's scores),
    so it builds its cards, asks for their pictures and draws their charts before its first
    paint instead of after a round trip; and the server's clock, which those times are on."""
    template, policy = page()
    # Inside <script>, "</" could end the element: a stream's name is any text.
    data = json.dumps({"now": round(time.time(), 3), "streams": streams})
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return template.replace("<!-- streams -->", f'<script type="application/json" id="initial">{data}</script>'), policy


def bind(host, port, handler=BaseHTTPRequestHandler):
    """A server listening on (host, port), or one `error:` line saying why it can't."""
    try:
        return (_IPv6Server if ":" in host else _Server)((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def check_address(host, port):
    """Before the model loads, so that a port in use is said in a fraction of a second."""
    bind(host, port).server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a viewer's stream never keeps the process alive
    allow_reuse_address = True


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


def _handler_for(sink):
    class Handler(_Handler):
        web = sink
    return Handler


class _Handler(BaseHTTPRequestHandler):
    web: WebSink
    server_version = "live"
    timeout = 30  # a viewer whose socket takes no bytes for this long is dropped

    def log_message(self, format, *args):  # noqa: A002  (the server's own name)
        pass  # requests are not logged: stderr is the run's

    def do_GET(self):  # noqa: N802  (http.server's naming)
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer went away

    def _reject(self, *_args):
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET is served\n", allow="GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _reject

    def _route(self):
        if len(self.path) > MAX_PATH:
            return self._send(HTTPStatus.REQUEST_URI_TOO_LONG, b"request target too long\n")
        if self.headers.get("Content-Length", "0") not in ("", "0"):
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"no request body is taken\n")
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if url.path == "/healthz":
            return self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        cookie = None
        if self.web.needs_token:
            given = query.get("token") or self._cookie(COOKIE)
            if not given or not hmac.compare_digest(given.encode(), self.web.token.encode()):
                return self._send(HTTPStatus.UNAUTHORIZED, b"a token is needed: open the address printed at start "
                                  b"(it ends in ?token=...)\n")
            if query.get("token"):
                cookie = f"{COOKIE}={self.web.token}; Path=/; HttpOnly; SameSite=Strict"
        if url.path == "/":
            body, policy = page_with(self.web.summaries(history=True))
            return self._send(HTTPStatus.OK, body.encode(), "text/html; charset=utf-8", set_cookie=cookie,
                              content_security_policy=policy, x_content_type_options="nosniff")
        if url.path == "/api/streams":
            return self._send(HTTPStatus.OK, json.dumps(self.web.summaries()).encode(), "application/json")
        if url.path == "/events":
            return self._viewer(self._events)
        parts = url.path.split("/")
        if len(parts) == 3 and parts[1] == "streams" and parts[2].endswith((".mjpg", ".jpg")):
            number, _, kind = parts[2].partition(".")
            if number.isdigit() and 1 <= int(number) <= len(self.web.views):
                view = self.web.views[int(number) - 1]
                height = _number(query.get("height"), int, 16, 4320)
                overlay = query.get("overlay", "").lower() in YES
                if kind == "jpg":
                    return self._snapshot(view, height, overlay)
                return self._viewer(self._mjpeg, view, height, _number(query.get("fps"), float, 0.1, 60), overlay)
        return self._send(HTTPStatus.NOT_FOUND, b"not found\n")

    def _cookie(self, name):
        for part in self.headers.get("Cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def _send(self, status, body, content_type="text/plain; charset=utf-8", set_cookie=None, **headers):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if set_cookie:
            self.send_header("Set-Cookie", set_cookie)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-").title(), value)
        self.end_headers()
        self.wfile.write(body)

    def _viewer(self, stream, view=None, *args):
        """A response that streams until the viewer leaves or the run ends; counted against the
        limit, and as a watcher of `view`'s pictures when it shows them."""
        if not self.web.take_viewer(view):
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many viewers\n")
        try:
            stream(*(() if view is None else (view,)), *args)
        finally:
            self.web.leave(view)

    def _snapshot(self, view, height, overlay):
        """The next frame, kept for this viewer as for any other (a copy is made only for viewers)."""
        if not self.web.take_viewer(view):
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many viewers\n")
        try:
            with self.web.changed:
                seen = view.seq
            if self.web.wait_frame(view, seen, timeout=5) in (None, seen):
                return self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n")
            picture = self.web.jpeg(view, height, overlay)
        finally:
            self.web.leave(view)
        self._send(HTTPStatus.OK, picture, "image/jpeg")

    def _start_stream(self, content_type):
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()

    def _mjpeg(self, view, height, fps, overlay):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._start_stream("multipart/x-mixed-replace; boundary=frame")
        seen = 0
        while True:
            sent = time.monotonic()
            newest = self.web.wait_frame(view, seen, timeout=1.0)
            if newest is None:
                return
            if newest == seen:
                continue
            seen = newest
            picture = self.web.jpeg(view, height, overlay)
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(picture)
                             + picture + b"\r\n")
            self.wfile.flush()
            if fps:  # the next frame no sooner than 1/fps after this one
                with self.web.changed:
                    self.web.changed.wait_for(lambda: self.web.closing, max(0.0, 1 / fps - (time.monotonic() - sent)))

    def _events(self):
        self._start_stream("text/event-stream")
        with self.web.changed:
            backlog, seen = list(self.web.label_events), self.web.message_id
        self._write_messages(backlog)
        while True:
            messages = self.web.wait_messages(seen, timeout=15)
            if messages is None:
                return
            if not messages:
                self.wfile.write(b": still here\n\n")  # keeps proxies from closing a quiet stream
            else:
                seen = messages[-1][0]
                self._write_messages(messages)
            self.wfile.flush()

    def _write_messages(self, messages):
        self.wfile.write(b"".join(f"id: {id_}\nevent: {kind}\ndata: {data}\n\n".encode()
                                  for id_, kind, data in messages))
        self.wfile.flush()


def _number(text, kind, low, high):
    """A query parameter as a number clamped to [low, high]; None when absent or not a number."""
    try:
        return min(max(kind(text), low), high) if text else None
    except ValueError:
        return None
