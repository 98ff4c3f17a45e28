"""One Ray actor of `live --engine ray` (the driver is live/cluster.py): it loads the run's bundle
once and runs the local pipeline, `Model.stream`, on the streams the driver hands it, each
group of streams on a thread of its own, so a stream's results are those of a local run. What
the streams make waits in a queue that the driver drains with `take()`: a compact record per
frame (its probabilities only when they changed), and a stream's end."""
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from live.errors import UserError

JPEG_QUALITY = 90  # pictures go to the driver only for the sinks that draw them
TAKE_AT_MOST = 2000  # records a take() returns: the driver's turn stays short
# Records waiting for the driver: past this the streams wait (a file is read slower, a camera
# drops frames), so an actor that outruns its driver (files with pictures) holds bounded memory.
MAX_WAITING = 4000


@dataclass(frozen=True)
class StreamSpec:
    """One stream as the driver hands it to an actor: what to open, and where to start."""
    name: str                 # the stream's name in every output
    file: str | None = None   # a path or URL
    camera: int | None = None
    skip_through: int = -1    # frames up to this index were delivered already (a moved file replays to here)
    run: int = 0              # how many times it has moved: its records say it, so the driver drops stale ones


@dataclass(frozen=True)
class RunOptions:
    """What a local run's command line sets for every stream (live/config.py RunConfig)."""
    max_frames: int | None = None
    max_fps: float | None = None
    smooth: object = 1
    loop: bool = False
    realtime: bool = False
    pictures: bool = False    # a sink of the driver may look at pictures: convert every frame
    side_by_side: int = 1     # streams on this actor, for the decoders' share of the cores


class StreamWorker:
    def __init__(self, bundle_files, runtime=None, backbone_weights=None):
        from live.api import load
        from live.quiet import quiet_native_libraries

        quiet_native_libraries()
        # The driver's bundle, as files: a node needs no copy of the driver's folders. The
        # third-party models a bundle names come from this node's model store (live/store.py).
        folder = Path(tempfile.mkdtemp(prefix="live-bundle-"))
        for name, data in bundle_files.items():
            if os.path.basename(name) != name or name.startswith("."):
                raise UserError(f"a bundle file name {name!r} is not a plain file name")
            (folder / name).write_bytes(data)
        self.model = load(folder, runtime, backbone_weights)
        self.records = queue.Queue(maxsize=MAX_WAITING)
        self.stopping = threading.Event()
        self.runs = []  # (thread, opened sources)
        self.pictures_for = frozenset()  # the streams whose pictures the driver's sinks look at now
        self.dropped = set()  # streams moved to another actor: nothing more of them goes out
        self.sources = {}     # stream name: its opened source
        self.stream_runs = {}  # stream name: its StreamSpec.run here

    def measure(self, points=20):
        """Milliseconds of one sample point of one stream on this actor (crop, embed, head),
        the median of `points` after a warm-up: the driver places streams by it. The driver
        asks once every actor has loaded, so that no actor's loading slows another's count."""
        size = self.model.classifier.image_size
        frames = [np.random.default_rng(seed).integers(0, 255, (size, size, 3), np.uint8) for seed in range(points + 1)]
        times = [sum(result.timings[step] for step in ("preprocess", "embed", "head"))
                 for result in self.model.stream(frames, fps=5.0)]
        return {"host": os.uname().nodename, "pid": os.getpid(), "ms_per_point": float(np.median(times[1:]))}

    def start(self, specs, options, pictures_for=()):
        """Open the sources of `specs` now (a source that fails to open fails this call) and
        classify them side by side on a thread of their own, with pictures of `pictures_for`
        from their first frame; their (fps, size, live) in order."""
        self.pictures_for = self.pictures_for | frozenset(pictures_for)
        from live.sources import open_source

        sources = []
        try:
            for spec in specs:
                given = {"file": spec.file} if spec.file is not None else {"camera": spec.camera}
                sources.append(open_source(**given, loop=options.loop, side_by_side=options.side_by_side))
        except BaseException:
            for source in sources:
                source.close()
            raise
        self.sources.update((spec.name, source) for spec, source in zip(specs, sources))
        self.stream_runs.update((spec.name, spec.run) for spec in specs)
        # Moved back here (after the actor it went to died): its records go out again; those of
        # its earlier run here carry an older `run`, and the driver drops them.
        self.dropped -= {spec.name for spec in specs}
        thread = threading.Thread(target=self._classify, args=(specs, sources, options), daemon=True)
        self.runs.append((thread, sources))
        thread.start()
        return [{"fps": source.fps, "size": getattr(source, "size", None), "live": source.live} for source in sources]

    def _classify(self, specs, sources, options):
        skip = {spec.name: spec.skip_through for spec in specs}
        runs = {spec.name: spec.run for spec in specs}
        by_name = dict(zip(skip, sources))
        changed = dict.fromkeys(skip, True)  # the first record of each stream carries its probabilities

        def failed(name, error):
            if name not in self.dropped:
                self.put(("failed", name, runs[name], str(error)))

        try:
            for result in self.model.stream(sources, max_frames=options.max_frames, smooth=options.smooth,
                                            max_fps=options.max_fps, names=list(skip), on_failure=failed,
                                            realtime=options.realtime, every_picture=options.pictures):
                if self.stopping.is_set():
                    break
                name = result.stream
                changed[name] = changed[name] or result.sampled
                if result.frame.index <= skip[name] or name in self.dropped:
                    continue
                self.put(("result", name, runs[name], pack(result, changed[name], name in self.pictures_for)))
                changed[name] = False
        except Exception as exc:  # a fault of this group ends its streams, said as their failure
            for name in skip:
                failed(name, f"{name}: unexpected {type(exc).__name__}: {exc}")
        finally:
            for name, source in by_name.items():
                if name not in self.dropped:
                    self.put(("ended", name, runs[name], source_figures(source)))

    def put(self, record):
        """Queue a record for the driver, waiting while the queue is full, until a stop."""
        while not self.stopping.is_set():
            try:
                return self.records.put(record, timeout=0.5)
            except queue.Full:
                continue

    def take(self, wait_s=0.2, pictures_for=()):
        """What the streams made since the last call (waiting up to `wait_s` for something), and
        each source's figures now (once a call, not with every record); from now on, pictures of
        the streams `pictures_for` (those a sink of the driver shows)."""
        self.pictures_for = frozenset(pictures_for)
        taken = []
        try:
            taken.append(self.records.get(timeout=wait_s))
            while len(taken) < TAKE_AT_MOST:
                taken.append(self.records.get_nowait())
        except queue.Empty:
            pass
        figures = {name: (self.stream_runs[name], source_figures(source))
                   for name, source in self.sources.items() if name not in self.dropped}
        return time.time(), [record for record in taken if record[1] not in self.dropped], figures

    def drop(self, name):
        """Stop reading live stream `name` (the driver moves it to an actor with room): its
        source closes, so its feed ends, and the others of its group go on."""
        self.dropped.add(name)
        source = self.sources[name]
        if source.live:  # its reader may take seconds to let go: the driver does not wait for it
            source.interrupt()
            threading.Thread(target=source.close, daemon=True).start()
        return True

    def stop(self):
        """End every stream and close its source; returns once the threads have ended."""
        self.stopping.set()
        for _, sources in self.runs:
            for source in sources:
                source.interrupt()
        for thread, sources in self.runs:
            thread.join(timeout=10)
            for source in sources:
                source.close()
        return True


def pack(result, with_probs, pictures):
    """A Result as plain values for the trip to the driver (live/cluster.py unpacks it):
    the probabilities only when they changed, the picture only when a sink draws it."""
    picture = None
    if pictures and result.frame.image is not None:
        import cv2

        picture = cv2.imencode(".jpg", result.frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
    return {"stream": result.stream, "index": result.frame.index, "timestamp": result.frame.timestamp,
            "read_ms": result.frame.read_ms, "sampled": result.sampled, "filled": result.filled,
            "timings": result.timings, "picture": picture,
            "probs": np.asarray(result.probs, np.float32) if with_probs else None,
            "shown": (None if result.shown is None else np.asarray(result.shown, np.float32)) if with_probs else None}


def source_figures(source):
    """What the overlay and the summary read of a source (OverlayStatus, summary_text)."""
    return {"frames_read": source.frames_read, "dropped": source.dropped, "missed": source.missed,
            "stopped_early": source.stopped_early()}
