"""Lists of choices that the command lines, the dispatch and the error messages all read, kept
in a module that imports nothing heavy, so `--help` and the checks made before TensorFlow
loads can use them."""

# Where a run's streams are classified: in this process, or on Ray actors (live/cluster.py).
ENGINES = ("local", "ray")
RAY_MISSING = "--engine ray needs Ray: pip install 'live[distributed]' (or pip install ray)"

# How a model runs (live/runtimes.py dispatches on these names).
RUNTIMES = ("litert", "litert-int8", "keras", "openvino-int8")
# Runtimes that run a bundle's own int8 backbone (made by `train quantize`): they need a bundle,
# so they are not offered where features are made for a bundle still to be trained.
BUNDLE_RUNTIMES = ("openvino-int8",)
FEATURE_RUNTIMES = tuple(runtime for runtime in RUNTIMES if runtime not in BUNDLE_RUNTIMES)
# A streaming backbone (MoViNet) runs only as its own LiteRT file.
STREAMING_RUNTIMES = ("litert",)
INT8_BACKBONE_KEY = "int8_backbone"  # the manifest entry that names a bundle's int8 backbone's files


def bundle_runtimes(manifest, streaming):
    """The runtimes a bundle can run with: its backbone's kind decides, and openvino-int8 needs
    the int8 backbone `train quantize` adds."""
    if streaming:
        return STREAMING_RUNTIMES
    return FEATURE_RUNTIMES + (BUNDLE_RUNTIMES if manifest.get(INT8_BACKBONE_KEY) else ())

MAX_PLAUSIBLE_FPS = 1000.0


def plausible_fps(fps):
    """Whether a frame rate a container or a camera reports can be believed (not 0, NaN or
    the 90000 of a time base mistaken for a rate)."""
    return bool(fps) and 0 < fps < MAX_PLAUSIBLE_FPS
