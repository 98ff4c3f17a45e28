"""Runtimes that run a Keras model fast, one call per frame or per batch.

- `compiled_call`: the model traced once by the active Keras backend (tf.function on
  TensorFlow, jax.jit on JAX). Never `predict()` (per-call setup) or eager calls per frame.
- `LiteRTEmbedder`: the backbone converted once to LiteRT (TFLite), fp32 or int8 with
  dynamic-range quantisation, cached by the weights' fingerprint.
"""
import os

from live.quiet import keras
import numpy as np

from live.backbones import cache_dir
from live.errors import UserError
from live.quiet import native_stderr_silenced

RUNTIMES = ("litert-int8", "litert", "keras")
DEFAULT_RUNTIME = "litert"


def compiled_call(model):
    """Return f(*arrays) -> numpy, the model's inference traced once for the active backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        traced = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False),
                             reduce_retracing=True)
        return lambda *xs: traced(*xs).numpy()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def traced(trainable, non_trainable, *xs):
            outputs, _ = model.stateless_call(trainable, non_trainable,
                                              list(xs) if len(xs) > 1 else xs[0], training=False)
            return outputs

        return lambda *xs: np.asarray(traced(trainable, non_trainable, *xs))
    return lambda *xs: keras.ops.convert_to_numpy(model.predict_on_batch(list(xs) if len(xs) > 1 else xs[0]))


class KerasEmbedder:
    """The backbone through the backend's compiled call."""

    name = "keras"

    def __init__(self, model):
        self._call = compiled_call(model)

    def __call__(self, images):
        return self._call(np.asarray(images, dtype=np.float32))


class LiteRTEmbedder:
    """The backbone through the LiteRT interpreter, converted once and cached on disk."""

    def __init__(self, model, weights_fingerprint, quantize=False):
        self.name = "litert-int8" if quantize else "litert"
        suffix = "int8" if quantize else "fp32"
        path = cache_dir() / f"{model.name}-{weights_fingerprint}-{suffix}.tflite"
        if not path.exists():
            convert_to_litert(model, path, quantize)
        from ai_edge_litert.interpreter import Interpreter

        with native_stderr_silenced():
            self._interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None

    def __call__(self, images):
        images = np.asarray(images, dtype=np.float32)
        if images.shape[0] != self._batch:
            with native_stderr_silenced():
                self._interpreter.resize_tensor_input(self._input, images.shape)
                self._interpreter.allocate_tensors()
                self._interpreter.set_tensor(self._input, images)
                self._interpreter.invoke()  # the first invoke is where XNNPACK announces itself
            self._batch = images.shape[0]
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def convert_to_litert(model, path, quantize):
    """Write `model` as a .tflite file at `path`, atomically; int8 uses dynamic-range quantisation."""
    if keras.backend.backend() != "tensorflow":
        raise UserError("the litert runtimes convert with TensorFlow; use --runtime keras on this backend")
    import tensorflow as tf

    options = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantize else {}
    temporary = path.with_suffix(f".{os.getpid()}.tmp.tflite")
    with native_stderr_silenced():
        model.export(str(temporary), format="litert", verbose=False, **options)
    os.replace(temporary, path)


def make_embedder(model, weights_fingerprint, runtime=DEFAULT_RUNTIME):
    if runtime == "keras":
        return KerasEmbedder(model)
    if runtime in ("litert", "litert-int8"):
        return LiteRTEmbedder(model, weights_fingerprint, quantize=runtime == "litert-int8")
    raise UserError(f"unknown runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}")
