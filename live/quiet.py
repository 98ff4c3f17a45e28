"""Native libraries (TensorFlow, LiteRT) print start-up chatter straight to file descriptor 2,
beneath Python's reach. `native_stderr_silenced` hides it where we know it comes from, so the
user's terminal holds only our own lines. Python exceptions still surface normally."""
import os
import sys
from contextlib import contextmanager


@contextmanager
def native_stderr_silenced():
    if os.environ.get("LIVE_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with native_stderr_silenced():
    import keras  # noqa: E402  (the first import of TensorFlow is where the chatter happens)
