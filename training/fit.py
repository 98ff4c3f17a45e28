"""`train fit`: dataset -> cached features -> windows -> sequence model -> test metrics ->
an atomically written bundle with its report."""
import itertools
import json
import platform
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from live.backbones import get_backbone, load_backbone_model
from live.bundle import carried_backbone, write_bundle
from live.choices import plausible_fps
from live.errors import UserError
from live.quiet import keras
from live.sources import FileSource
from live.runtimes import compiled_call
from training import log
from training.datasets import grouped_split, single_source_classes, split_record
from training.features import FeatureCache, extract_features, load_embedder
from training.augment import SPEED_RANGE
from training.model import AUTO, CANDIDATES, build_sequence_model
from training.report import classification_metrics, confusion_png, curves_png, metrics_text
from training.windows import predict_clip, training_windows


def prepare_features(clips, config, min_frames=1, progress=True):
    """Load the backbone `config` (a FeatureConfig, its frame rate resolved) names and return
    (features by path, skipped, frame path, timings) for `clips`."""
    embedder, frame_path = load_embedder(config)
    features, skipped, timing = extract_features(
        sorted({str(c.path) for c in clips}), embedder, frame_path, FeatureCache(frame_path, config.cache_root),
        min_frames=min_frames, progress=progress)
    return features, skipped, frame_path, timing


def resolved_features(config, train_clips):
    """`config` (a FeatureConfig) with the frame rate clips are sampled at: the one given, else a
    streaming backbone's own rate, else the training clips' median rate. Live samples its
    sources by timestamp at the rate the bundle records, as the training clips were. `extract`
    uses it too, so its cache entries are the ones `fit` looks for."""
    frame_rate = config.frame_rate or get_backbone(config.backbone).frame_rate or median_frame_rate(train_clips)
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


def median_frame_rate(clips, most=32):
    """The median of the measured frame rates of `clips`, or of `most` of them spread evenly
    over the sorted list (None if none has one). Measuring decodes frames, and it runs before
    the feature cache is read: a rerun on thousands of cached clips must not decode them all
    again for a median that a sample gives as well."""
    clips = sorted(clips, key=lambda clip: str(clip.path))
    clips = clips[::-(-len(clips) // most)] if len(clips) > most else clips
    rates = [rate for clip in clips if plausible_fps(rate := measured_frame_rate(clip.path))]
    return round(float(np.median(rates)), 3) if rates else None


def warn_of_short_clips(clip_features, seq_len, frame_step, frame_rate):
    """Say when clips are shorter than the window: the model then never sees a full one of them,
    and live, which does, meets windows longer than any it trained on."""
    short = [len(f) for f in clip_features if len(f) < seq_len]
    if not short:
        return
    if frame_rate:
        period = frame_step / frame_rate
        window = f"{seq_len} sampled frames, {seq_len * period:.1f} s at {1 / period:g} per second"
        fix = f"clips of at least {seq_len * period:.1f} s"
    else:
        window = f"{seq_len} sampled frames"
        fix = "longer clips"
    log(f"warning: {len(short)} of {len(clip_features)} clips are shorter than the model's window ({window}; "
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
    early stopping restored); a tie goes to the lower validation loss, then to the first kind.
    Returns (kind, {kind: {"validation_accuracy", "validation_loss"}})."""
    scores = {}
    for kind, history in histories.items():
        best = int(np.argmin(history["val_loss"]))
        scores[kind] = {"validation_accuracy": history["val_accuracy"][best],
                        "validation_loss": history["val_loss"][best]}
    chosen = max(scores, key=lambda kind: (scores[kind]["validation_accuracy"], -scores[kind]["validation_loss"]))
    return chosen, scores


def fit(config):
    """Train the sequence model `config` (a FitConfig) describes and write its bundle; returns
    the report written into it."""
    started = time.perf_counter()
    data, out, seed = config.dataset.data, Path(config.out), config.dataset.seed
    seq_len, model_kind, backbone = config.seq_len, config.model_kind, config.features.backbone
    if out.exists() and not config.force:
        raise UserError(f"{out} already exists; choose another --out or pass --force to replace it")
    get_backbone(backbone)  # an unknown name is an error before the dataset is scanned
    dataset = config.dataset.load()
    log(f"dataset {data}: {dataset.layout} layout, {len(dataset.classes)} classes, "
        f"{len(dataset.train)} train and {len(dataset.test)} test clips")
    single_source = single_source_classes(dataset.train + dataset.test)
    if single_source:
        log(f"warning: every clip of {', '.join(single_source)} comes from one source video, so its segments "
            "are shared out between training, validation and test: the accuracy says little about new videos")

    feature_config = resolved_features(config.features, dataset.train)
    frame_step, frame_rate = feature_config.frame_step, feature_config.frame_rate
    features, skipped, frame_path, extraction = prepare_features(
        dataset.train + dataset.test, feature_config, config.min_frames, config.progress)
    train_clips = [c for c in dataset.train if str(c.path) in features]
    test_clips = [c for c in dataset.test if str(c.path) in features]
    warn_of_short_clips([features[str(c.path)] for c in train_clips + test_clips], seq_len, frame_step, frame_rate)
    fit_clips, val_clips = grouped_split(train_clips, config.val_fraction, seed)
    if not fit_clips or not val_clips:
        raise UserError(f"{data}: too few usable training clips to hold out a validation split "
                        f"({len(train_clips)} usable, {len(skipped)} skipped)")

    labels = dataset.classes
    index = {label: i for i, label in enumerate(labels)}
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    all_frames = np.concatenate([features[str(c.path)] for c in fit_clips])
    mean, variance = all_frames.mean(axis=0), all_frames.var(axis=0) + 1e-6

    def windows_for(clips, per_clip, shuffle, speed_range=None):
        x, mask, owner = training_windows([features[str(c.path)] for c in clips], seq_len, per_clip, rng,
                                          shuffle_frames=shuffle, speed_range=speed_range)
        return (x, mask), np.asarray([index[clips[o].label] for o in owner])

    train_x, train_y = windows_for(fit_clips, config.windows_per_clip, config.shuffle_frames,
                                   SPEED_RANGE if config.augment else None)
    val_x, val_y = windows_for(val_clips, max(4, config.windows_per_clip // 2), config.shuffle_frames)
    kinds = CANDIDATES if model_kind == AUTO else (model_kind,)
    trained = {}
    for kind in kinds:
        model = build_sequence_model(kind, seq_len, get_backbone(backbone).feature_size, len(labels), mean, variance)
        log(f"training {kind} model ({model.count_params():,} parameters) on {len(train_y)} windows "
            f"from {len(fit_clips)} clips, validating on {len(val_clips)} clips")
        history = model.fit(
            list(train_x), train_y, validation_data=(list(val_x), val_y), epochs=config.epochs,
            batch_size=config.batch_size, shuffle=True, verbose=2 if config.progress else 0,
            callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=8, restore_best_weights=True)])
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
    if test:
        log(metrics_text(test["all_windows"], "test, mean over all windows"))
        log(f"test, first window only: accuracy {test['first_window']['accuracy']:.1%}")

    seconds = time.perf_counter() - started
    report = {
        "dataset": {"path": str(data), "layout": dataset.layout, "classes": labels,
                    "train_clips": len(fit_clips), "validation_clips": len(val_clips),
                    "test_clips": len(test_clips), "train_windows": int(len(train_y))},
        "test": test,
        "model": chosen,
        "candidates": candidates,
        "best_epoch": best_epoch + 1,
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
        "model_selection": {"requested": model_kind, "by": "validation accuracy",
                            "candidates": {kind: {name: score[name]
                                                  for name in ("validation_accuracy", "validation_loss")}
                                           for kind, score in candidates.items()}},
        "split": split_record(dataset, data, config.dataset.split, config.dataset.classes,
                              config.dataset.test_fraction, seed),
        "trained_on": {"data": str(data), "layout": dataset.layout, "clips": len(train_clips),
                       "description": config.description},
        "metrics": {"test_accuracy_all_windows": test["all_windows"]["accuracy"] if test else None,
                    "test_accuracy_first_window": test["first_window"]["accuracy"] if test else None,
                    "validation_loss": history["val_loss"][best_epoch],
                    "validation_accuracy": history["val_accuracy"][best_epoch]},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    extra = {"report.json": (json.dumps(report, indent=2) + "\n").encode(), "training_curves.png": curves_png(history)}
    if test:
        extra["confusion_matrix.png"] = confusion_png(test["all_windows"])
    carried_entries, carried_files = carried_backbone(
        load_backbone_model(backbone, feature_config.backbone_weights) if get_backbone(backbone).streaming else None)
    manifest.update(carried_entries)
    if get_backbone(backbone).streaming:
        from live.movinet import STATE_POLICY

        manifest["stream_state"] = STATE_POLICY
    extra.update(carried_files)
    write_bundle(out, model, labels, manifest, force=config.force, extra_files=extra)
    log(f"wrote {out} ({seconds:.0f} s)")
    return report

