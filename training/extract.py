"""`train extract`: fill the feature cache that `fit`, `evaluate` and `predict` read, on this
machine or on a Ray cluster.

Every engine runs the same `extract_features` (features.py) with the same frame path, so the
cache keys and files are the ones `fit` would write, and a `fit` after an `extract` finds
every clip cached. A clip is the unit of work.

- `local`: one process, as `fit` does it.
- `ray`: Ray actors, each loading its embedder once and taking clip after clip. `--address
  auto` joins a running cluster (`ray start --head`, then `ray start --address …` on the
  others); without it, a local Ray with `--workers` actors is started. Workers write straight
  into the cache, which must then be on storage every machine sees at the same path (set
  LIVE_CACHE_DIR or --cache); entries are written atomically, so concurrent workers, a
  crashed worker or Ctrl-C leave only complete entries, and a rerun resumes.

Either way the driver writes the cache's index (features.CacheIndex): each clip's identity,
label, group, split and frame counts, from the workers' answers, so `fit` needs no clip again.
"""
import os
import socket
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace

from tqdm import tqdm

from live.errors import UserError, first_line
from live.cluster import ray_session, user_error_in
from training import log
from training.checks import check_extract
from training.config import ENGINES, MIN_FRAMES, FeatureConfig
from training.features import CacheIndex, FeatureCache, FramePath, clip_key, extract_features, load_embedder
from training.prepare import record_dataset, resolved_features


@dataclass(frozen=True)
class ExtractionJob:
    """All a worker needs to build the very embedder and cache the driver planned with: its
    features (the frame rate resolved, the cache folder absolute) and the frame path they name."""
    features: FeatureConfig
    frame_path: FramePath


class ClipExtractor:
    """One worker: the embedder, loaded once, and the cache; `extract` takes a clip's path."""

    def __init__(self, job):
        self.embedder, frame_path = load_embedder(job.features)
        if frame_path.fingerprint != job.frame_path.fingerprint:
            raise UserError(f"the {job.features.backbone} weights on {socket.gethostname()} (fingerprint "
                            f"{frame_path.fingerprint}) differ from the driver's ({job.frame_path.fingerprint}); "
                            "give every machine the same weights")
        self.job = job
        self.cache = FeatureCache(job.frame_path, job.features.cache_root)
        self.done = {"host": socket.gethostname(), "pid": os.getpid(), "clips": 0, "frames": 0, "seconds": 0.0,
                     "skipped": 0}

    def extract(self, video):
        """Extract one clip into the cache: {"video", "frames", "seconds", "skipped": reason or
        None, "cached": whether it was there already, "record": the clip's index record}. The
        driver writes the index: workers on other machines never write one file at once."""
        if self.cache.get(video) is not None:  # a rerun resumes: the worker, not the driver, reads the video
            return {"video": video, "frames": 0, "seconds": 0.0, "skipped": None, "cached": True,
                    "record": self.cache.index.records.get(clip_key(video))}
        started = time.perf_counter()
        _, skipped, timing = extract_features([video], self.embedder, self.job.frame_path, self.cache,
                                              MIN_FRAMES, progress=False)
        seconds = time.perf_counter() - started
        self.done["clips"] += 1
        self.done["frames"] += timing["frames"]
        self.done["seconds"] += seconds
        self.done["skipped"] += bool(skipped)
        return {"video": video, "frames": timing["frames"], "seconds": seconds, "skipped": skipped.get(video),
                "cached": False, "record": self.cache.index.records.get(clip_key(video))}

    def summary(self):
        return dict(self.done)


def plan(dataset_config, feature_config, cache_index, dataset):
    """The dataset's clips, the job (the frame path `fit` would use with these options) and the
    embedder that named it, which the local engine then runs."""
    # Absolute paths for the clips and the cache: a worker on another machine, or in another
    # working directory, must read and write exactly where the driver means. Not resolved:
    # the index names clips as `fit` does (clip_key).
    clips = sorted({clip_key(clip.path) for clip in dataset.train + dataset.test})
    log(f"dataset {dataset_config.data}: {dataset.layout} layout, {len(dataset.classes)} classes, {len(clips)} clips")
    feature_config = resolved_features(feature_config, dataset.train, cache_index)
    embedder, frame_path = load_embedder(feature_config)
    cache_root = str(FeatureCache(frame_path, feature_config.cache_root, cache_index).folder.parent.resolve())
    return clips, ExtractionJob(replace(feature_config, cache_root=cache_root), frame_path), embedder


def extract_locally(config, job, embedder, clips, cache_index):
    """In this process, with the driver's own embedder (`plan` built it), as `fit` does it."""
    _, skipped, timing = extract_features(clips, embedder, job.frame_path,
                                          FeatureCache(job.frame_path, job.features.cache_root, cache_index),
                                          MIN_FRAMES, progress=config.progress, keep_features=False)
    log(f"{len(clips) - timing['clips']} of {len(clips)} clips were already in the cache")
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "clips": timing["clips"], "frames": timing["frames"],
              "seconds": timing["seconds"], "skipped": len(skipped)}
    return skipped, [worker], timing["seconds"]


def extract_on_ray(config, job, _embedder, clips, cache_index):
    """On Ray actors, started here or on the cluster at `config.address`."""
    cache = FeatureCache(job.frame_path, job.features.cache_root)
    swept = cache.sweep_temporaries()
    log(f"cache {cache.folder}" + (f" ({swept} stale temporary files of killed workers removed)" if swept else ""))
    with ray_session(config.address, config.workers) as ray:
        count = config.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        return _run_actors(ray, job, clips, count, config.progress, cache_index)


def _run_actors(ray, job, clips, count, progress, cache_index):
    """Hand clips to `count` actors, two in flight each, until all are done (_Dispatch). A worker
    that dies (a crash in native code, a lost machine) is replaced, and the clips it held go to
    the others. Returns (skipped clips, each worker's summary, seconds of work)."""
    # One CPU per actor, and the embedder's threads to match: more would fight the other actors.
    Worker = ray.remote(num_cpus=1, runtime_env={"env_vars": {"LIVE_CPUS": "1"}})(ClipExtractor)
    actors = [Worker.remote(job) for _ in range(count)]
    log(f"starting {count} ray workers (each loads the backbone once)")
    try:
        ray.get([actor.summary.remote() for actor in actors])  # ready: time the work, not the start-up
    except ray.exceptions.RayError as exc:
        raise UserError(user_error_in(exc)) from None
    dispatch = _Dispatch(ray, lambda: Worker.remote(job), actors, clips, progress, cache_index)
    started = time.perf_counter()
    dispatch.run()
    seconds = time.perf_counter() - started
    log(f"{dispatch.cached} of {len(clips)} clips were already in the cache")
    summaries = []
    for actor in dispatch.lost + dispatch.actors:
        try:
            summaries.append(ray.get(actor.summary.remote()))
        except ray.exceptions.RayError:
            summaries.append({"host": "?", "pid": "?", "clips": 0, "frames": 0, "seconds": 0.0, "skipped": 0,
                              "note": "died"})
    return dispatch.skipped, summaries, seconds


class _Dispatch:
    """The driver's side of a Ray extraction: which clips each actor holds, in order, and what
    came of every clip. An actor runs its calls in order, so of the clips a dead worker held only
    the oldest was being extracted: that one is charged with the death, and a clip charged twice
    is skipped and listed."""

    def __init__(self, ray, start_worker, actors, clips, progress, cache_index):
        self.ray, self.start_worker, self.actors, self.cache_index = ray, start_worker, actors, cache_index
        self.pending, self.queue, self.skipped, self.deaths, self.lost = {}, list(reversed(clips)), {}, Counter(), []
        self.held, self.culprits, self.cached = defaultdict(list), {}, 0  # by id(actor): its clips; what it died on
        self.bar = tqdm(total=len(clips), unit="clip", desc=f"features ({len(actors)} ray workers)",
                        disable=not progress, file=sys.stderr, dynamic_ncols=True)
        self.frames, self.started = 0, time.perf_counter()

    def submit(self, slot):
        if self.queue:
            clip = self.queue.pop()
            self.pending[self.actors[slot].extract.remote(clip)] = (slot, self.actors[slot], clip)
            self.held[id(self.actors[slot])].append(clip)

    def run(self):
        count = len(self.actors)
        for slot in range(count):  # two clips each in flight: the next one is there when one finishes
            self.submit(slot)
            self.submit(slot)
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1)
            slot, actor, clip = self.pending.pop(ready[0])
            try:
                outcome = self.ray.get(ready[0])
            except self.ray.exceptions.RayActorError as exc:
                if "UserError" in str(exc):
                    raise UserError(user_error_in(exc)) from None
                self.died(slot, actor, clip, exc)
            except self.ray.exceptions.RayTaskError as exc:
                raise UserError(user_error_in(exc)) from None
            else:
                self.done(actor, clip, outcome)
            self.submit(slot)
            while self.queue and len(self.pending) < 2 * count:  # a retried clip may find every worker busy
                self.submit(min(range(count), key=lambda s: sum(p[0] == s for p in self.pending.values())))
        self.bar.close()

    def died(self, slot, actor, clip, exc):
        """A clip came back from a dead worker: replace the worker (on the first of its clips to
        come back), and queue the clip again, or skip it if it has now been charged twice."""
        culprit = self.culprits.setdefault(id(actor), self.held[id(actor)][0])
        self.held[id(actor)].remove(clip)
        self.deaths[clip] += clip == culprit
        if self.actors[slot] is actor:
            self.lost.append(actor)
            if len(self.lost) > 2 * len(self.actors) + 2:
                raise UserError(f"Ray workers keep dying ({len(self.lost)} so far); the last: "
                                f"{first_line(exc)}") from None
            tqdm.write(f"warning: a worker died while extracting {clip}; starting another, and its "
                       "clips go to the others", file=sys.stderr)
            self.actors[slot] = self.start_worker()
        if self.deaths[clip] >= 2:
            self.skipped[clip] = "two workers died extracting it (a crash in the decoder or the backbone?)"
            tqdm.write(f"warning: skipping {clip}: {self.skipped[clip]}", file=sys.stderr)
            self.bar.update(1)
        else:
            self.queue.append(clip)  # next out of the queue, to whichever worker asks first

    def done(self, actor, clip, outcome):
        self.held[id(actor)].remove(clip)
        if outcome["record"]:
            self.cache_index.merge(outcome["record"])
        self.frames += outcome["frames"]
        self.cached += outcome["cached"]
        if outcome["skipped"]:
            self.skipped[clip] = outcome["skipped"]
            tqdm.write(f"warning: skipping {clip}: {self.skipped[clip]}", file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(fps=f"{self.frames / (time.perf_counter() - self.started):.0f}", refresh=False)


def extract(config, dataset=None):
    """Fill the feature cache for `config` (an ExtractConfig) with its engine; returns the frame
    path, the frames, seconds and skipped clips, and what each worker did. `dataset`: the one
    training.checks.check_extract found for `config` (the command line runs it before this
    module, and Keras, are imported), else found here."""
    started = time.perf_counter()
    dataset = dataset or check_extract(config)
    cache_index = CacheIndex(config.features.cache_root)
    clips, job, embedder = plan(config.dataset, config.features, cache_index, dataset)
    try:
        skipped, workers_done, work_seconds = ENGINES[config.engine].load()(config, job, embedder, clips, cache_index)
    finally:  # Ctrl-C too: what was extracted so far is found from the index next time
        record_dataset(cache_index, dataset, config.dataset.data, config.dataset.split)
    seconds = time.perf_counter() - started
    frames = sum(worker["frames"] for worker in workers_done)
    rate = frames / work_seconds if work_seconds else 0.0
    log(f"extracted {frames} frames from {sum(w['clips'] for w in workers_done)} clips in {work_seconds:.1f} s "
        f"({rate:.1f} frames/s overall; {seconds:.1f} s with start-up), {len(skipped)} skipped")
    for number, worker in enumerate(workers_done, 1):
        rate = worker["frames"] / worker["seconds"] if worker["seconds"] else 0.0
        log(f"  worker {number} ({worker['host']}, pid {worker['pid']}): {worker['clips']} clips, "
            f"{worker['frames']} frames, {rate:.1f} frames/s busy, {worker['skipped']} skipped"
            + (" (died)" if worker.get("note") else ""))
    for video, reason in sorted(skipped.items()):
        log(f"  skipped {video}: {reason}")
    return {"frame_path": asdict(job.frame_path), "frames": frames, "seconds": work_seconds, "skipped": skipped,
            "workers": workers_done}
