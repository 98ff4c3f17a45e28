"""The classification pipeline: frame -> frame path -> embedder -> buffer -> sequence model
-> smoothing. Each step has its own timer; results come out one per frame, as a generator,
so memory stays flat however long the source runs."""
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from live.backbones import fingerprint, get_backbone, load_backbone_model
from live.buffer import EmbeddingBuffer
from live.bundle import check_fingerprint, load_bundle
from live.frames import TimeSampler, to_model_input
from live.runtimes import int8_backbone, make_embedder, make_head

STEPS = ("read", "preprocess", "embed", "gru")


@dataclass
class Result:
    frame: object            # the source Frame
    labels: list
    seq_len: int
    filled: int              # valid slots in the buffer, 1..seq_len
    probs: np.ndarray        # smoothed probabilities, in label order
    sampled: bool            # whether this frame entered the buffer
    timings: dict = field(default_factory=dict)  # milliseconds per step, and latency_ms

    @property
    def top_index(self):
        return int(np.argmax(self.probs))

    @property
    def label(self):
        return self.labels[self.top_index]

    @property
    def score(self):
        return float(self.probs[self.top_index])

    def top(self, k=3):
        """The k best (label, score) pairs, best first."""
        return [(self.labels[i], float(self.probs[i])) for i in np.argsort(self.probs)[::-1][:k]]

    def to_dict(self):
        """The record `live --jsonl` writes for this frame."""
        return {
            "frame": self.frame.index,
            "time": round(self.frame.timestamp, 4),
            "filled": self.filled,
            "sampled": self.sampled,
            "label": self.label,
            "score": round(self.score, 6),
            "probs": [float(p) for p in self.probs],
            "latency_ms": round(self.timings["latency_ms"], 3),
        }


@dataclass
class Classifier:
    bundle: object
    embedder: object   # images (N, S, S, 3) uint8 -> features (N, F)
    head: object       # (features, mask) -> probabilities
    image_size: int


def load_classifier(weights_dir, runtime, backbone_weights=None):
    """Setup: load and check the bundle, its backbone (fingerprint included) and the runtimes."""
    bundle = load_bundle(weights_dir)
    backbone = get_backbone(bundle.manifest["backbone"])
    if runtime == "openvino-int8":  # the bundle carries this backbone, made from the checked weights
        return Classifier(bundle, int8_backbone(bundle), make_head(bundle.model, bundle.fingerprint, runtime),
                          backbone.image_size)
    # A bundle that carries its backbone's file (a streaming backbone) runs that very file.
    carried = bundle.manifest.get("backbone_file")
    backbone_model = load_backbone_model(backbone.name, backbone_weights or (carried and str(bundle.path / carried)))
    weights_fingerprint = fingerprint(backbone_model)
    check_fingerprint(bundle, weights_fingerprint)
    # A streaming backbone runs with the state policy its bundle was made with.
    reset_every = bundle.manifest.get("stream_state", {}).get("reset_every")
    embedder = make_embedder(backbone_model, weights_fingerprint, runtime, reset_every)
    return Classifier(bundle, embedder, make_head(bundle.model, bundle.fingerprint, runtime), backbone.image_size)


def warm_up(classifier):
    """Trace and allocate every runtime once, so the first real frame is not slow."""
    size = classifier.image_size
    features = classifier.embedder.stream()(np.zeros((1, size, size, 3), np.uint8))
    buffer = EmbeddingBuffer(classifier.bundle.seq_len, features.shape[-1])
    buffer.append(features[0])
    classifier.head(buffer.features, buffer.mask)


def classify(classifier, frames, smooth=1):
    """Yield one Result per frame of `frames` (Frame objects, in order)."""
    manifest = classifier.bundle.manifest
    embed = classifier.embedder.stream()  # this stream's own state, for a streaming backbone
    sampler = TimeSampler(manifest["frame_step"], manifest.get("frame_rate"))
    buffer = EmbeddingBuffer(manifest["seq_len"], manifest["feature_size"])
    recent = deque(maxlen=max(1, smooth))
    labels = classifier.bundle.labels
    probs = None
    for frame in frames:
        timings = {"read": frame.read_ms, "preprocess": 0.0, "embed": 0.0, "gru": 0.0}
        sampled = sampler.keep(frame.timestamp)
        if sampled:
            started = time.perf_counter()
            image = to_model_input(frame.image, classifier.image_size)[None]
            embedded = time.perf_counter()
            buffer.append(embed(image)[0])
            predicted = time.perf_counter()
            recent.append(classifier.head(buffer.features, buffer.mask)[0])
            finished = time.perf_counter()
            timings.update(preprocess=(embedded - started) * 1000, embed=(predicted - embedded) * 1000,
                           gru=(finished - predicted) * 1000)
            probs = np.mean(recent, axis=0) if len(recent) > 1 else recent[0]
        if probs is None:
            continue  # nothing sampled yet (only when the first frames are skipped)
        timings["latency_ms"] = (time.perf_counter() - frame.read_at) * 1000
        yield Result(frame, labels, buffer.seq_len, buffer.filled, probs, sampled, timings)
