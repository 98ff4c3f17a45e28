"""Runtimes' runners lent to one thread at a time, so one model serves any number of threads."""
import threading
from contextlib import contextmanager


class Lender:
    """Runners made per key (a LiteRT interpreter planned for one set of input shapes, an
    OpenVINO request for one batch size), each lent to one caller at a time. A runner holds its
    inputs and outputs from setting them to reading them back, so two threads must never share
    one; with one each they run at once (LiteRT and OpenVINO let go of the GIL while they run).
    So a runner is made when a caller finds none idle for its key, and there are as many as
    callers ever ran at once. The idle ones of the `max_keys` keys given back first are dropped
    once more keys come (a head's shapes cycling past would otherwise pile up runners)."""

    def __init__(self, make, max_keys=8):
        self._make, self._max_keys = make, max_keys
        self._idle = {}  # key -> runners not lent out, in the order the keys came
        self._lock = threading.Lock()

    def keep(self, runner, key=None):
        """Take a runner made elsewhere (one made to check a file) as an idle one for `key`."""
        with self._lock:
            self._idle.setdefault(key, []).append(runner)

    @contextmanager
    def lend(self, key=None):
        with self._lock:
            idle = self._idle.get(key)
            runner = idle.pop() if idle else None
        if runner is None:
            runner = self._make(key)  # outside the lock: others keep running while it is planned
        try:
            yield runner
        finally:
            with self._lock:
                if key not in self._idle and len(self._idle) >= self._max_keys:
                    del self._idle[next(iter(self._idle))]
                self._idle.setdefault(key, []).append(runner)
