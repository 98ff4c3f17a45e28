"""The classification pipeline: frame -> frame path -> embedder -> buffer -> sequence model
-> smoothing. Each step has its own timer; results come out one per frame, as a generator,
so memory stays flat however long the source runs."""
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from live.backbones import fingerprint, get_backbone, load_backbone_model
from live.buffer import EmbeddingBuffer
from live.cpus import usable_cpus
from live.bundle import check_fingerprint, load_bundle
from live.frames import TimeSampler, to_model_input
from live.sources import Feed, FrameIterable
from live.runtimes import int8_backbone, make_embedder, make_head

STEPS = ("read", "preprocess", "embed", "gru")
RECORD_TOP = 5  # labels in a JSONL record


@dataclass
class Result:
    frame: object            # the source Frame
    labels: list
    seq_len: int
    filled: int              # valid slots in the buffer, 1..seq_len
    probs: np.ndarray        # smoothed probabilities, in label order
    sampled: bool            # whether this frame entered the buffer
    timings: dict = field(default_factory=dict)  # milliseconds per step, and latency_ms
    stream: str = "frames"   # the source as given: a path, a URL or a camera index

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

    def to_dict(self, probs=False, top=RECORD_TOP):
        """The record `live --jsonl` writes for this frame: the `top` best labels with their
        scores, rounded to 4 decimals (under 1 KB with 600 labels; every probability takes
        3.5 KB); `probs=True` adds every probability, in label order, to 6 decimals
        (`live --jsonl-probs`: to check a run against `train predict`)."""
        record = {
            "stream": self.stream,
            "frame": self.frame.index,
            "time": round(self.frame.timestamp, 4),
            "filled": self.filled,
            "sampled": self.sampled,
            "label": self.label,
            "score": round(self.score, 4),
            "top": [[label, round(score, 4)] for label, score in self.top(top)],
            "latency_ms": round(self.timings["latency_ms"], 3),
        }
        if probs:
            record["probs"] = [round(float(p), 6) for p in self.probs]
        return record


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


class StreamClassifier:
    """One stream's own sampler, buffer, backbone state and smoothing: streams read side by
    side share the classifier and nothing else, so each one's results are those of a run on
    it alone."""

    def __init__(self, classifier, name, smooth=1):
        manifest = classifier.bundle.manifest
        self.classifier = classifier
        self.name = name
        self.embed = classifier.embedder.stream()  # this stream's own state, for a streaming backbone
        self.sampler = TimeSampler(manifest["frame_step"], manifest.get("frame_rate"))
        self.buffer = EmbeddingBuffer(manifest["seq_len"], manifest["feature_size"])
        self.recent = deque(maxlen=max(1, smooth))
        self.probs = None

    def prepare(self, frame):
        """The frame as model input (S, S, 3), or None when the sampler skips it."""
        if not self.sampler.keep(frame.timestamp):
            return None
        return to_model_input(frame.image, self.classifier.image_size)

    def update(self, frame, features, timings):
        """The Result for `frame`, given its features (None when it was not sampled), or None
        while nothing has been sampled yet."""
        if features is not None:
            self.buffer.append(features)
            started = time.perf_counter()
            self.recent.append(self.classifier.head(self.buffer.features, self.buffer.mask)[0])
            timings["gru"] = (time.perf_counter() - started) * 1000
            self.probs = np.mean(self.recent, axis=0) if len(self.recent) > 1 else self.recent[0]
        if self.probs is None:
            return None  # nothing sampled yet (only when the first frames are skipped)
        timings["latency_ms"] = (time.perf_counter() - frame.read_at) * 1000
        return Result(frame, self.classifier.bundle.labels, self.buffer.seq_len, self.buffer.filled, self.probs,
                      features is not None, timings, self.name)


def classify(classifier, frames, smooth=1, name="frames"):
    """One stream of Frame objects, in order, through the same loop as several."""
    return classify_streams(classifier, [Feed(FrameIterable(frames, name), name)], smooth)


def classify_streams(classifier, feeds, smooth=1, arrived=None, on_failure=None):
    """Yield one Result per frame of each of `feeds` (live.sources.Feed), until all have ended.

    Each turn takes the frame each stream has ready: a file's next frame, a live source's
    newest. The frames sampled in a turn go through the backbone together, as one batch for
    an image backbone (see `embed_streams`). With no frame ready, it waits on `arrived` (the
    Event live sources set on a new frame) or until a --max-fps turn is due. A stream that
    fails ends alone; `on_failure(name, error)` hears of it at once."""
    streams = [StreamClassifier(classifier, feed.name, smooth) for feed in feeds]
    # Several streams are read and cropped side by side: decoding and resizing let go of the
    # GIL, and on one thread they would leave the other cores idle between backbone calls.
    workers = usable_cpus()
    pool = ThreadPoolExecutor(workers, "reader") if len(feeds) > 1 and workers > 1 else None
    try:
        # Plan now, not mid-stream, every batch shape N streams can make (the runtimes split a
        # batch into powers of two) and MoViNet's interpreters for N streams at once.
        count, size = 2, classifier.image_size
        blank = np.zeros((1, size, size, 3), np.uint8)
        while count <= len(feeds):
            classifier.embedder.embed_streams([(classifier.embedder.stream(), blank) for _ in range(count)])
            count *= 2
        yield from _turns(classifier, streams, feeds, arrived, pool, on_failure)
    finally:
        if pool:
            pool.shutdown()


def _turns(classifier, streams, feeds, arrived, pool, on_failure):
    def read_and_prepare(stream, feed, now):
        frame = feed.poll(now)
        if frame is None:
            return None
        started = time.perf_counter()
        image = stream.prepare(frame)
        return stream, frame, image, (time.perf_counter() - started) * 1000

    while not all(feed.ended for feed in feeds):
        if arrived is not None:
            arrived.clear()  # before polling: a frame that comes after the poll sets it again
        now = time.perf_counter()
        polled = pool.map(read_and_prepare, streams, feeds, [now] * len(feeds)) if pool else \
            map(read_and_prepare, streams, feeds, [now] * len(feeds))
        turn = [entry for entry in polled if entry is not None]
        for feed in feeds:
            if feed.failure and not feed.failure_reported:
                feed.failure_reported = True
                if on_failure:
                    on_failure(feed.name, feed.failure)
        if not turn:
            due = [feed.due - now for feed in feeds if not feed.ended and feed.due > now]
            wait = min([0.05, *due])
            if arrived is not None:
                arrived.wait(wait)
            elif due:
                time.sleep(wait)
            continue
        jobs = [(stream.embed, image[None]) for stream, _, image, _ in turn if image is not None]
        embedding = time.perf_counter()
        embedded = iter(classifier.embedder.embed_streams(jobs) if jobs else [])
        share = (time.perf_counter() - embedding) * 1000 / max(len(jobs), 1)  # each sampled frame's share
        for stream, frame, image, preprocess_ms in turn:
            timings = {"read": frame.read_ms, "preprocess": 0.0, "embed": 0.0, "gru": 0.0}
            features = None
            if image is not None:
                features = next(embedded)[0]
                timings.update(preprocess=preprocess_ms, embed=share)
            result = stream.update(frame, features, timings)
            if result is not None:
                yield result
