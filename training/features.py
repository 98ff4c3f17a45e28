"""Per-frame features for whole clips, through live's frame path, cached on disk.

Every sampled frame of a clip is embedded once, in batches, while a reader thread decodes
the next frames. The cache is keyed by the backbone's weight fingerprint, the frame-path
settings and the video's identity (its size and first and last MiB), and each entry is
written atomically, so a crash or Ctrl-C leaves only complete entries behind.

The cache's index (CacheIndex, <root>/index.jsonl) records each clip's size, modification
time and content key, so a clip whose size and time are unchanged is not read again to find its
entry, and what training needs of it (label, group, split, frame rate, frame counts), so `fit`
can train from the cache alone. Entries are opened memory-mapped and checked against the index and
the backbone's feature size before use (open_entry): a file is never trusted for its shape.
"""
import hashlib
import itertools
import json
import math
import os
import re
import queue
import sys
import threading
from collections import defaultdict, deque
from contextlib import closing, contextmanager
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from live.backbones import fingerprint, get_backbone, load_backbone_model
from live.files import cache_dir
from live.errors import UserError, first_line
from live.files import written_atomically
from live.frames import TimeSampler, to_model_input
from live.sources import FileSource
from training import log

BATCH = 32


@dataclass(frozen=True)
class FramePath:
    backbone: str
    fingerprint: str
    image_size: int
    frame_step: int
    frame_rate: float | None
    numerics: str = ""  # an embedder's `numerics`: int8 runtimes give other features than fp32

    @classmethod
    def of_bundle(cls, manifest, numerics=""):
        """The frame path a bundle's features were made with, as its manifest records it (load_bundle
        has checked its image size against the backbone's)."""
        return cls(manifest["backbone"], manifest["backbone_fingerprint"], manifest["image_size"],
                   manifest["frame_step"], manifest.get("frame_rate"), numerics)

    def key(self):
        # Sampled by presentation time ("pts"): entries made when a file's times were index / fps
        # hold other frames for variable-rate clips, so they are not reused.
        rate = f"{self.frame_rate:g}-pts" if self.frame_rate else "src"
        numerics = f"-{self.numerics}" if self.numerics else ""
        return f"{self.backbone}-{self.fingerprint}-{self.image_size}px-step{self.frame_step}-rate{rate}{numerics}"


def load_embedder(config):
    """The embedder a FeatureConfig asks for, and the frame path that names its features in the
    cache (its frame rate as the config gives it: resolve it first, see training.prepare.resolved_features)."""
    # Imported here, not with this module: live.runtimes imports Keras (TensorFlow, seconds), and
    # the cache's index is read by the checks `train` makes before TensorFlow loads.
    from live.runtimes import make_embedder

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


INDEX_FILE = "index.jsonl"
CONTENT_KEY = re.compile(r"[0-9a-f]{40}")  # video_identity's sha1: it names entry files, so nothing else may
# Entries: float32 as extraction writes them, or float16 (features made elsewhere: half the disk and reads).
FEATURE_DTYPES = (np.dtype("<f2"), np.dtype("<f4"))
SPLITS = ("train", "test", None)  # None: the layout has no fixed test split (class folders)


def features_root(root=None):
    """The feature cache's folder: `root`, else $LIVE_CACHE_DIR/features (~/.cache/live/features)."""
    return Path(root or cache_dir() / "features")


def clip_key(path):
    """How the index names a clip: its absolute path (symlinks keep their names, as in the manifest)."""
    return str(Path(path).absolute())


def _valid_record(record):
    """Whether an index line has the fields and types the index relies on; a line that does not
    (damaged, or written by hand) is dropped, and its clip is identified again from the file."""
    def optional(name, kind):
        return record.get(name) is None or isinstance(record.get(name), kind)

    return (isinstance(record, dict) and isinstance(record.get("path"), str)
            and all(isinstance(record.get(name), int) and record[name] >= 0 for name in ("size", "mtime_ns"))
            and isinstance(record.get("key"), str) and CONTENT_KEY.fullmatch(record["key"]) is not None
            and isinstance(record.get("frames", {}), dict)
            and all(isinstance(k, str) and isinstance(n, int) and n >= 0 for k, n in record.get("frames", {}).items())
            and all(optional(name, str) for name in ("label", "group", "dataset", "layout"))
            and record.get("split") in SPLITS
            and (record.get("ucf_split") is None or record["ucf_split"] in (1, 2, 3))
            and (record.get("frame_rate") is None or (isinstance(record["frame_rate"], (int, float))
                                                      and math.isfinite(record["frame_rate"])
                                                      and record["frame_rate"] > 0)))


def _describes(record, stat):
    """Whether an index record was made of the file as `stat` finds it (same size and time)."""
    return bool(record) and (record["size"], record["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)


class CacheIndex:
    """<root>/index.jsonl: one JSON object a line per clip, by its absolute path (README, "The
    feature cache"). Read once; `save` merges this process's changes into the file as it is
    then and replaces it atomically, so concurrent runs lose no more than each other's newest
    lines (those clips are identified again from their files on the next run)."""

    def __init__(self, root=None):
        self.file = features_root(root) / INDEX_FILE
        self.records = self._read()
        self.changed = set()

    def _read(self):
        try:
            lines = self.file.read_text().splitlines()
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the feature cache's index {self.file} ({exc}); delete it, and it is "
                            "made again from the clips") from None
        records = {}
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if _valid_record(record):
                records[record["path"]] = record
        return records

    def current(self, path):
        """The clip's record while its file has the recorded size and modification time, or
        while the file is gone (training from the cache alone); None otherwise."""
        record = self.records.get(clip_key(path))
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return record
        except OSError:
            return None
        return record if _describes(record, stat) else None

    def content_key(self, path):
        """The clip's content key (video_identity): the index's while the file is unchanged,
        else read from the file and recorded. Raises OSError for a file that can't be read."""
        stat = os.stat(path)
        record = self.records.get(clip_key(path))
        if _describes(record, stat):
            return record["key"]
        key = video_identity(path)
        if record and record["key"] == key:
            self.update(path, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        else:  # a new clip, or new content: what was measured of the old one no longer holds
            self.update(path, size=stat.st_size, mtime_ns=stat.st_mtime_ns, key=key, frames={}, frame_rate=None,
                        replace=True)
        return key

    def update(self, path, replace=False, **fields):
        """Set fields of a clip's record (a new record if `replace` or there is none)."""
        key = clip_key(path)
        record = {"path": key} if replace or key not in self.records else dict(self.records[key])
        record.update(fields)
        if record != self.records.get(key):
            self.records[key] = record
            self.changed.add(key)

    def forget(self, path):
        """Drop a clip's record (its file is gone): `save` writes the index without it."""
        if self.records.pop(clip_key(path), None) is not None:
            self.changed.add(clip_key(path))

    def merge(self, measured):
        """Fold in what a worker process recorded of a clip (`measured`, its index record there):
        the file's size, time, content key and frame counts. What this process knows of the
        clip (label, group, frame rate) stays while the content is the one it knew."""
        path, known = measured["path"], self.records.get(measured["path"])
        file_fields = {name: measured[name] for name in ("size", "mtime_ns", "key")}
        if known and known["key"] == measured["key"]:
            self.update(path, **file_fields, frames={**known.get("frames", {}), **measured.get("frames", {})})
        else:
            self.update(path, replace=True, **file_fields, frames=dict(measured.get("frames", {})), frame_rate=None)

    def note_frames(self, path, frame_path_key, count):
        record = self.records.get(clip_key(path))
        if record is not None and record.get("frames", {}).get(frame_path_key) != count:
            self.update(path, frames={**record.get("frames", {}), frame_path_key: count})

    def save(self):
        """Write this process's changes into the index file (atomically); a no-op without any."""
        if not self.changed:
            return
        merged = self._read()
        for key in self.changed:
            if key not in self.records:  # forgotten
                merged.pop(key, None)
            elif _valid_record(self.records[key]):
                merged[key] = self.records[key]
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with written_atomically(self.file) as temporary:
                temporary.write_text("".join(json.dumps(merged[key], sort_keys=True) + "\n" for key in sorted(merged)))
        except OSError as exc:  # a read-only shared cache still serves its entries
            log(f"warning: cannot update the feature cache's index {self.file} ({first_line(exc)}); its clips "
                "are read again to identify them next time")
            return
        self.records, self.changed = merged, set()


class DamagedEntry(Exception):
    """A cache entry that is not what its name and the index say it is."""


def open_entry(file, feature_size, frames=None):
    """A cache entry, memory-mapped, after checking what np.load reads of its header against what
    the entry must be: 2-D, float16 or float32, `feature_size` features a frame and (when the
    index records it) `frames` frames, and a file long enough for all of them. No pickles.
    Raises FileNotFoundError if it is absent, DamagedEntry saying what is wrong otherwise."""
    try:
        features = np.load(file, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # a bad header, a truncated file, a pickle
        raise DamagedEntry(f"{file} is not a readable feature array ({first_line(exc)})") from None
    if not isinstance(features, np.ndarray) or features.ndim != 2 or features.dtype not in FEATURE_DTYPES:
        raise DamagedEntry(f"{file} holds {getattr(features, 'dtype', type(features).__name__)} "
                           f"{getattr(features, 'shape', '')}, not frames x {feature_size} float16 or float32")
    if features.shape[1] != feature_size or (frames is not None and features.shape[0] != frames):
        raise DamagedEntry(f"{file} holds {features.shape[0]} x {features.shape[1]} features; the index and the "
                           f"backbone say {frames if frames is not None else 'frames'} x {feature_size}")
    return features


class EntryRows:
    """A checked cache entry's frames, read from its file a slice of rows at a time: nothing of
    it is held open or in memory. Enough of an array for windows and statistics: len, shape,
    dtype, slicing rows, np.asarray."""

    ndim = 2

    def __init__(self, entry):
        """`entry`: the entry as open_entry maps it (a C-order memmap): where its data starts,
        its dtype and shape."""
        if not entry.flags.c_contiguous:
            raise DamagedEntry(f"{entry.filename} is stored in Fortran order; cache entries are C order")
        self.file, self.offset, self.dtype, self.shape = entry.filename, entry.offset, entry.dtype, entry.shape

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("EntryRows reads runs of rows: entry[start:stop]")
        start, stop, _ = rows.indices(self.shape[0])
        count = max(0, stop - start) * self.shape[1]
        offset = self.offset + start * self.shape[1] * self.dtype.itemsize
        values = np.fromfile(self.file, self.dtype, count=count, offset=offset)
        if len(values) != count:  # the file shrank after it was checked
            raise UserError(f"the cache entry {self.file} changed while training; run again, and it is extracted again")
        return values.reshape(-1, self.shape[1])

    def __array__(self, dtype=None, copy=None):
        return self[:] if dtype is None else self[:].astype(dtype)


class ClipFeatures:
    """A mapping of clip paths to their cache entries (EntryRows), each checked once here
    (open_entry): no file stays open, and each clip costs memory only its EntryRows (a path, an
    offset, a shape), never its features."""

    def __init__(self, files, feature_size, frame_counts=None):
        frame_counts = frame_counts or {}
        self.entries = {}
        for path, file in files.items():
            try:
                self.entries[path] = EntryRows(open_entry(file, feature_size, frame_counts.get(path)))
            except (FileNotFoundError, DamagedEntry) as exc:
                raise UserError(f"the cache entry of {path} changed while training began: {first_line(exc)}; run "
                                "again, and it is extracted again") from None
        self.frame_counts = {path: len(entry) for path, entry in self.entries.items()}

    def __getitem__(self, path):
        return self.entries[path]

    def __contains__(self, path):
        return path in self.entries

    def __len__(self):
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)


class FeatureCache:
    def __init__(self, frame_path, root=None, index=None):
        self.index = index or CacheIndex(root)
        self.frame_path_key = frame_path.key()
        self.folder = self.index.file.parent / self.frame_path_key
        self.folder.mkdir(parents=True, exist_ok=True)
        self.feature_size = get_backbone(frame_path.backbone).feature_size

    def entry_of(self, record):
        """The entry file an index record names (by its content key), in this frame path's folder."""
        return self.folder / f"{record['key']}.npy"

    def entry_file(self, video):
        """The file of the video's entry, named by its content key (the index's, while the file is
        unchanged). Raises OSError for a video that can't be read."""
        return self.entry_of({"key": self.index.content_key(video)})

    def get(self, video):
        """The cached features, memory-mapped and checked, or None: not cached, a video that can't be
        read (the decoder then says why), or a damaged entry (said once; it is extracted again)."""
        try:
            file = self.entry_file(video)
            record = self.index.current(video) or {}
            features = open_entry(file, self.feature_size, record.get("frames", {}).get(self.frame_path_key))
        except OSError:  # FileNotFoundError among them
            return None
        except DamagedEntry as exc:
            tqdm.write(f"warning: damaged cache entry for {video}: {exc}; extracting it again", file=sys.stderr)
            return None
        self.index.note_frames(video, self.frame_path_key, len(features))
        return features

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
        file = self.entry_file(video)
        with written_atomically(file) as temporary, open(temporary, "wb") as f:
            np.save(f, features, allow_pickle=False)
        self.index.note_frames(video, self.frame_path_key, len(features))


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


_DONE = object()  # a clip's frames are all decoded
_END = (None, _DONE)  # the reader's last item: every clip is decoded


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
        _put(out, _END, stop)
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


def extract_features(videos, embedder, frame_path, cache, min_frames=1, progress=True, keep_features=True):
    """Features for each video: returns ({video: features}, {video: reason skipped}, timing);
    with keep_features false, {video: its frame count}: the features stay in the cache only.

    Cached clips load at once; the rest are decoded in a reader thread, overlapped with
    embedding in this one. Batches are always BATCH frames, filled across clip boundaries, so
    the runtime keeps one batch shape (LiteRT re-plans its buffers when the shape changes).
    Unreadable, truncated or too-short clips are skipped, each with one warning.
    """
    videos = list(dict.fromkeys(videos))  # a path given twice is one clip, extracted once
    extraction = _Extraction(videos, embedder, cache, min_frames, progress, keep_features)
    with _decoded_ahead(extraction.todo, frame_path) as decoded:
        for video, item in decoded:
            extraction.take(video, item)
    return extraction.finish()


@contextmanager
def _decoded_ahead(videos, frame_path):
    """Yield the reader thread's (video, batch, or the clip's end: _DONE or a UserError) items,
    clip after clip, up to its end. However the block ends (done, an error, Ctrl-C), the reader
    is stopped and joined: a thread left inside the decoder at exit aborts the process
    ("terminate called ...")."""
    decoded, stop = queue.Queue(maxsize=8), threading.Event()
    reader = threading.Thread(target=_decode_ahead, args=(videos, frame_path, decoded, stop), daemon=True)
    reader.start()
    try:
        yield iter(decoded.get, _END)
    finally:
        stop.set()
        reader.join(timeout=10)


def _too_short(count, min_frames):
    """Why a clip of `count` sampled frames is skipped, or None if it is long enough."""
    return f"too short: {count} sampled frames, need {min_frames}" if count < min_frames else None


class _Extraction:
    """One call of extract_features: the clips still to extract, the decoded frames waiting to
    be embedded, each clip's embedded frames until it ends, and what became of every clip (its
    features, or why it was skipped)."""

    def __init__(self, videos, embedder, cache, min_frames, progress, keep_features=True):
        self.embedder, self.cache, self.min_frames, self.keep_features = embedder, cache, min_frames, keep_features
        self.features, self.skipped = {}, {}
        self.todo = [video for video in videos if not self._from_cache(video)]
        self.bar = tqdm(total=len(videos), initial=len(videos) - len(self.todo), unit="clip", desc="features",
                        disable=not progress, file=sys.stderr, dynamic_ncols=True)
        self.pending = deque()  # (video, frames not yet embedded | the clip's end), in decoding order
        self.waiting = 0  # frames in `pending`
        self.parts = defaultdict(list)  # by video: its frames embedded so far
        self.streams = {}  # by video: a stateful embedder's stream for the clip
        self.frames, self.started = 0, time.perf_counter()

    def _from_cache(self, video):
        """Settle a clip from the cache (its features, or skipped if too short, the same rule
        as for a fresh extraction); False if it is not cached."""
        cached = self.cache.get(video)
        if cached is None:
            return False
        if reason := _too_short(len(cached), self.min_frames):
            self._skip(video, reason)
        else:
            self.features[video] = cached if self.keep_features else len(cached)
        return True

    def take(self, video, item):
        """One item from the reader: embed what is ready, then close the clips that are done."""
        self.pending.append((video, item))
        self.waiting += len(item) if isinstance(item, np.ndarray) else 0
        self._embed_ready(final=False)
        self._close_finished_clips()

    def finish(self):
        """After the reader's last item: embed the rest, close the last clips, and return
        (features, skipped, timing)."""
        self._embed_ready(final=True)
        self._close_finished_clips()
        self.bar.close()
        return self.features, self.skipped, {"clips": len(self.todo), "frames": self.frames,
                                             "seconds": time.perf_counter() - self.started}

    def _embed_ready(self, final):
        if self.embedder.stateful:
            self._embed_each_clip()
        else:
            while self.waiting >= BATCH or (final and self.waiting):
                self._embed_batch()
        if self.frames:
            self.bar.set_postfix(fps=f"{self.frames / (time.perf_counter() - self.started):.0f}", refresh=False)

    def _embed_each_clip(self):
        """A stateful embedder: every waiting frame now, each clip through a state of its own,
        in order, as live does it."""
        for video, item in self.pending:
            if isinstance(item, np.ndarray):
                self._embedded(video, self.streams.setdefault(video, self.embedder.stream())(item))
        self.pending = deque(entry for entry in self.pending if not isinstance(entry[1], np.ndarray))
        self.waiting = 0

    def _embed_batch(self):
        """A stateless embedder: the next BATCH frames (fewer only at the very end), across clip
        boundaries."""
        parts, owners, self.pending = _take_batch(self.pending, BATCH)
        output = self.embedder(np.concatenate(parts))
        offset = 0
        for owner, count in owners:
            self._embedded(owner, output[offset:offset + count])
            offset += count
        self.waiting -= offset

    def _embedded(self, video, features):
        self.parts[video].append(features)
        self.frames += len(features)

    def _close_finished_clips(self):
        """Close every clip at the front of `pending` whose frames are all embedded: cache its
        features, or skip it (it failed to decode, or is too short)."""
        while self.pending and not isinstance(self.pending[0][1], np.ndarray):
            video, end = self.pending.popleft()
            parts = self.parts.pop(video, [])
            self.streams.pop(video, None)
            count = sum(len(part) for part in parts)
            reason = str(end) if isinstance(end, UserError) else _too_short(count, self.min_frames)
            if reason:
                self._skip(video, reason)
            else:
                features = np.concatenate(parts)
                self.cache.put(video, features)
                self.features[video] = features if self.keep_features else len(features)
            self.bar.update(1)

    def _skip(self, video, reason):
        """Note why a clip is skipped, and warn of it, once."""
        self.skipped[video] = reason
        tqdm.write(f"warning: skipping {video}: {reason}", file=sys.stderr)
