"""The classification pipeline: frame -> frame path -> embedder -> buffer -> sequence model
-> smoothing. Each step has its own timer; results come out one per frame, as a generator,
so memory stays flat however long the source runs."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from live.backbones import fingerprint, get_backbone, load_backbone_model
from live.buffer import EmbeddingBuffer
from live.cpus import usable_cpus
from live.bundle import backbone_file, check_fingerprint, load_bundle
from live.frames import TimeSampler, to_model_input
from live.sources import Feed, FrameIterable
from live.runtimes import int8_backbone, make_embedder, make_head
from live.smoothing import Smoothing

# With live sources only, turns come at most this often: each takes the frames several streams
# delivered meanwhile, instead of a wake-up per frame of every stream, which left the embedding
# threads waiting for the GIL (24 cameras: 22% of the sample points embedded, on 1.2 cores).
LIVE_TURN_S = 0.01
RECORD_TOP = 5  # labels in a JSONL record


@dataclass
class Result:
    frame: object            # the source Frame
    labels: list
    seq_len: int
    filled: int              # valid slots in the buffer, 1..seq_len
    probs: np.ndarray        # the head's probabilities for the window ending here, in label order
    sampled: bool            # whether this frame entered the buffer
    timings: dict = field(default_factory=dict)  # milliseconds per step, and latency_ms
    stream: str = "frames"   # the source as given: a path, a URL or a camera index
    # What the label, score and top list show: `probs` smoothed over the last sample points
    # (live/smoothing.py); None shows `probs` as they are.
    shown: np.ndarray | None = None
    # Set by the loop that hands results to sinks (live/status.py StreamTracking): the overlay's
    # figures, and the label events this result opened or closed (each with its "state").
    status: dict | None = None
    events: list = field(default_factory=list)

    @property
    def shown_probs(self):
        return self.probs if self.shown is None else self.shown

    @property
    def top_index(self):
        return int(np.argmax(self.shown_probs))

    @property
    def label(self):
        return self.labels[self.top_index]

    @property
    def score(self):
        return float(self.shown_probs[self.top_index])

    def top(self, k=3):
        """The k best (label, score) pairs of the shown probabilities, best first."""
        shown = self.shown_probs
        return [(self.labels[i], float(shown[i])) for i in np.argsort(shown)[::-1][:k]]

    def to_dict(self, probs=False, top=RECORD_TOP):
        """The record `live --jsonl` writes for this frame: the `top` best labels with their
        scores, rounded to 4 decimals (under 1 KB with 600 labels; every probability takes
        3.5 KB); `probs=True` adds every probability, in label order, to 6 decimals
        (`live --jsonl-probs`: the head's own, unsmoothed, to check a run against `train
        predict`)."""
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
    # A bundle that names its backbone's file (a streaming backbone) runs that very file.
    named = backbone_file(bundle)
    backbone_model = load_backbone_model(backbone.name, backbone_weights or (named and str(named)))
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
        self.smooth = Smoothing.parse(smooth).start()
        self.probs = self.shown = None

    def prepare(self, frame):
        """A sampled frame as model input (S, S, 3), and the milliseconds that took."""
        started = time.perf_counter()
        return to_model_input(frame.image, self.classifier.image_size), (time.perf_counter() - started) * 1000

    def update(self, frame, features, timings):
        """The Result for `frame`, given its features (None when it was not sampled), or None
        while nothing has been sampled yet."""
        if features is not None:
            self.buffer.append(features)
            started = time.perf_counter()
            self.probs = self.classifier.head(self.buffer.features, self.buffer.mask)[0]
            timings["head"] = (time.perf_counter() - started) * 1000
            self.shown = self.smooth(self.probs)
        if self.probs is None:
            return None  # nothing sampled yet (only when the first frames are skipped)
        timings["latency_ms"] = (time.perf_counter() - frame.read_at) * 1000
        return Result(frame, self.classifier.bundle.labels, self.buffer.seq_len, self.buffer.filled, self.probs,
                      features is not None, timings, self.name, self.shown)


def classify(classifier, frames, smooth=1, name="frames"):
    """One stream of Frame objects, in order, through the same loop as several."""
    return classify_streams(classifier, [Feed(FrameIterable(frames, name), name)], smooth)


def classify_streams(classifier, feeds, smooth=1, arrived=None, on_failure=None, every_picture=True):
    """Yield one Result per frame of each of `feeds` (live.sources.Feed), until all have ended.

    Each turn takes the frame each stream has ready: a file's next frame, a live source's
    newest (or the sample points still waiting before it). A frame the sampler skips gets its
    result at once. The frames sampled in a turn are cropped, embedded (as one batch for an
    image backbone, see `embed_streams`) and classified on a worker thread while the loop goes
    on with the other streams: on one thread, the backbone of one stream's frame would leave
    the other cores idle. A stream waiting for its embedding is not polled meanwhile, so its
    results stay in order and its source holds its next frames (a live one dropping those the
    sampler skips first). With nothing to do, the loop waits on `arrived` (the Event live
    sources set on a new frame), an embedding's end, or a --max-fps turn. A stream that fails
    ends alone; `on_failure(name, error)` hears of it at once. Without `every_picture`, frames
    the sampler skips are decoded but not converted: their results' frame.image is None."""
    streams = [StreamClassifier(classifier, feed.name, smooth) for feed in feeds]
    workers = usable_cpus()
    # Several files are decoded side by side: decoding lets go of the GIL.
    readers = ThreadPoolExecutor(workers, "reader") if len(feeds) > 1 and workers > 1 else None
    embedders = ThreadPoolExecutor(workers, "embedder")
    try:
        # Plan now, not mid-stream, every batch shape N streams can make (the runtimes split a
        # batch into powers of two) and MoViNet's interpreters for N streams at once.
        count, size = 2, classifier.image_size
        blank = np.zeros((1, size, size, 3), np.uint8)
        while count <= len(feeds):
            classifier.embedder.embed_streams([(classifier.embedder.stream(), blank) for _ in range(count)])
            count *= 2
        for stream, feed in zip(streams, feeds):  # after the set-up: sample points held now are taken at once
            feed.plan(stream.sampler, every_picture)
        yield from _turns(classifier, streams, feeds, arrived or threading.Event(), readers, embedders, on_failure)
    finally:
        embedders.shutdown(cancel_futures=True)
        if readers:
            readers.shutdown()


def _embed(classifier, sampled):
    """On a worker thread: the Results of one turn's sampled frames, [(stream, frame)], each
    stream's own state touched by this call alone."""
    prepared = [stream.prepare(frame) for stream, frame in sampled]
    started = time.perf_counter()
    features = classifier.embedder.embed_streams([(stream.embed, image[None])
                                                  for (stream, _), (image, _) in zip(sampled, prepared)])
    share = (time.perf_counter() - started) * 1000 / len(sampled)  # each sampled frame's share
    return [stream.update(frame, feature[0], {"read": frame.read_ms, "preprocess": preprocess_ms, "embed": share,
                                              "head": 0.0})
            for (stream, frame), (_, preprocess_ms), feature in zip(sampled, prepared, features)]


def _turns(classifier, streams, feeds, woken, readers, embedders, on_failure):
    busy = {}  # stream: the future of the Results of its turn's sampled frames (one for several streams)
    # A file's poll decodes its next frame: files are polled side by side. A live source's
    # poll only takes what its reader thread decoded: a pool's hand-over would cost more.
    decoding = readers and any(not feed.source.live for feed in feeds)
    paced, turned = all(feed.source.live for feed in feeds), 0.0
    while busy or not all(feed.ended for feed in feeds):
        if paced:
            time.sleep(max(0.0, turned + LIVE_TURN_S - time.perf_counter()))
            turned = time.perf_counter()
        woken.clear()  # before looking: what happens after sets it again
        done = {future: None for future in busy.values() if future.done()}  # each once, in order
        busy = {stream: future for stream, future in busy.items() if future not in done}
        for future in done:
            yield from (result for result in future.result() if result is not None)
        now = time.perf_counter()
        idle = [(stream, feed) for stream, feed in zip(streams, feeds) if stream not in busy]
        polled = readers.map(lambda pair: pair[1].poll(now), idle) if decoding else \
            (feed.poll(now) for _, feed in idle)
        turn = [(stream, frame) for (stream, _), frame in zip(idle, polled) if frame is not None]
        for feed in feeds:
            if feed.failure and not feed.failure_reported:
                feed.failure_reported = True
                if on_failure:
                    on_failure(feed.name, feed.failure)
        sampled = []
        for stream, frame in turn:
            if frame.sampled:  # decided once, by the source or its Feed (live.sources)
                sampled.append((stream, frame))
            elif (result := stream.update(frame, None, {"read": frame.read_ms, "preprocess": 0.0, "embed": 0.0,
                                                        "head": 0.0})) is not None:
                yield result
        if sampled:
            future = embedders.submit(_embed, classifier, sampled)
            future.add_done_callback(lambda _: woken.set())
            busy.update((stream, future) for stream, _ in sampled)
        if not turn and not woken.is_set():
            due = [feed.due - now for feed in feeds if not feed.ended and feed.due > now]
            woken.wait(min([0.05, *due]))
