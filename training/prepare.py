"""`fit`'s first stage, shared with `extract`: a dataset's clips -> the frame rate they are
sampled at -> their features in the cache, the cache's index recording what training needs of
each clip. Neither Keras nor a model is imported here until a backbone is loaded."""
import itertools
import os
from dataclasses import dataclass, replace

import numpy as np

from live.backbones import get_backbone
from live.choices import plausible_fps
from live.errors import UserError
from live.sources import FileSource
from training import log
from training.checks import check_fit
from training.datasets import single_source_classes
from training.features import (ClipFeatures, DamagedEntry, FeatureCache, clip_key, extract_features, load_embedder,
                               open_entry)


@dataclass
class Prepared:
    """What the first stage hands on: the dataset, the features of its usable clips (a
    ClipFeatures: cache entries, read as needed) and how they were made."""
    dataset: object  # training.datasets.Dataset
    data: str  # the dataset's folder
    feature_config: object  # the FeatureConfig, its frame rate resolved
    features: ClipFeatures
    skipped: dict  # {clip: why it was skipped}
    frame_path: object  # training.features.FramePath
    extraction: dict  # {"clips", "frames", "seconds"} extracted by this run
    train_clips: list  # usable, in path order
    test_clips: list

    @property
    def labels(self):
        return self.dataset.classes


def prepare(config, checked=None):
    """Stage 1 of `fit`: find the dataset `config` (a FitConfig) names (or take what
    training.checks.check_fit found), resolve its frame rate, extract what the cache lacks,
    record the dataset in the cache's index and return the usable clips and their features."""
    dataset, data, cache_index = checked or check_fit(config)
    log(f"dataset {data}: {dataset.layout} layout, {len(dataset.classes)} classes, "
        f"{len(dataset.train)} train and {len(dataset.test)} test clips")
    single_source = single_source_classes(dataset.train + dataset.test)
    if single_source:
        log(f"warning: every clip of {', '.join(single_source)} comes from one source video, so its segments "
            "are shared out between training, validation and test: the accuracy says little about new videos")
    feature_config = resolved_features(config.features, dataset.train, cache_index)
    features, skipped, frame_path, extraction = cached_features(
        dataset.train + dataset.test, feature_config, cache_index, config.min_frames, config.progress,
        from_index_only=not config.dataset.data)
    if config.dataset.data:  # from the cache alone there is nothing new to record, and no clip to find
        record_dataset(cache_index, dataset, data, config.dataset.split)
    # In path order, whatever order the layout lists them in (a CSV's), as the index gives them:
    # the same clips then draw the same windows, trained from the clips or from the cache alone.
    train_clips = sorted((c for c in dataset.train if str(c.path) in features), key=lambda c: str(c.path))
    test_clips = sorted((c for c in dataset.test if str(c.path) in features), key=lambda c: str(c.path))
    warn_of_short_clips([features.frame_counts[str(c.path)] for c in train_clips + test_clips], config.seq_len,
                        feature_config.frame_step, feature_config.frame_rate)
    return Prepared(dataset, data, feature_config, features, skipped, frame_path, extraction, train_clips, test_clips)


def prepare_features(clips, config, min_frames=1, progress=True):
    """Load the backbone `config` (a FeatureConfig, its frame rate resolved) names and return
    (features by path, skipped, frame path, timings) for `clips`."""
    embedder, frame_path = load_embedder(config)
    features, skipped, timing = extract_features(
        sorted({str(c.path) for c in clips}), embedder, frame_path, FeatureCache(frame_path, config.cache_root),
        min_frames=min_frames, progress=progress)
    return features, skipped, frame_path, timing


def cached_features(clips, config, cache_index, min_frames, progress, from_index_only):
    """The clips' cache entries as a ClipFeatures (read a run of rows at a time: nothing is held in
    memory), with (skipped, frame path, timings). Clips not yet cached are extracted first;
    `from_index_only` (training from the cache alone) extracts nothing and opens no clip."""
    embedder, frame_path = load_embedder(config)  # its fingerprint names the entries
    cache = FeatureCache(frame_path, config.cache_root, cache_index)
    if from_index_only:
        counts, skipped = indexed_entries(clips, cache, min_frames)
        timing = {"clips": 0, "frames": 0, "seconds": 0.0}
    else:
        counts, skipped, timing = extract_features(sorted({str(c.path) for c in clips}), embedder, frame_path, cache,
                                                   min_frames=min_frames, progress=progress, keep_features=False)
    files = {video: cache.entry_of(cache_index.records[clip_key(video)]) for video in counts}
    return ClipFeatures(files, cache.feature_size, counts), skipped, frame_path, timing


def indexed_entries(clips, cache, min_frames):
    """({clip: frame count}, {clip: why skipped}) for clips known only from the index: each entry
    is found by its recorded content key and checked (open_entry). A damaged entry, or an index
    with no entry for these options, is an error."""
    made = {key for clip in clips for key in cache.index.records[clip_key(clip.path)].get("frames", {})}
    if cache.frame_path_key not in made:
        raise UserError(f"the feature cache holds no features of these clips for these options "
                        f"({cache.frame_path_key}); it has {', '.join(sorted(made)) or 'none'}. Give the --backbone "
                        "and frame options they were extracted with, or extract them with `train extract --data "
                        "DIR` and these options")
    counts, skipped = {}, {}
    for clip in clips:
        video, record = str(clip.path), cache.index.records[clip_key(clip.path)]
        try:
            entry = open_entry(cache.entry_of(record), cache.feature_size,
                               record.get("frames", {}).get(cache.frame_path_key))
        except FileNotFoundError:
            skipped[video] = f"not in the feature cache for these options ({cache.frame_path_key})"
        except DamagedEntry as exc:
            raise UserError(f"damaged cache entry for {video}: {exc}; extract it again with `train extract --data "
                            "DIR` and this fit's options") from None
        else:
            if len(entry) < min_frames:
                skipped[video] = f"too short: {len(entry)} sampled frames, need {min_frames}"
            else:
                counts[video] = len(entry)
        if video in skipped:
            log(f"warning: skipping {video}: {skipped[video]}")
    return counts, skipped


def record_dataset(cache_index, dataset, data, ucf_split=None):
    """Record in the cache's index what training needs of each clip of `dataset` (its label,
    group, split, dataset folder and, for UCF101, which of its splits), so a later `fit --cache`
    can train without the clips; forget the dataset's clips whose files are gone (deleted,
    renamed, moved to another class), so the index lists only what `--data` would find; then
    save the index (with the content keys, frame counts and rates found on the way)."""
    fixed_split = dataset.layout != "class folders"  # class folders: the seed holds out the test clips
    for split, clips in (("train", dataset.train), ("test", dataset.test)):
        for clip in clips:
            if clip_key(clip.path) in cache_index.records:
                cache_index.update(clip.path, label=clip.label, group=clip.group, split=split if fixed_split else None,
                                   dataset=clip_key(data), layout=dataset.layout,
                                   ucf_split=ucf_split if dataset.layout == "ucf101" else None)
    for path in [path for path, record in cache_index.records.items() if record.get("dataset") == clip_key(data)]:
        if not os.path.exists(path):
            cache_index.forget(path)
    cache_index.save()


def resolved_features(config, train_clips, cache_index=None):
    """`config` (a FeatureConfig) with the frame rate clips are sampled at: the one given, else a
    streaming backbone's own rate, else the training clips' median rate. Live samples its
    sources by timestamp at the rate the bundle records, as the training clips were. `extract`
    uses it too, so its cache entries are the ones `fit` looks for."""
    frame_rate = (config.frame_rate or get_backbone(config.backbone).frame_rate
                  or median_frame_rate(train_clips, cache_index))
    return replace(config, frame_rate=frame_rate)


def measured_frame_rate(path, frames=64):
    """Frames a second over a clip's first `frames` frames, from the presentation times
    FileSource gives live and feature extraction (a variable-rate phone clip's container rate
    says little). None for a clip that won't open or has one frame."""
    try:
        source = FileSource(path)
    except UserError:
        return None
    try:
        times = [frame.timestamp for frame in itertools.islice(source.frames(), frames)]
    finally:
        source.close()
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None


def median_frame_rate(clips, cache_index=None, most=32):
    """The median of the measured frame rates of `clips`, or of `most` of them spread evenly
    over the sorted list (None if none has one). Measuring decodes frames, and it runs before
    the feature cache is read: a rerun on thousands of cached clips must not decode them all
    again for a median that a sample gives as well; and a rate the cache's index records for an
    unchanged clip (or, training from the cache alone, a clip that is gone) is not measured again."""
    clips = sorted(clips, key=lambda clip: str(clip.path))
    clips = clips[::-(-len(clips) // most)] if len(clips) > most else clips
    rates = [rate for clip in clips if plausible_fps(rate := clip_frame_rate(clip.path, cache_index))]
    return round(float(np.median(rates)), 3) if rates else None


def clip_frame_rate(path, cache_index=None):
    """A clip's measured frame rate, from the index when it records one for the clip as it is,
    else measured (and recorded)."""
    record = cache_index.current(path) if cache_index else None
    if record and record.get("frame_rate"):
        return record["frame_rate"]
    rate = measured_frame_rate(path)
    if cache_index and rate:
        try:
            cache_index.content_key(path)
        except OSError:
            return rate
        cache_index.update(path, frame_rate=rate)
    return rate


def warn_of_short_clips(frame_counts, seq_len, frame_step, frame_rate):
    """Say when clips are shorter than the window: the model then never sees a full one of them,
    and live, which does, meets windows longer than any it trained on."""
    short = [count for count in frame_counts if count < seq_len]
    if not short:
        return
    if frame_rate:
        period = frame_step / frame_rate
        window = f"{seq_len} sampled frames, {seq_len * period:.1f} s at {1 / period:g} per second"
        fix = f"clips of at least {seq_len * period:.1f} s"
    else:
        window = f"{seq_len} sampled frames"
        fix = "longer clips"
    log(f"warning: {len(short)} of {len(frame_counts)} clips are shorter than the model's window ({window}; "
        f"the shortest gives {min(short)}): it trains and tests on partial windows of them. Use {fix}, "
        f"or a shorter --seq-len")
