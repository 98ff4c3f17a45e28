"""`train fit`: dataset -> cached features -> windows -> sequence model -> test metrics ->
an atomically written bundle with its report."""
import itertools
import json
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from live.backbones import backbone_class_names, get_backbone, load_backbone_model
from live.bundle import backbone_entries, write_bundle
from live.choices import plausible_fps
from live.errors import UserError, first_line
from live.quiet import keras
from live.sources import FileSource
from live.runtimes import compiled_call
from training import log
from training.augment import SPEED_RANGE
from training.checks import check_fit
from training.datasets import grouped_split, single_source_classes, split_record
from training.features import (ClipFeatures, DamagedEntry, FeatureCache, clip_key, extract_features,
                               load_embedder, open_entry)
from training.model import AUTO, CANDIDATES, CLASS_SCORE_CANDIDATES, EVOKED_PER_CLASS, build_sequence_model
from training.report import classification_metrics, confusion_png, curves_png, metrics_text
from training.windows import WindowBatches, predict_clip, shuffled_frames


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


def feature_statistics(features, clips):
    """The mean and variance (plus 1e-6) of every frame of `clips`, summed clip by clip in
    float64, so no copy of all the frames is made."""
    total, squares, count = 0.0, 0.0, 0
    for clip in clips:
        frames = np.asarray(features[str(clip.path)], np.float64)
        total, squares, count = total + frames.sum(axis=0), squares + (frames * frames).sum(axis=0), count + len(frames)
    mean = total / count
    return mean.astype(np.float32), (np.maximum(squares / count - mean * mean, 0) + 1e-6).astype(np.float32)


def evoked_classes(features, clips, labels, per_class=EVOKED_PER_CLASS):
    """For a backbone whose features are its own classifier's logits (MoViNet's Kinetics-600):
    {label: the `per_class` backbone classes its clips evoke most, by their softmax over every
    frame, averaged, strongest first}. The linear head reads the scores of their union alone.

    Why: with a few clips a class, a linear classifier of all 600 scores learns from the many that
    say nothing about the user's actions and happen to differ between their clips. On ucf11_dev
    (scikit-learn's logistic regression of the windows' mean and newest frame, split by group,
    5 clips a class, 12 seeds) the scores of the 5 classes each action evokes most scored 0.974,
    all 600 scores 0.950 (0.963 unstandardised); with 10 clips (9 seeds) 0.979 against 0.975, with
    all of them (6 seeds) 0.990 against 0.976."""
    sums = {}  # label -> (the softmax summed over its frames, their count), clip by clip: no copy of them all
    for clip in clips:
        logits = np.asarray(features[str(clip.path)], np.float64)
        exps = np.exp(logits - logits.max(axis=1, keepdims=True))
        total, count = sums.get(clip.label, (0.0, 0))
        sums[clip.label] = total + (exps / exps.sum(axis=1, keepdims=True)).sum(axis=0), count + len(logits)
    # A class none of `clips` shows (all its clips skipped) evokes nothing.
    return {label: [int(i) for i in np.argsort(-sums[label][0] / sums[label][1], kind="stable")[:per_class]]
            for label in labels if label in sums and sums[label][1]}


def evoked_names(backbone, evoked):
    """{label: the names of its evoked classes} (their indices where the names are not shipped)."""
    names = backbone_class_names(backbone)
    return {label: [names[i] if names else i for i in indices] for label, indices in evoked.items()}


def evoked_subset(evoked):
    """The feature indices the linear head reads: the union of evoked_classes', in feature order."""
    return sorted({i for indices in evoked.values() for i in indices})


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


def evaluate_clips(head, clips, features, labels, seq_len):
    """Metrics for the first window (the reference's way) and for the mean over all windows."""
    index = {label: i for i, label in enumerate(labels)}
    truth, first, mean = [], [], []
    for clip in clips:
        first_probs, mean_probs = predict_clip(head, features[str(clip.path)], seq_len)
        truth.append(index[clip.label])
        first.append(int(np.argmax(first_probs)))
        mean.append(int(np.argmax(mean_probs)))
    return {"first_window": classification_metrics(truth, first, labels),
            "all_windows": classification_metrics(truth, mean, labels)}


def choose_head(histories):
    """The head to keep of those trained, by their training histories ({kind: Keras history}):
    the best validation accuracy, at each one's best epoch (lowest validation loss, whose weights
    early stopping restored); a tie goes to the lower validation cross-entropy (the loss without
    weight decay, which differs between heads), then to the first kind.
    Returns (kind, {kind: {"validation_accuracy", "validation_loss", "validation_cross_entropy"}})."""
    scores = {}
    for kind, history in histories.items():
        best = int(np.argmin(history["val_loss"]))
        scores[kind] = {"validation_accuracy": history["val_accuracy"][best],
                        "validation_loss": history["val_loss"][best],
                        "validation_cross_entropy": history["val_cross_entropy"][best]}
    chosen = max(scores, key=lambda kind: (scores[kind]["validation_accuracy"],
                                           -scores[kind]["validation_cross_entropy"]))
    return chosen, scores


class EpochBar(keras.callbacks.Callback):
    """One progress bar for a training, in epochs, with the loss and the validation accuracy so
    far, in place of Keras's line per epoch (`train fit --verbose` keeps those)."""

    def __init__(self, epochs, description):
        super().__init__()
        self.epochs, self.description, self.bar = epochs, description, None

    def on_train_begin(self, logs=None):
        from tqdm import tqdm

        self.bar = tqdm(total=self.epochs, desc=self.description, unit="epoch", file=sys.stderr, leave=True,
                        dynamic_ncols=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = {"loss": f"{logs['loss']:.3f}"} if "loss" in logs else {}
        if "val_accuracy" in logs:
            shown["val_acc"] = f"{logs['val_accuracy']:.1%}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        if self.bar is not None:  # early stopping ends it before `epochs`: the bar says where
            self.bar.close()


def train_model(model, train_batches, val_batches, epochs, progress, verbose=False, description="training"):
    """model.fit on the streamed windows, each epoch's drawn afresh, with early stopping on
    `val_batches` (without them, `epochs` epochs); returns Keras's History. Progress is one bar
    (`verbose`: Keras's line per epoch). An error in making a batch (an entry that changed or
    vanished while training) reaches the user as itself, one line, not as the backend's
    wrapping of it (tf.data's UnknownError and its traceback)."""
    callbacks = [train_batches.epoch_callback()]
    if val_batches is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=8, restore_best_weights=True))
    if progress and not verbose:
        callbacks.append(EpochBar(epochs, description))
    try:
        return model.fit(train_batches, validation_data=val_batches, epochs=epochs,
                         verbose=2 if progress and verbose else 0, callbacks=callbacks)
    except Exception:
        failure = train_batches.failure or (val_batches.failure if val_batches is not None else None)
        if isinstance(failure, UserError):
            raise failure from None
        if isinstance(failure, OSError):
            raise UserError(f"a feature cache entry could not be read while training ({first_line(failure)}); "
                            "run again, and what is missing is extracted again") from None
        raise


def fit(config, checked=None):
    """Train the sequence model `config` (a FitConfig) describes and write its bundle; returns
    the report written into it. `checked`: what training.checks.check_fit found for `config`
    (the command line runs it before this module, and Keras, are imported), else found here."""
    started = time.perf_counter()
    out, seed = Path(config.out), config.dataset.seed
    seq_len, model_kind, backbone = config.seq_len, config.model_kind, config.features.backbone
    dataset, data, cache_index = checked or check_fit(config)
    log(f"dataset {data}: {dataset.layout} layout, {len(dataset.classes)} classes, "
        f"{len(dataset.train)} train and {len(dataset.test)} test clips")
    single_source = single_source_classes(dataset.train + dataset.test)
    if single_source:
        log(f"warning: every clip of {', '.join(single_source)} comes from one source video, so its segments "
            "are shared out between training, validation and test: the accuracy says little about new videos")

    feature_config = resolved_features(config.features, dataset.train, cache_index)
    frame_step, frame_rate = feature_config.frame_step, feature_config.frame_rate
    features, skipped, frame_path, extraction = cached_features(
        dataset.train + dataset.test, feature_config, cache_index, config.min_frames, config.progress,
        from_index_only=not config.dataset.data)
    if config.dataset.data:  # from the cache alone there is nothing new to record, and no clip to find
        record_dataset(cache_index, dataset, data, config.dataset.split)
    # In path order, whatever order the layout lists them in (a CSV's), as the index gives them:
    # the same clips then draw the same windows, trained from the clips or from the cache alone.
    train_clips = sorted((c for c in dataset.train if str(c.path) in features), key=lambda c: str(c.path))
    test_clips = sorted((c for c in dataset.test if str(c.path) in features), key=lambda c: str(c.path))
    warn_of_short_clips([features.frame_counts[str(c.path)] for c in train_clips + test_clips], seq_len,
                        frame_step, frame_rate)
    fit_clips, val_clips = grouped_split(train_clips, config.val_fraction, seed)
    if not fit_clips or not val_clips:
        raise UserError(f"{data}: too few usable training clips to hold out a validation split "
                        f"({len(train_clips)} usable, {len(skipped)} skipped)")

    labels = dataset.classes
    index = {label: i for i, label in enumerate(labels)}
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    mean, variance = feature_statistics(features, fit_clips)

    def batches(clips, per_clip, redraw, speed_range=None):
        return WindowBatches(features, [str(c.path) for c in clips], [index[c.label] for c in clips], seq_len, per_clip,
                             config.batch_size, rng, seed, redraw=redraw, speed_range=speed_range,
                             per_window=shuffled_frames if config.shuffle_frames else None)

    # Drawn in this order from `rng`, as before streaming: the first epoch's windows, then validation's
    # (never sped up: validation scores clips as they are). With --augment the speeds are drawn from
    # `rng` too, so the validation windows differ from a --no-augment run's on the same seed.
    train_speeds = SPEED_RANGE if config.augment else None
    train_batches = batches(fit_clips, config.windows_per_clip, redraw=True, speed_range=train_speeds)
    val_batches = batches(val_clips, max(4, config.windows_per_clip // 2), redraw=False)
    feature_size = get_backbone(backbone).feature_size
    reads_class_scores = get_backbone(backbone).class_names is not None
    kinds = (model_kind,) if model_kind != AUTO else CLASS_SCORE_CANDIDATES if reads_class_scores else CANDIDATES
    # The backbone classes linear reads (None: all the features), chosen from the clips it trains on;
    # the refit keeps them (below says why).
    evoked = evoked_classes(features, fit_clips, labels) if reads_class_scores and "linear" in kinds else None
    linear_subset = evoked_subset(evoked) if evoked else None
    trained = {}
    for kind in kinds:
        keras.utils.set_random_seed(seed)  # each candidate starts as it would trained alone
        model = build_sequence_model(kind, seq_len, feature_size, len(labels), mean, variance,
                                     linear_subset if kind == "linear" else None)
        log(f"training {kind} model ({model.count_params():,} parameters) on {train_batches.windows} windows "
            f"an epoch from {len(fit_clips)} clips, validating on {len(val_clips)} clips")
        # Every candidate's epoch 0 gets the first draw again (epoch_callback), so all see the same windows.
        history = train_model(model, train_batches, val_batches, config.epochs, config.progress, config.verbose,
                              f"training {kind}")
        trained[kind] = model, {k: [float(v) for v in values] for k, values in history.history.items()}
    chosen, candidates = choose_head({kind: history for kind, (_, history) in trained.items()})
    if len(kinds) > 1:
        log("validation accuracy: " + ", ".join(f"{kind} {score['validation_accuracy']:.1%}"
                                                for kind, score in candidates.items()) + f"; keeping {chosen}")
    model, history = trained[chosen]
    best_epoch = int(np.argmin(history["val_loss"]))
    tests = {kind: evaluate_clips(compiled_call(candidate), test_clips, features, labels, seq_len)
             for kind, (candidate, _) in trained.items()} if test_clips else {}
    for kind, score in candidates.items():
        score["test_accuracy_all_windows"] = tests[kind]["all_windows"]["accuracy"] if tests else None
    test = tests.get(chosen)

    refit = None
    if config.refit:
        # Validation has chosen the head and how many epochs it needs; now it learns from the
        # validation clips too. Those are whole groups (people, scenes) the head has not seen:
        # on ucf11_dev with Lite0 and all the clips, the linear head scored 0.903 as validated
        # and 0.951 trained again (README, "Teach it your own actions"). The windows are drawn
        # afresh from every training clip, as in the first fit. The evoked classes stay those
        # validation chose the epochs for: chosen again from every training clip, MoViNet on
        # ucf11_dev scored 0.986 / 0.958 / 0.986 with 5 / 10 / all clips a class (7fd6990,
        # 3 seeds), kept 0.993 / 0.972 / 0.986.
        keras.utils.set_random_seed(seed)
        all_batches = batches(train_clips, config.windows_per_clip, redraw=True, speed_range=train_speeds)
        model = build_sequence_model(chosen, seq_len, feature_size, len(labels),
                                     *feature_statistics(features, train_clips),
                                     linear_subset if chosen == "linear" else None)
        log(f"training {chosen} again on {len(train_clips)} clips (training and validation), "
            f"{best_epoch + 1} epochs")
        train_model(model, all_batches, None, best_epoch + 1, config.progress, config.verbose, f"training {chosen} again")
        refit = {"clips": len(train_clips), "epochs": best_epoch + 1, "windows": all_batches.windows}
        test = evaluate_clips(compiled_call(model), test_clips, features, labels, seq_len) if test_clips else None
    if test:
        log(metrics_text(test["all_windows"], "test, mean over all windows"))
        log(f"test, first window only: accuracy {test['first_window']['accuracy']:.1%}")

    # The backbone classes the bundle's head reads, by name, each action's strongest first.
    read_classes = evoked_names(backbone, evoked) if evoked and chosen == "linear" else None
    if read_classes:
        log("the linear head reads the scores of the backbone's classes each action evokes most: " + "; ".join(
            f"{label}: {', '.join(map(str, names[:3]))}…" for label, names in read_classes.items()))
    seconds = time.perf_counter() - started
    report = {
        "dataset": {"path": str(data), "layout": dataset.layout, "classes": labels,
                    "train_clips": len(fit_clips), "validation_clips": len(val_clips),
                    "test_clips": len(test_clips), "train_windows": train_batches.windows},
        "test": test,
        "model": chosen,
        "candidates": candidates,
        "best_epoch": best_epoch + 1,
        "refit": refit,
        "evoked_classes": read_classes,
        "history": history,
        "skipped": [{"video": video, "reason": reason} for video, reason in sorted(skipped.items())],
        "timings": {"total_s": round(seconds, 1), "extraction_s": round(extraction["seconds"], 1),
                    "frames_extracted": extraction["frames"],
                    "extraction_fps": round(extraction["frames"] / extraction["seconds"], 1)
                    if extraction["frames"] else None},
        "machine": platform.platform(),
    }
    manifest = {
        "backbone": backbone, "image_size": frame_path.image_size,
        "feature_size": get_backbone(backbone).feature_size, "backbone_fingerprint": frame_path.fingerprint,
        "seq_len": seq_len, "frame_step": frame_step, "frame_rate": frame_rate, "model": chosen,
        "model_selection": {"requested": model_kind, "by": "validation accuracy" if len(kinds) > 1
                            else "requested" if model_kind != AUTO else "the backbone's class scores",
                            "candidates": {kind: {name: score[name] for name in
                                                  ("validation_accuracy", "validation_loss", "validation_cross_entropy")}
                                           for kind, score in candidates.items()}},
        "refit": refit,
        "evoked_classes": read_classes,
        "split": split_record(dataset, data, config.dataset.split, config.dataset.classes,
                              config.dataset.test_fraction, seed),
        "trained_on": {"data": str(data), "layout": dataset.layout, "clips": len(train_clips),
                       "description": config.description},
        "metrics": {"test_accuracy_all_windows": test["all_windows"]["accuracy"] if test else None,
                    "test_accuracy_first_window": test["first_window"]["accuracy"] if test else None,
                    # Of the head as validated: after a refit the bundle's head has trained on those clips.
                    "validation_loss": history["val_loss"][best_epoch],
                    "validation_accuracy": history["val_accuracy"][best_epoch],
                    "validation_of": "the head before its refit" if refit else "the bundle's head"},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    extra = {"report.json": (json.dumps(report, indent=2) + "\n").encode(), "training_curves.png": curves_png(history)}
    if test:
        extra["confusion_matrix.png"] = confusion_png(test["all_windows"])
    backbone_manifest, backbone_files = backbone_entries(
        load_backbone_model(backbone, feature_config.backbone_weights) if get_backbone(backbone).streaming else None)
    manifest.update(backbone_manifest)
    if get_backbone(backbone).streaming:
        from live.movinet import STATE_POLICY

        manifest["stream_state"] = STATE_POLICY
    extra.update(backbone_files)
    write_bundle(out, model, labels, manifest, force=config.force, extra_files=extra)
    held_out = test["all_windows"]["accuracy"] if test else history["val_accuracy"][best_epoch]
    chance = 1 / len(labels)
    if held_out <= chance + 1e-9:
        log(f"warning: the {chosen} head scores {held_out:.1%} on clips it did not train on, no better than chance "
            f"({chance:.1%}): it has not learnt these actions. Give it more clips a class, from more sessions "
            "(people, places), and clips of at least the window's length")
    log(f"wrote {out}: {chosen} head, {held_out:.1%} on held-out clips ({'test' if test else 'validation'}, "
        f"chance {chance:.1%}), {seconds:.0f} s")
    return report

