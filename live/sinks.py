"""Where results go: every output of a run (the window, the annotated video, the JSONL log, the
label events, the summary, the web view) is a Sink. `Model.stream(..., sinks=[...])` opens each
one with the streams it will see, hands it every result, and closes it once, however the run
ends (its end, Ctrl-C, a generator closed early, a stream that failed). A sink of your own
(a webhook, a database) is a class with the same three methods:

    class Webhook(live.Sink):
        def put(self, result):
            if result.score > 0.9:
                post(result.to_dict())

`put` returns False to end the run (the window's q, stdout's reader gone); anything else goes on.
A sink that may be slow must not stall classification: the window and the web view take the
newest picture and drop the rest; the video, the JSONL and the events lose nothing.
"""
import time
from dataclasses import dataclass

from live.errors import UserError


@dataclass
class StreamInfo:
    """What a sink knows of a stream before its first result."""
    number: int        # 1, 2, … in stream order, as --output numbers its files
    name: str          # the results' `stream`
    fps: float         # the source's frame rate
    size: tuple | None  # (width, height), None until a stream of numpy frames has shown one
    source: object      # the opened source (frames read, dropped, for the overlay's figures)


class Sink:
    # Whether put() looks at every frame's picture. A sink of your own may, so it is assumed;
    # when no sink of a run does, the frames the model skips are never converted (live.sources).
    needs_pictures = True

    def open(self, streams):
        """Called once before the first result, with a StreamInfo per stream."""

    def put(self, result):
        """Called for each result, on the classifying thread: keep it short."""

    def close(self):
        """Called once at the end, whatever ended the run."""


def deliver(result, sinks):
    """Hand one result to every sink; False when one of them asks for the run to end."""
    wanted = True
    for sink in sinks:
        if sink.put(result) is False:
            wanted = False
    return wanted


class Overlay:
    """The annotated picture, drawn once per result for every sink that wants it (the window
    and the video share it), with each stream's overlay figures (OverlayStatus) kept current."""

    def __init__(self, top_k=3, threshold=0.0, min_height=0, max_fps=None):
        from live.render import OverlayRenderer

        self.renderer = OverlayRenderer(top_k=top_k, threshold=threshold, min_height=min_height)
        self.max_fps = max_fps
        self.statuses = {}
        self._drawn = (None, None)  # (result, its picture): the last one drawn

    def open(self, streams):
        from live.status import OverlayStatus

        if not self.statuses:
            self.statuses = {stream.name: OverlayStatus(stream.source, self.max_fps) for stream in streams}

    def update(self, result):
        """Once per result, before anyone draws it (StatusSink does this first in the list)."""
        self.statuses[result.stream].update(result)

    def status(self, result):
        return self.statuses[result.stream].as_dict()

    def picture(self, result):
        if self._drawn[0] is not result:
            started = time.perf_counter()
            picture = self.renderer.draw(result.frame.image, result, self.status(result))
            result.timings["draw"] = (time.perf_counter() - started) * 1000
            self._drawn = (result, picture)
        return self._drawn[1]


class DrawingSink(Sink):
    """A sink that shows the annotated picture. Given the run's Overlay (build_sinks does, with
    a StatusSink first to keep it current) it shares its drawings; alone (a user's
    `VideoSink("out.mp4")`) it keeps an Overlay of its own up to date."""

    def __init__(self, overlay=None):
        self.own_overlay = overlay is None
        self.overlay = overlay or Overlay()

    def open(self, streams):
        if self.own_overlay:
            self.overlay.open(streams)

    def put(self, result):
        if self.own_overlay:
            self.overlay.update(result)


class StatusSink(Sink):
    """Keeps the overlay's figures current: first in the list, so every sink after it sees them."""

    needs_pictures = False

    def __init__(self, overlay):
        self.overlay = overlay

    def open(self, streams):
        self.overlay.open(streams)

    def put(self, result):
        self.overlay.update(result)


class WindowSink(DrawingSink):
    """The on-screen window (one stream, or a grid of several). It is shown on the classifying
    thread, since GUI toolkits draw from one thread only; a grid is composed and shown at most
    30 times a second, whatever the streams' total rate, and a picture replaced before it is
    shown is dropped (not resized into the grid)."""

    GRID_FPS = 30

    def __init__(self, overlay=None):
        super().__init__(overlay)
        self.window = self.grid = None
        self._latest, self._shown = {}, 0.0

    def open(self, streams):
        from live.display import Window
        from live.render import GridView

        super().open(streams)
        self.window = Window()
        self.grid = GridView([stream.name for stream in streams]) if len(streams) > 1 else None

    def put(self, result):
        super().put(result)
        if not self.grid:
            return self.window.show(self.overlay.picture(result))
        # Drawn now: the decoder may reuse a frame's memory once this call returns.
        self._latest[result.stream] = self.overlay.picture(result)
        now = time.perf_counter()
        if now - self._shown < 1 / self.GRID_FPS:
            return True
        self._shown = now
        for name, picture in self._latest.items():
            self.grid.put(name, picture)
        self._latest.clear()
        return self.window.show(self.grid.image)

    def close(self):
        if self.window:
            self.window.close()


class VideoSink(DrawingSink):
    """The annotated video, one file per stream (--output): every frame, none dropped."""

    def __init__(self, path, overlay=None):
        super().__init__(overlay)
        self.path = path
        self.videos = {}  # stream name: VideoOutput

    def open(self, streams):
        from live.outputs import numbered_paths

        super().open(streams)
        self.streams = {stream.name: (stream, path) for stream, path in zip(streams, numbered_paths(self.path, len(streams)))}
        for stream in streams:
            if stream.size:  # numpy frames show their size with the first one
                self._open_video(stream.name, stream.size)

    def _open_video(self, name, size):
        from live.outputs import VideoOutput

        stream, path = self.streams[name]
        self.videos[name] = VideoOutput(path, size, stream.fps)

    def put(self, result):
        super().put(result)
        picture = self.overlay.picture(result)
        if result.stream not in self.videos:
            self._open_video(result.stream, (result.frame.image.shape[1], result.frame.image.shape[0]))
        self.videos[result.stream].write(picture, result.frame.timestamp)

    def close(self):
        _close_all(self.videos.values())


class JsonlSink(Sink):
    """One record per frame (--jsonl); ends the run when stdout's reader has gone."""

    needs_pictures = False

    def __init__(self, path, probs=False):
        self.path, self.probs = path, probs
        self.writer = None

    def open(self, streams):
        from live.outputs import JsonlWriter

        self.writer = JsonlWriter(self.path, probs=self.probs)

    def put(self, result):
        self.writer.write(result)
        return not self.writer.reader_gone

    def close(self):
        if self.writer:
            self.writer.close()


class EventSink(Sink):
    """One record per label segment (--events); the open segments are closed at the end."""

    needs_pictures = False

    def __init__(self, path, min_duration=1.0, min_score=0.5):
        self.path, self.min_duration, self.min_score = path, min_duration, min_score
        self.writer = None

    def open(self, streams):
        from live.events import EventTracker, EventWriter

        trackers = {stream.name: EventTracker(stream.name, self.min_duration, self.min_score) for stream in streams}
        self.writer = EventWriter(self.path, trackers)

    def put(self, result):
        self.writer.update(result)
        return not self.writer.reader_gone

    def close(self):
        if self.writer:
            self.writer.close()


class SummarySink(Sink):
    """The figures of the closing summary (RunSummary per stream); last in the list, so it
    counts the drawing time of the sinks before it."""

    needs_pictures = False

    def __init__(self):
        self.summaries = {}
        self.started = self.elapsed = None

    def open(self, streams):
        from live.outputs import RunSummary

        self.summaries = {stream.name: RunSummary() for stream in streams}
        self.started = time.perf_counter()
        for summary in self.summaries.values():
            summary.started = self.started

    def put(self, result):
        self.summaries[result.stream].add(result)

    def close(self):
        if self.started is not None:
            self.elapsed = time.perf_counter() - self.started


def _close_all(closers):
    """Close every one, even if one fails (the first failure is raised after)."""
    import contextlib

    with contextlib.ExitStack() as stack:
        for item in closers:
            stack.callback(item.close)


def close_sinks(sinks):
    _close_all(reversed(list(sinks)))


def build_sinks(window, output, jsonl, jsonl_probs, events, event_min_duration, event_min_score, top_k,
                threshold, max_fps, serve=None, serve_token=None):
    """The sinks the command line's options ask for, in the order they run: the overlay's
    figures, the window, the video, the events, the JSONL, the web view, the summary (whose
    figures say how long all of them took)."""
    overlay = Overlay(top_k=top_k, threshold=threshold, min_height=480 if window else 0, max_fps=max_fps)
    sinks = [StatusSink(overlay)]
    if window:
        sinks.append(WindowSink(overlay))
    if output:
        sinks.append(VideoSink(output, overlay))
    if events:
        sinks.append(EventSink(events, event_min_duration, event_min_score))
    if jsonl:
        sinks.append(JsonlSink(jsonl, jsonl_probs))
    if serve:
        from live.web import WebSink

        sinks.append(WebSink(serve, token=serve_token, top_k=top_k, threshold=threshold,
                             event_min_duration=event_min_duration, event_min_score=event_min_score,
                             overlay=overlay))
    sinks.append(SummarySink())
    return sinks


def parse_address(text):
    """`--serve [HOST:]PORT` as (host, port): 127.0.0.1 when no host is given."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise UserError(f"--serve {text}: give a port (0-65535), optionally after a host: 8080, "
                        "0.0.0.0:8080, [::1]:8080", exit_code=2)
    return host, int(port)
