"""The figures the overlay shows beside the labels: a smoothed frame rate, the latency, and the
share of a live source's frames dropped recently (the "falling behind" warning)."""
import time
from collections import deque


class OverlayStatus:
    """Updated once per result. Drops are counted from the first classified frame and over the
    last WINDOW_S seconds only: frames that arrived while the model loaded, or during a hiccup a
    minute ago, say nothing about keeping up now."""

    WINDOW_S = 3.0

    def __init__(self, source, max_fps=None):
        self.source = source
        self.max_fps = max_fps  # frames skipped to honour --max-fps are no sign of falling behind
        self.fps = 0.0
        self.latency_ms = 0.0
        self.dropped_fraction = 0.0
        self._last = None
        self._history = deque()  # (time, frames read, frames dropped), oldest first

    def update(self, result):
        now = time.perf_counter()
        if self._last is not None:
            rate = 1 / max(now - self._last, 1e-6)
            self.fps = 0.9 * self.fps + 0.1 * rate if self.fps else rate
        self._last = now
        self.latency_ms = result.timings["latency_ms"]
        if self.source.live:
            self._history.append((now, self.source.frames_read, self.source.dropped))
            while now - self._history[0][0] > self.WINDOW_S:
                self._history.popleft()
            _, read_then, dropped_then = self._history[0]
            self.dropped_fraction = (self.source.dropped - dropped_then) / max(self.source.frames_read - read_then, 1)
            if self.max_fps and self.fps >= 0.9 * self.max_fps:
                self.dropped_fraction = 0.0

    def as_dict(self):
        return {"fps": self.fps, "latency_ms": self.latency_ms, "dropped_fraction": self.dropped_fraction}
