"""The figures the overlay shows beside the labels: the source's frame rate, the model's rate
and latency, and the share of a live source's frames dropped recently (the "falling behind"
warning)."""
import time
from collections import deque


class OverlayStatus:
    """Updated once per result. Rates are counted over the last WINDOW_S seconds of the
    source's own time (frame timestamps), never from how fast frames were processed, so a
    video written by a run as fast as the machine goes shows the source's rate, as a window
    does:

    - `source_fps`: frames per second of the source (frame indexes over timestamps, so a
      camera's frames dropped for lack of time count: it is the camera's rate);
    - `missed`: sample points a live source had to drop, so far (the model never saw them: see
      live.sources);
    - `model_fps`: frames per second that went through the model (the bundle's sampling rate,
      or fewer when a live source outruns the machine), and `model_ms`, the latency of the
      last of them, from the frame read to its result.

    Drops are counted from the first classified frame and over the last WINDOW_S seconds of
    wall time only: frames that arrived while the model loaded, or during a hiccup a minute
    ago, say nothing about keeping up now."""

    WINDOW_S = 3.0

    def __init__(self, source, max_fps=None):
        self.source = source
        self.max_fps = max_fps  # frames skipped to honour --max-fps are no sign of falling behind
        self.source_fps = source.fps or 0.0  # the declared rate, until measured
        self.model_fps = 0.0
        self.model_ms = 0.0
        self.dropped_fraction = 0.0
        self._recent = deque()  # (timestamp, frame index, frames sampled so far), oldest first
        self._sampled = 0
        self._history = deque()  # live sources: (time, frames read, frames dropped), oldest first

    def update(self, result):
        frame = result.frame
        if result.sampled:
            self._sampled += 1
            self.model_ms = result.timings["latency_ms"]
        self._recent.append((frame.timestamp, frame.index, self._sampled))
        while frame.timestamp - self._recent[0][0] > self.WINDOW_S:
            self._recent.popleft()
        first_time, first_index, sampled_then = self._recent[0]
        if frame.timestamp > first_time:
            span = frame.timestamp - first_time
            self.source_fps = (frame.index - first_index) / span
            self.model_fps = (self._sampled - sampled_then) / span
        if self.source.live:
            self._update_drops()

    def _update_drops(self):
        now = time.perf_counter()
        self._history.append((now, self.source.frames_read, self.source.dropped))
        while now - self._history[0][0] > self.WINDOW_S:
            self._history.popleft()
        then, read_then, dropped_then = self._history[0]
        self.dropped_fraction = (self.source.dropped - dropped_then) / max(self.source.frames_read - read_then, 1)
        taken_fps = (len(self._history) - 1) / (now - then) if now > then else 0.0
        if self.max_fps and taken_fps >= 0.9 * self.max_fps:
            self.dropped_fraction = 0.0

    def as_dict(self):
        return {"source_fps": self.source_fps, "model_fps": self.model_fps, "model_ms": self.model_ms,
                "dropped_fraction": self.dropped_fraction, "missed": self.source.missed}


class StreamTracking:
    """What every sink of a stream needs beside the result itself, computed once per result by
    the loop that hands results to sinks (Model.stream), so no sink depends on another or on
    its place in the list: the overlay's figures (`result.status`) and the label events that
    this result opened or closed (`result.events`, live/events.py's hysteresis)."""

    def __init__(self, name, source, max_fps=None, event_rule=(1.0, 0.5)):
        from live.events import EventTracker

        self.overlay = OverlayStatus(source, max_fps)
        self.tracker = EventTracker(name, *event_rule)

    def annotate(self, result):
        self.overlay.update(result)
        result.status = self.overlay.as_dict()
        before = self.tracker.current
        result.events = [{**event, "state": "closed"} for event in self.tracker.update(result)]
        opened = self.tracker.current
        if opened is not before and opened is not None and opened.label is not None:
            result.events.append({"stream": self.tracker.stream, "label": opened.label,
                                  "start": round(opened.start, 3), "state": "open"})

    def finish(self):
        """The events the end of the run closes (the open segment, if any)."""
        return [{**event, "state": "closed"} for event in self.tracker.finish()]
