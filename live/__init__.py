"""live: the runtime. Reads frames from a camera, file or stream, embeds each sampled frame
with the bundle's backbone (MoViNet-A0-Stream for the default Kinetics-600 bundle, or an
ImageNet CNN) and classifies the last few seconds with the bundle's small sequence model.
Knows nothing of `training/`."""
import os

# TensorFlow prints start-up chatter to stderr before Python can silence it; users see only ours.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# OpenCV and FFmpeg warn on stderr about files they can't open; we report those ourselves.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"


def load(weights=None, runtime=None, backbone_weights=None):
    """Load a model bundle for the Python API; see live/api.py. Imported on first use, so that
    `import live` (and the CLI's --help) stays fast."""
    from live.api import load as load_model

    return load_model(weights, runtime, backbone_weights)


from live.sinks import Sink  # noqa: E402  (light: the base class for outputs of your own)
