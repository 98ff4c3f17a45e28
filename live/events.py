"""Label events: segments of time during which one label held the top, for alerts and logs,
instead of one record per frame.

Hysteresis keeps flicker out: a label opens a segment only once it has stayed on top, at or
above `min_score`, for `min_duration` seconds; a segment ends when another label (or no
confident label) has held that long, at the moment the other one took over. The last
segment is closed when the run ends, however it ends.
"""
from dataclasses import dataclass

from live.outputs import JsonLines


@dataclass
class Segment:
    label: str | None    # None: no label was confident enough
    start: float
    end: float
    peak_score: float
    frames: int

    def extend(self, timestamp, score):
        self.end = timestamp
        self.peak_score = max(self.peak_score, score)
        self.frames += 1


class EventTracker:
    def __init__(self, stream, min_duration=1.0, min_score=0.5):
        self.stream = stream
        self.min_duration = min_duration
        self.min_score = min_score
        self.current = None       # the open segment
        self.candidate = None     # a different label that may take over
        self.absent_since = None  # when the open segment's label last left the top

    def update(self, result):
        """Feed one result; returns the events (dicts) closed by it."""
        timestamp, score = result.frame.timestamp, result.score
        label = result.label if score >= self.min_score else None
        if self.current is not None and label == self.current.label:
            self.current.extend(timestamp, score)
            self.candidate = None  # a flicker shorter than min_duration does not split the segment
            self.absent_since = None
            return []
        if self.current is not None and self.absent_since is None:
            self.absent_since = timestamp
        if self.candidate is None or self.candidate.label != label:
            self.candidate = Segment(label, timestamp, timestamp, score, 1)
        else:
            self.candidate.extend(timestamp, score)
        if self.candidate.end - self.candidate.start >= self.min_duration:  # a new label took over
            closed = self._close(self.candidate.start)
            self.current, self.candidate, self.absent_since = self.candidate, None, None
            return closed
        if self.current is not None and timestamp - self.absent_since >= self.min_duration:
            # Gone for min_duration, even if what replaced it kept changing (B, none, B, C, …)
            closed = self._close(self.absent_since)
            self.current = None
            return closed
        return []

    def finish(self):
        """Close the open segment at the last frame seen (end of the run, Ctrl-C included)."""
        if self.current is None:
            return []
        end = self.absent_since if self.absent_since is not None else self.current.end
        closed = self._close(end)
        self.current = None
        return closed

    def _close(self, end):
        segment = self.current
        if segment is None or segment.label is None:
            return []
        return [{"stream": self.stream, "label": segment.label, "start": round(segment.start, 3),
                 "end": round(end, 3), "peak_score": round(segment.peak_score, 4), "frames": segment.frames}]


class EventWriter:
    """One JSON object per event, flushed as it closes; `-` is stdout. `trackers` holds one
    EventTracker per stream, by stream name."""

    def __init__(self, path, trackers):
        self.trackers = trackers
        self.lines = JsonLines(path, "--events")

    @property
    def reader_gone(self):
        return self.lines.reader_gone

    def update(self, result):
        for event in self.trackers[result.stream].update(result):
            self.lines.write(event)

    def close(self):
        try:
            for tracker in self.trackers.values():
                for event in tracker.finish():
                    self.lines.write(event)
        finally:
            self.lines.close()
