"""Per-frame features for whole clips, through live's frame path, cached on disk.

Every sampled frame of a clip is embedded once, in batches, while a reader thread decodes
the next frames. The cache is keyed by the backbone's weight fingerprint, the frame-path
settings and the video's identity (its size and first and last MiB), and each entry is
written atomically, so a crash or Ctrl-C leaves only complete entries behind.
"""
import hashlib
import itertools
import os
import queue
import sys
import threading
from collections import defaultdict, deque
from contextlib import closing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from live.backbones import cache_dir, fingerprint, get_backbone, load_backbone_model
from live.errors import UserError
from live.files import written_atomically
from live.frames import TimeSampler, to_model_input
from live.runtimes import make_embedder
from live.sources import FileSource

BATCH = 32


@dataclass(frozen=True)
class FramePath:
    backbone: str
    fingerprint: str
    image_size: int
    frame_step: int
    frame_rate: float | None
    numerics: str = ""  # an embedder's `numerics`: int8 runtimes give other features than fp32

    def key(self):
        # Sampled by presentation time ("pts"): entries made when a file's times were index / fps
        # hold other frames for variable-rate clips, so they are not reused.
        rate = f"{self.frame_rate:g}-pts" if self.frame_rate else "src"
        numerics = f"-{self.numerics}" if self.numerics else ""
        return f"{self.backbone}-{self.fingerprint}-{self.image_size}px-step{self.frame_step}-rate{rate}{numerics}"


def load_embedder(config):
    """The embedder a FeatureConfig asks for, and the frame path that names its features in the
    cache (its frame rate as the config gives it: resolve it first, see training_frame_rate)."""
    backbone_model = load_backbone_model(config.backbone, config.backbone_weights)
    weights_fingerprint = fingerprint(backbone_model)
    embedder = make_embedder(backbone_model, weights_fingerprint, config.runtime)
    frame_path = FramePath(config.backbone, weights_fingerprint, get_backbone(config.backbone).image_size,
                           config.frame_step, config.frame_rate, embedder.numerics)
    return embedder, frame_path


def video_identity(path):
    """Names the video's content cheaply: its size and its first and last MiB (the whole file
    up to 2 MiB: every byte of a small file counts)."""
    digest = hashlib.sha1()
    size = os.path.getsize(path)
    digest.update(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        if size > 1 << 20:
            f.seek(max(1 << 20, size - (1 << 20)))
            digest.update(f.read())
    return digest.hexdigest()


class FeatureCache:
    def __init__(self, frame_path, root=None):
        self.folder = Path(root or cache_dir() / "features") / frame_path.key()
        self.folder.mkdir(parents=True, exist_ok=True)

    def _file(self, video):
        return self.folder / f"{video_identity(video)}.npy"

    def get(self, video):
        """The cached features, or None (also for a file that can't be read: the decoder
        then says why)."""
        try:
            file = self._file(video)
        except OSError:
            return None
        return np.load(file) if file.exists() else None

    def has(self, video):
        """Whether the video's entry exists, without reading it."""
        try:
            return self._file(video).exists()
        except OSError:
            return False

    def sweep_temporaries(self, older_than_s=3600):
        """Remove temporary files that killed writers left behind (a live writer's is younger
        than `older_than_s`); returns how many."""
        removed, now = 0, time.time()
        for file in self.folder.glob(".*.tmp.*"):
            try:
                if now - file.stat().st_mtime > older_than_s:
                    file.unlink()
                    removed += 1
            except OSError:
                pass  # another sweeper got there first
        return removed

    def put(self, video, features):
        file = self._file(video)
        with written_atomically(file) as temporary, open(temporary, "wb") as f:
            np.save(f, features)


def kept_frames(path, frame_path):
    """Yield the Frames of a video that live's sampler keeps: the same decoding and the same
    presentation times (FileSource's) as live. Raises UserError if it won't open, or (after
    its last frame) if it stops decoding well before the frame count its container gives."""
    source = FileSource(path)
    sampler = TimeSampler(frame_path.frame_step, frame_path.frame_rate)
    try:
        yield from (frame for frame in source.frames() if sampler.keep(frame.timestamp))
        early = source.stopped_early()
        if early:  # as live reports it: features of part of a clip would stand for all of it
            raise UserError(f"{path} stopped decoding after {early[0]} of {early[1]} frames; the rest of the "
                            "file is damaged or missing")
    finally:
        source.close()


def sampled_frames(path, frame_path):
    """Yield batches of model-ready frames (uint8, N x S x S x 3) from a video, through the
    same decoding, time sampling and frame path as live. Raises UserError if it won't open."""
    batch = []
    with closing(kept_frames(path, frame_path)) as frames:
        for frame in frames:
            batch.append(to_model_input(frame.image, frame_path.image_size))
            if len(batch) == BATCH:
                yield np.stack(batch)
                batch = []
    if batch:
        yield np.stack(batch)


def sampled_frame_indices(path, frame_path, count):
    """The source frame index of each of the first `count` sampled frames of a video: the frames
    live's sampler keeps."""
    with closing(kept_frames(path, frame_path)) as frames:
        return [frame.index for frame in itertools.islice(frames, count)]


def clip_features(path, embedder, frame_path):
    """All sampled frames of one video, embedded: (frames, features) float32."""
    embed = embedder.stream()  # a fresh state for a streaming backbone
    parts = [embed(batch) for batch in sampled_frames(path, frame_path)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


_DONE = object()


class _Stopped(Exception):
    """The consumer has gone (Ctrl-C, an error): the reader thread winds down."""


def _put(out, item, stop):
    """Put into the bounded queue, giving up once `stop` is set, so the reader never blocks
    forever on a consumer that has left."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            pass
    raise _Stopped


def _decode_ahead(videos, frame_path, out, stop):
    """Reader thread: decode clip after clip into `out`, marking each clip's end or failure."""
    try:
        for video in videos:
            try:
                with closing(sampled_frames(video, frame_path)) as batches:
                    for batch in batches:
                        _put(out, (video, batch), stop)
                _put(out, (video, _DONE), stop)
            except UserError as exc:
                _put(out, (video, exc), stop)
            except _Stopped:
                raise
            except Exception as exc:  # a decoder fault on one bad file must not stop the run
                _put(out, (video, UserError(f"{type(exc).__name__}: {exc}")), stop)
        _put(out, (None, _DONE), stop)
    except _Stopped:
        pass  # the decoder of the clip in hand was closed on the way out


def _take_batch(pending, size):
    """Take up to `size` frames from the front of `pending`, across clip boundaries; clips'
    end markers stay in place. Returns (frame arrays, [(video, count)], what is left)."""
    parts, owners, left = [], [], deque()
    need = size
    for video, item in pending:
        if need and isinstance(item, np.ndarray):
            parts.append(item[:need])
            owners.append((video, len(parts[-1])))
            need -= len(parts[-1])
            if len(item) > len(parts[-1]):
                left.append((video, item[len(parts[-1]):]))
        else:
            left.append((video, item))
    return parts, owners, left


def extract_features(videos, embedder, frame_path, cache, min_frames=1, progress=True):
    """Features for each video: returns ({video: features}, {video: reason skipped}, timing).

    Cached clips load at once; the rest are decoded in a reader thread, overlapped with
    embedding in this one. Batches are always BATCH frames, filled across clip boundaries, so
    the runtime keeps one batch shape (LiteRT re-plans its buffers when the shape changes).
    Unreadable, truncated or too-short clips are skipped, each with one warning.
    """
    features, skipped, todo = {}, {}, []
    videos = list(dict.fromkeys(videos))  # a path given twice is one clip, extracted once
    for video in videos:
        cached = cache.get(video)
        if cached is None:
            todo.append(video)
        elif len(cached) < min_frames:  # the same rule as for a fresh extraction
            skipped[video] = f"too short: {len(cached)} sampled frames, need {min_frames}"
            tqdm.write(f"warning: skipping {video}: {skipped[video]}", file=sys.stderr)
        else:
            features[video] = cached
    bar = tqdm(total=len(videos), initial=len(videos) - len(todo), unit="clip", desc="features",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    frames_done, started = 0, time.perf_counter()
    decoded, stop = queue.Queue(maxsize=8), threading.Event()
    reader = threading.Thread(target=_decode_ahead, args=(todo, frame_path, decoded, stop), daemon=True)
    reader.start()
    pending, waiting, embedded, streams = deque(), 0, defaultdict(list), {}

    def finish_clips():
        """Close every clip at the front of `pending` whose frames are all embedded."""
        while pending and not isinstance(pending[0][1], np.ndarray):
            video, outcome = pending.popleft()
            count = sum(len(part) for part in embedded[video])
            if isinstance(outcome, UserError):
                skipped[video] = str(outcome)
            elif count < min_frames:
                skipped[video] = f"too short: {count} sampled frames, need {min_frames}"
            else:
                features[video] = np.concatenate(embedded[video])
                cache.put(video, features[video])
            embedded.pop(video, None)
            streams.pop(video, None)
            if video in skipped:
                tqdm.write(f"warning: skipping {video}: {skipped[video]}", file=sys.stderr)
            bar.update(1)

    try:
        reading = True
        while reading or waiting:
            if reading:
                video, item = decoded.get()
                if video is None:
                    reading = False
                else:
                    pending.append((video, item))
                    waiting += len(item) if isinstance(item, np.ndarray) else 0
            if embedder.stateful:  # each clip through a state of its own, in order, as live does it
                for video, item in pending:
                    if isinstance(item, np.ndarray):
                        embedded[video].append(streams.setdefault(video, embedder.stream())(item))
                        frames_done += len(item)
                pending = deque(entry for entry in pending if not isinstance(entry[1], np.ndarray))
                waiting = 0
            while waiting >= BATCH or (waiting and not reading):
                parts, owners, pending = _take_batch(pending, BATCH)
                output = embedder(np.concatenate(parts))
                offset = 0
                for owner, count in owners:
                    embedded[owner].append(output[offset:offset + count])
                    offset += count
                waiting -= offset
                frames_done += offset
                bar.set_postfix(fps=f"{frames_done / (time.perf_counter() - started):.0f}", refresh=False)
            finish_clips()
    finally:
        # On Ctrl-C or an error the reader must end before the interpreter does: a thread
        # left inside the decoder at exit aborts the process ("terminate called ...").
        stop.set()
        reader.join(timeout=10)
    finish_clips()
    bar.close()
    return features, skipped, {"clips": len(todo), "frames": frames_done, "seconds": time.perf_counter() - started}
