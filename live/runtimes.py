"""Runtimes that run a Keras model fast, one call per frame or per batch.

- `compiled_call`: the model traced once by the active Keras backend (tf.function on
  TensorFlow, jax.jit on JAX). Never `predict()` (per-call setup) or eager calls per frame.
- `LiteRTModel`: a model converted once to LiteRT (TFLite) and cached: the backbone in fp32
  or int8 with dynamic-range quantisation, keyed by its weights' fingerprint, and the
  sequence model, keyed by its file's hash.
- `OpenVINOModel`: a bundle's own int8 backbone (written by `train quantize`), run by
  OpenVINO, whose int8 kernels are the only ones measured faster than fp32 on AVX2 CPUs.
"""
from pathlib import Path

from live.quiet import keras
import numpy as np

from live.backbones import damaged_cache_entry
from live.files import cache_dir
from live.cpus import usable_cpus
from live.errors import UserError, first_line
from live.files import file_sha256, written_atomically
from live.lender import Lender
from live.quiet import native_stderr_silenced

from live.choices import INT8_BACKBONE_KEY, RUNTIMES


def default_runtime():
    """The fastest safe runtime measured here: LiteRT fp32 (int8 is no faster on AVX2 CPUs
    and drifts). LiteRT models are converted with TensorFlow, so other backends use keras."""
    return "litert" if keras.backend.backend() == "tensorflow" else "keras"


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


class StatelessEmbedder:
    """An image backbone: each frame's features depend on that frame alone, so every stream
    can share the one embedder (streaming backbones give each stream a state of its own)."""

    stateful = False

    def stream(self):
        return self

    def embed_streams(self, jobs):
        """[(stream's embedder, images (n, S, S, 3))] -> [features (n, F)]: the frames of several
        streams as one batch, which costs less per frame than one call each."""
        images = [images for _, images in jobs]
        features = self(np.concatenate(images)) if len(images) > 1 else self(images[0])
        return np.split(features, np.cumsum([len(part) for part in images])[:-1])


def in_power_of_two_parts(call, arrays):
    """`call(*arrays)` on the batch split into power-of-two parts (13 frames run as 8 + 4 + 1),
    so a runtime that plans or compiles per shape meets a handful of shapes, not one per size."""
    count = len(arrays[0])
    if not count & (count - 1):
        return call(*arrays)
    parts, start = [], 0
    for bit in reversed(range(count.bit_length())):
        if count & (1 << bit):
            parts.append(call(*[array[start:start + (1 << bit)] for array in arrays]))
            start += 1 << bit
    return np.concatenate(parts)


class KerasEmbedder(StatelessEmbedder):
    """The backbone through the backend's compiled call."""

    name = "keras"
    numerics = ""  # fp32: features equal the other fp32 runtimes' to 1e-4

    def __init__(self, model):
        self._call = compiled_call(model)

    def __call__(self, images):
        return self._call(np.asarray(images, dtype=np.float32))


class LiteRTModel(StatelessEmbedder):
    """A Keras model converted once to LiteRT and cached on disk under `cache_key`; called
    like the model, on numpy arrays in the order of the model's inputs, from any thread."""

    def __init__(self, model, cache_key, quantize=False, threads=None):
        self.name = "litert-int8" if quantize else "litert"
        self.numerics = "litert-int8" if quantize else ""
        path = litert_file(model, cache_key, quantize)
        self._path, self._threads = str(path), threads or usable_cpus()
        interpreter = self._new_interpreter()
        details = interpreter.get_input_details()
        # The converter may reorder inputs; match them to the model's by name.
        self._inputs = [next(d for d in details if f"_{tensor.name}:" in d["name"] or d["name"] == tensor.name)
                        for tensor in model.inputs]
        self._output = interpreter.get_output_details()[0]["index"]
        # Interpreters per input shapes (a batch of 1 live, of N streams side by side, of BATCH
        # in extraction): resizing one back and forth re-plans it every time. Batches run in
        # power-of-two parts, so a handful of shapes serve every size (rows do not depend on
        # the batch they run in: tested to 1e-4 against single runs).
        self._interpreters = Lender(lambda shapes: self._planned(self._new_interpreter(), shapes))
        # The interpreter that read the file serves the shapes it was converted for (a batch of one).
        shapes = tuple(tuple(int(n) for n in detail["shape"]) for detail in self._inputs)
        self._interpreters.keep(self._planned(interpreter, shapes), shapes)

    def _new_interpreter(self):
        from ai_edge_litert.interpreter import Interpreter

        try:
            with native_stderr_silenced():
                return Interpreter(model_path=self._path, num_threads=self._threads)
        except (ValueError, RuntimeError) as exc:  # converted by us, so a cache entry gone bad
            raise damaged_cache_entry(self._path, exc) from None

    def _planned(self, interpreter, shapes):
        """`interpreter` planned for inputs of `shapes` and run once: the first run is where
        XNNPACK announces itself, and it is slow."""
        with native_stderr_silenced():
            for shape, detail in zip(shapes, self._inputs):
                interpreter.resize_tensor_input(detail["index"], shape)
            interpreter.allocate_tensors()
            self._invoke(interpreter, [np.zeros(shape, detail["dtype"]) for shape, detail in zip(shapes, self._inputs)])
        return interpreter

    def __call__(self, *arrays):
        arrays = [np.asarray(a, dtype=d["dtype"]) for a, d in zip(arrays, self._inputs)]
        return in_power_of_two_parts(self._run, arrays)

    def _run(self, *arrays):
        with self._interpreters.lend(tuple(a.shape for a in arrays)) as interpreter:
            return self._invoke(interpreter, arrays)

    def _invoke(self, interpreter, arrays):
        for array, detail in zip(arrays, self._inputs):
            interpreter.set_tensor(detail["index"], array)
        interpreter.invoke()
        return interpreter.get_tensor(self._output).copy()


def litert_file(model, cache_key, quantize=False):
    """The model's cached .tflite file, converted on first use."""
    path = cache_dir() / f"{model.name}-{cache_key}-{'int8' if quantize else 'fp32'}.tflite"
    if not path.exists():
        convert_to_litert(model, path, quantize)
    return path


def convert_to_litert(model, path, quantize):
    """Write `model` as a .tflite file at `path`, atomically; int8 uses dynamic-range quantisation."""
    if keras.backend.backend() != "tensorflow":
        raise UserError("the litert runtimes convert with TensorFlow; use --runtime keras on this backend")
    import tensorflow as tf

    options = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantize else {}
    with written_atomically(path) as temporary, native_stderr_silenced():
        model.export(str(temporary), format="litert", verbose=False, **options)


class OpenVINOModel(StatelessEmbedder):
    """An OpenVINO model (images (N, S, S, 3) -> features), compiled per batch size (live calls
    it at batch 1, extraction at its fixed batch) and once more for each further thread that
    calls it at the same time: a request serves one call at a time."""

    name = "openvino-int8"

    def __init__(self, xml_path, weights_sha256=None, threads=None):
        weights_sha256 = weights_sha256 or file_sha256(Path(xml_path).with_suffix(".bin"))
        self.numerics = f"openvino-int8-{weights_sha256[:12]}"
        try:
            import openvino
        except ImportError:
            raise UserError("the openvino-int8 runtime needs OpenVINO: pip install openvino (or the project's "
                            "[int8] extra), or choose --runtime litert") from None
        self._core = openvino.Core()
        self._model = self._core.read_model(str(xml_path))
        self._config = {"INFERENCE_NUM_THREADS": threads or usable_cpus(), "PERFORMANCE_HINT": "LATENCY"}
        self._requests = Lender(self._new_request)

    def _new_request(self, shape):
        model = self._model.clone()
        model.reshape({model.inputs[0]: list(shape)})
        return self._core.compile_model(model, "CPU", self._config).create_infer_request()

    def __call__(self, images):
        return in_power_of_two_parts(self._run, [np.asarray(images, dtype=np.float32)])

    def _run(self, images):
        with self._requests.lend(images.shape) as request:
            return request.infer({0: images})[0].copy()


def int8_backbone(bundle):
    """The bundle's int8 backbone under OpenVINO, after checking its files against the manifest."""
    entry = bundle.manifest.get(INT8_BACKBONE_KEY)
    if not entry:
        raise UserError(f"model bundle {bundle.path} has no int8 backbone; make one with "
                        f"`train quantize --weights {bundle.path} --data DIR`, or choose --runtime litert")
    for name, expected in entry["sha256"].items():
        file = bundle.path / name
        if not file.is_file() or file_sha256(file) != expected:
            raise UserError(f"model bundle {bundle.path}: {name} is missing or damaged; run `train quantize` "
                            "again, or choose --runtime litert")
    xml = bundle.path / entry["model"]
    return OpenVINOModel(xml, weights_sha256=entry["sha256"].get(xml.with_suffix(".bin").name))


def make_embedder(model, weights_fingerprint, runtime=None, reset_every=None):
    """The backbone as images (N, S, S, 3) -> features (N, F), through `runtime`."""
    from live.movinet import MoViNetEmbedder, MoViNetModel

    if isinstance(model, MoViNetModel):  # a streaming backbone is its own LiteRT file
        if runtime not in (None, "litert"):
            raise UserError(f"the movinet_a0_stream backbone runs only as its own int8 LiteRT file; "
                            f"drop --runtime {runtime} or choose --runtime litert")
        return MoViNetEmbedder(model, reset_every) if reset_every else MoViNetEmbedder(model)
    runtime = runtime or default_runtime()
    if runtime == "openvino-int8":
        raise UserError("the openvino-int8 runtime runs a bundle's own int8 backbone; it needs a bundle")
    if runtime == "keras":
        return KerasEmbedder(model)
    if runtime in ("litert", "litert-int8"):
        return LiteRTModel(model, weights_fingerprint, quantize=runtime == "litert-int8")
    raise UserError(f"unknown runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}")


def make_head(model, model_fingerprint, runtime=None):
    """The sequence model as (features, mask) -> probabilities. With a LiteRT backbone it runs
    in LiteRT too (always fp32): a call there costs about 0.05-0.3 ms against 1-2 ms for the
    traced Keras call. A model LiteRT can't convert or run (a recurrent layer that isn't
    unrolled needs TensorFlow's own ops) runs through the traced call instead, which computes
    the same thing, slower; one `note:` line on stderr says so and why."""
    if (runtime or default_runtime()) in ("litert", "litert-int8", "openvino-int8") \
            and keras.backend.backend() == "tensorflow":
        try:
            head = LiteRTModel(model, model_fingerprint, threads=1)
            head(*[np.zeros((1, *tensor.shape[1:]), tensor.dtype) for tensor in model.inputs])
            return head
        except Exception as exc:  # conversion, loading or the first call: all are the same to us
            import sys
            # Its first line, without the advice for Android builds LiteRT's messages go on with.
            reason = first_line(exc, limit=10**6)
            for advice in (". Make sure", ". For the Android", ". If you"):
                reason = reason.split(advice)[0]
            reason = reason[:200]
            print(f"note: the sequence model runs through the traced Keras call, not LiteRT "
                  f"({type(exc).__name__}: {reason})", file=sys.stderr, flush=True)
    return compiled_call(model)
