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


with native_stderr_silenced():
    import keras  # noqa: E402  (the first import of TensorFlow is where the chatter happens)


def _cap_tensorflow_threads():
    """TensorFlow sizes its thread pools by the CPU affinity mask alone: in a container with a
    CPU quota, or in a Ray worker given one CPU (LIVE_CPUS=1), it would start a thread per core
    of the host and they would wait on each other. Set per process, not through TF_NUM_*
    variables, which every child process (a local Ray worker) would inherit as if the user had
    chosen them. A TF_NUM_* the user did set wins."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    from live.cpus import usable_cpus

    cpus = usable_cpus()
    try:
        if "TF_NUM_INTRAOP_THREADS" not in os.environ:
            tf.config.threading.set_intra_op_parallelism_threads(cpus)
        if "TF_NUM_INTEROP_THREADS" not in os.environ:
            tf.config.threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:  # TensorFlow already ran in this process (imported before live): too late
        pass


_cap_tensorflow_threads()
