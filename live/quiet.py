"""Native libraries (TensorFlow, LiteRT) print start-up chatter straight to file descriptor 2,
beneath Python's reach. `native_stderr_silenced` hides it where we know it comes from, so the
user's terminal holds only our own lines. Python exceptions still surface normally. Every
import of Keras goes through here, so it is also where TensorFlow's thread pools are sized."""
import os
import sys
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0      # how many threads are inside; the first saves fd 2, the last puts it back
_saved = None


@contextmanager
def native_stderr_silenced():
    """Thread-safe: were two threads to save and restore fd 2 each on their own, one could save
    the other's /dev/null and put it back for good, and stderr would be lost."""
    global _depth, _saved
    if os.environ.get("LIVE_DEBUG"):
        yield
        return
    with _lock:
        if _depth == 0:
            sys.stderr.flush()
            _saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                os.dup2(_saved, 2)
                os.close(_saved)


# TensorFlow sizes its thread pools by the CPU affinity mask alone: in a container with a CPU
# quota, or in a Ray worker given one CPU (LIVE_CPUS=1), it would start a thread per core of the
# host and they would wait on each other. It reads these variables when it first runs an op;
# a value the user set wins.
from live.cpus import usable_cpus  # noqa: E402

for _variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_variable, str(usable_cpus()))

with native_stderr_silenced():
    import keras  # noqa: E402  (the first import of TensorFlow is where the chatter happens)
