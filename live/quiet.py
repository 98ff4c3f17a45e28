"""Native libraries (TensorFlow, LiteRT) print start-up chatter straight to file descriptor 2,
beneath Python's reach. `native_stderr_silenced` hides it where we know it comes from, so the
user's terminal holds only our own lines. Python exceptions still surface normally. Every
import of Keras goes through here (`from live.quiet import keras`), so it is also where
TensorFlow's thread pools are sized. Keras is imported on that first use, not with this module:
TensorFlow's import is most of a run's start-up, and the checks before the model loads (a
mistyped path, a missing folder) answer without it."""
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


def _cap_tensorflow_threads():
    """TensorFlow sizes its thread pools by the CPU affinity mask alone: in a container with a
    CPU quota, or in a Ray worker given one CPU (LIVE_CPUS=1), it would start a thread per core
    of the host and they would wait on each other. Set per process, not through TF_NUM_*
    variables, which every child process (a local Ray worker) would inherit as if the user had
    chosen them. A TF_NUM_* the user did set wins."""
    import keras

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
    # The first look at the devices is where TensorFlow's CUDA plugin says "failed call to
    # cuInit" on a machine without a GPU, straight to fd 2: look now, silenced, so neither the
    # commands nor a program using the API print it (after the thread settings, which must come
    # before TensorFlow's runtime starts).
    with native_stderr_silenced():
        tf.config.list_physical_devices()


# Imported by TensorFlow and Keras whenever they are installed, and used by neither command on
# the TensorFlow backend: JAX by tf.lite (for its JAX converter), scikit-learn by Keras (its
# wrappers). Both imports are optional there (try/except ImportError). Installed they often are:
# JAX by our own test extra, scikit-learn by nncf (the int8 extra).
UNUSED_BY_THE_COMMANDS = ("jax", "sklearn")


def quiet_native_libraries():
    """For the `live` and `train` commands only, at their start (a host program that imports
    live keeps its own settings): TensorFlow's C++ log lines (its start-up chatter, and the
    "failed call to cuInit" of its CUDA plugin on a machine without a GPU, printed when
    TensorFlow is imported), and OpenCV's and FFmpeg's warnings about files they can't open,
    which the commands report themselves in one line. A variable the user set wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def leave_out_unused_imports():
    """For the `live` and `train` commands, before Keras is imported: mark the modules above
    absent, so TensorFlow's import skips them. `live --file … --max-frames 1` took 4.4 s instead
    of 5.9 s on the 2-core CI machine. Not for `import live` (a host app may use them itself), and
    JAX stays when it is the Keras backend."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    for name in UNUSED_BY_THE_COMMANDS:
        if name != backend:
            sys.modules.setdefault(name, None)


def __getattr__(name):
    """`from live.quiet import keras`: Keras (and TensorFlow) imported on first use, silenced."""
    if name != "keras":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with native_stderr_silenced():  # the first import of TensorFlow is where the chatter happens
        import keras
    _cap_tensorflow_threads()
    globals()["keras"] = keras
    return keras
