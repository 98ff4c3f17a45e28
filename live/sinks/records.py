"""The records a run writes: one per frame (--jsonl), one per label segment (--events)."""
from live.sinks.base import Sink


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
    """One record per label segment (--events), as each one closes; the end of the run closes
    the open ones. The segments are the ones the results carry (result.events)."""

    needs_pictures = False

    def __init__(self, path):
        self.path = path
        self.lines = None

    def open(self, streams):
        from live.outputs import JsonLines

        self.lines = JsonLines(self.path, "--events")

    def put(self, result):
        self._write(result.events)
        return not self.lines.reader_gone

    def finish(self, events):
        self._write(events)

    def _write(self, events):
        for event in events:
            if event["state"] == "closed":
                self.lines.write({key: value for key, value in event.items() if key != "state"})

    def close(self):
        if self.lines:
            self.lines.close()
