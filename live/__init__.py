"""live: the runtime. Reads frames from a camera, file or stream, embeds each sampled frame
with the bundle's backbone (MoViNet-A0-Stream for the default Kinetics-600 bundle, or an
ImageNet CNN) and classifies the last few seconds with the bundle's small sequence model.
Knows nothing of `training/`.

Importing it changes nothing in the host process: its environment, its Keras backend and its
stderr stay as they are (only the `live` and `train` commands quieten native libraries, see
live/quiet.py)."""
__version__ = "0.1.0"


def load(weights=None, runtime=None, backbone_weights=None):
    """Load a model bundle for the Python API; see live/api.py. Imported on first use, so that
    `import live` (and the CLI's --help) stays fast."""
    from live.api import load as load_model

    return load_model(weights, runtime, backbone_weights)


from live.sinks import Sink  # noqa: E402  (light: the base class for outputs of your own)
from live.quiet import quiet_native_libraries  # noqa: E402  (opt in: silence TensorFlow's chatter as the commands do)
