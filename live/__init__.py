"""live: the runtime. Reads frames from a camera, file or stream, embeds each sampled frame
with the bundle's backbone (MoViNet-A0-Stream for the default Kinetics-600 bundle, or an
ImageNet CNN) and classifies the last few seconds with the bundle's small sequence model.
Knows nothing of `training/`.

`import live` changes nothing in the host process (no environment variable, no logging level):
the `live` and `train` commands quiet the native libraries for themselves (live/quiet.py).
Submodules load on first use: `live.web.WebSink` works after `import live`."""
import importlib

__version__ = "0.1.0"


def load(weights=None, runtime=None, backbone_weights=None):
    """Load a model bundle for the Python API; see live/api.py. Imported on first use, so that
    `import live` (and the CLI's --help) stays fast."""
    from live.api import load as load_model

    return load_model(weights, runtime, backbone_weights)



def __getattr__(name):
    """`live.Sink` (the base class for outputs of your own) and `live.<submodule>`, imported on
    first use, so that `import live` stays light."""
    if name == "Sink":
        from live.sinks import Sink

        return Sink
    if name.startswith("_"):
        raise AttributeError(f"module 'live' has no attribute {name!r}")
    try:
        return importlib.import_module(f"live.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"live.{name}":
            raise
        raise AttributeError(f"module 'live' has no attribute {name!r}") from None
