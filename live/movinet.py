"""MoViNet-A0-Stream (Kinetics-600, int8 LiteRT): a streaming video backbone with a state.

Unlike the image backbones, its output for a frame depends on every frame before it: each
call takes one frame and the state left by the previous call. Its 600 logits are its
features, and its own Kinetics-600 classifier is just their softmax.

Its state pools over every frame since it was last reset, so on an endless stream a new
action would be outvoted for ever by the old one. `StaggeredStates` is the reset policy:
two states, each reset every `reset_every` sampled frames, half a period apart; each frame
reads the state with the longer history, so the answer always pools over the last
reset_every/2 .. reset_every frames. Live and training both go through it, frame by frame
from the start of the stream (or clip), so their features are identical.
"""
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from live.cpus import usable_cpus
from live.errors import UserError, first_line
from live.lender import Lender
from live.quiet import native_stderr_silenced

IMAGE_SIZE, CLASSES = 172, 600
# The features a MoViNetModel gives a frame: its 600 Kinetics logits (a projection of a running
# average over every frame since the state began, so they lose the order of what happened), or
# the per-frame embedding before that average: the head's projection (6x6x480, int8), averaged
# over space. Reading an intermediate tensor needs LiteRT to keep it
# (experimental_preserve_all_tensors), which leaves the logits as they were.
FEATURE_KINDS = {"logits": CLASSES, "frame_embedding": 480}
FRAME_EMBEDDING_TENSOR = "movinet/head/project/conv2d/Reshape_1"
# Measured on the shared clips (tests/benchmarks/movinet_policy.py): at 5 fps, resetting
# every 20 sampled frames (4 s) keeps the top label steady within an action (89.2% of frames
# on an accepted label) and follows a change in at most 2.6 s.
FRAME_RATE, RESET_EVERY = 5.0, 20
STATE_POLICY = {"policy": "two staggered states, each reset every `reset_every` sampled frames, half a "
                          "period apart; each frame reads the one with the longer history",
                "reset_every": RESET_EVERY}


class MoViNetModel:
    """The loaded .tflite file, checked to be MoViNet-A0-Stream's (one 172x172 RGB frame in, 600
    logits out, plus the state tensors). `step` may be called from any number of threads: each
    call carries its own state and runs on an interpreter no other call is using. `features`
    is one of FEATURE_KINDS."""

    def __init__(self, path, threads=None, features="logits"):
        self.path = Path(path)
        self._threads = threads or 1
        self.features, self.feature_size = features, FEATURE_KINDS[features]
        # Every interpreter is made from these bytes, the ones fingerprinted: the file may change.
        self._content = self.path.read_bytes()
        self.sha256 = hashlib.sha256(self._content).hexdigest()
        self.fingerprint = self.sha256[:16]
        try:
            with native_stderr_silenced():
                pair = self._new_runner()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"{path} is not a LiteRT model this live can run ({first_line(exc, limit=160)}); "
                            "give MoViNet-A0-Stream Kinetics-600's int8 .tflite file") from None
        inputs, outputs = pair[1].get_input_details(), pair[1].get_output_details()
        image, logits = inputs.get("image"), outputs.get("logits")
        if image is None or logits is None or list(image["shape"]) != [1, 1, IMAGE_SIZE, IMAGE_SIZE, 3] \
                or list(logits["shape"]) != [1, CLASSES]:
            raise UserError(f"{path} is not MoViNet-A0-Stream Kinetics-600 (it needs an 'image' input of "
                            f"1x1x{IMAGE_SIZE}x{IMAGE_SIZE}x3 and 'logits' of 1x{CLASSES})")
        self._state_specs = {name: (tuple(d["shape"]), d["dtype"]) for name, d in inputs.items() if name != "image"}
        mismatched = sorted(name for name, (shape, dtype) in self._state_specs.items() if name not in outputs
                            or (tuple(outputs[name]["shape"]), outputs[name]["dtype"]) != (shape, dtype))
        if mismatched:
            raise UserError(f"{path}: state inputs without a matching output ({', '.join(mismatched)[:120]}); "
                            "it is not MoViNet-A0-Stream")
        self._embedding = self._embedding_tensor(pair) if features == "frame_embedding" else None
        self._runners = Lender(lambda _: self._warmed(self._new_runner()))
        self._runners.keep(self._warmed(pair))  # the one that checked the file serves the first stream

    def _new_runner(self):
        """(the interpreter, its signature runner): the interpreter is where intermediate tensors are read."""
        import warnings

        from ai_edge_litert.interpreter import Interpreter

        with warnings.catch_warnings():  # "…preserve_all_tensors… is intended for debugging": it is our feature
            warnings.simplefilter("ignore")
            interpreter = Interpreter(model_content=self._content, num_threads=self._threads,
                                      experimental_preserve_all_tensors=self.features != "logits")
        return interpreter, interpreter.get_signature_runner()

    def _embedding_tensor(self, pair):
        """(index, scale, zero point) of the per-frame embedding's tensor, found by name."""
        interpreter, _ = pair
        found = [d for d in interpreter.get_tensor_details() if d["name"].endswith(FRAME_EMBEDDING_TENSOR)
                 and list(d["shape"]) == [1, 1, 6, 6, FEATURE_KINDS["frame_embedding"]]]
        if not found:
            raise UserError(f"{self.path} has no per-frame embedding tensor ({FRAME_EMBEDDING_TENSOR}); "
                            "it is not MoViNet-A0-Stream Kinetics-600's int8 file")
        scale, zero_point = found[0]["quantization"]
        return found[0]["index"], scale or 1.0, zero_point

    def _warmed(self, pair):
        """(interpreter, runner), run once: the first run is where XNNPACK announces itself."""
        with native_stderr_silenced():
            pair[1](image=np.zeros((1, 1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32), **self.initial_state())
        return pair

    def initial_state(self):
        return {name: np.zeros(shape, dtype) for name, (shape, dtype) in self._state_specs.items()}

    def step(self, image, state):
        """One frame (172, 172, 3) float32 in 0..1 -> (its features, the next state)."""
        with self._runners.lend() as (interpreter, runner):
            outputs = runner(image=image[None, None], **state)  # outputs are copies, not the interpreter's
            if self._embedding is not None:
                index, scale, zero_point = self._embedding
                grid = interpreter.get_tensor(index)[0, 0].astype(np.float32)  # (6, 6, 480), a copy
                features = (grid.mean(axis=(0, 1)) - zero_point) * scale
            else:
                features = outputs["logits"][0]
        return features, {name: outputs[name] for name in self._state_specs}


class StaggeredStates:
    """One stream's state under the reset policy (see the module doc). Call it with frames in
    order; it returns each frame's features."""

    def __init__(self, model, reset_every=RESET_EVERY):
        if reset_every < 2:
            raise ValueError("reset_every must be at least 2")
        self.model = model
        self.reset_every = reset_every
        self.frames_seen = 0
        self._states = [None, None]  # state A resets at 0, N, 2N…; state B at N/2, 3N/2, …

    def _history(self, which):
        """Frames the state has seen, the current one included (0 when not started)."""
        offset = 0 if which == 0 else self.reset_every // 2
        if self.frames_seen < offset:
            return 0
        return (self.frames_seen - offset) % self.reset_every + 1

    def __call__(self, images):
        """images: (N, 172, 172, 3) uint8 RGB, in stream order -> features (N, F) float32."""
        features = np.empty((len(images), self.model.feature_size), np.float32)
        for row, image in enumerate(np.asarray(images, np.float32) / 255.0):
            histories = [self._history(0), self._history(1)]
            read = 0 if histories[0] >= histories[1] else 1
            for which in (0, 1):
                if histories[which] == 0:
                    continue
                if histories[which] == 1:
                    self._states[which] = self.model.initial_state()
                logits, self._states[which] = self.model.step(image, self._states[which])
                if which == read:
                    features[row] = logits
            self.frames_seen += 1
        return features


class MoViNetEmbedder:
    """The streaming backbone behind the embedder interface: `stream()` gives each stream its
    own state; the embedder itself is never called on frames of unknown order."""

    name = "litert"
    stateful = True

    def __init__(self, model, reset_every=RESET_EVERY):
        self.model = model
        self.reset_every = reset_every
        # The policy changes the features, so it is part of what names them in caches.
        self.numerics = f"stream-reset{reset_every}"
        workers = usable_cpus()  # its threads start on first use
        self._workers = ThreadPoolExecutor(workers, thread_name_prefix="movinet") if workers > 1 else None

    def stream(self):
        return StaggeredStates(self.model, self.reset_every)

    def embed_streams(self, jobs):
        """[(stream's StaggeredStates, images)] -> [features]. The int8 model does not batch
        (XNNPACK fails to reshape it past batch 1), so streams run side by side instead, on as
        many worker threads as usable CPUs, each step on an interpreter of its own (see
        MoViNetModel). Each call carries its stream's state, so any interpreter serves any
        stream, and LiteRT lets go of the GIL while it runs (2 threads: 0.57x the time per step
        of one, on 2 cores)."""
        if len(jobs) == 1 or self._workers is None:
            return [states(images) for states, images in jobs]
        return list(self._workers.map(lambda job: job[0](job[1]), jobs))
