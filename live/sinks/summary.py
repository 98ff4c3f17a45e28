"""The figures of the closing summary that `live` prints."""
import time

from live.sinks.base import Sink


class SummarySink(Sink):
    """The figures of the closing summary (RunSummary per stream). A result is counted when the
    next one of its stream comes (or at the end), so that every sink has handled it by then,
    its drawing time included, wherever this sink is in the list."""

    needs_pictures = False

    def __init__(self):
        self.summaries = {}
        self.pending = {}  # stream: (its newest result, when it came), counted once the next one comes
        self.started = self.elapsed = None

    def open(self, streams):
        from live.outputs import RunSummary

        self.summaries = {stream.name: RunSummary() for stream in streams}
        self.started = time.perf_counter()
        for summary in self.summaries.values():
            summary.started = self.started

    def put(self, result):
        if result.stream in self.pending:
            self.summaries[result.stream].add(*self.pending[result.stream])
        self.pending[result.stream] = (result, time.perf_counter())

    def close(self):
        for name, (result, came) in self.pending.items():
            self.summaries[name].add(result, came)
        self.pending = {}
        if self.started is not None:
            self.elapsed = time.perf_counter() - self.started
