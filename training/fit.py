"""`train fit`: dataset -> cached features -> windows -> sequence model -> test metrics ->
an atomically written bundle with its report, in named stages:

    prepare (training.prepare) -> choose -> refit -> evaluate -> write

Each stage is a function of the config and what the stages before it handed on."""
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from live.backbones import get_backbone, load_backbone_model
from live.bundle import backbone_entries, write_bundle
from live.errors import UserError, first_line
from live.quiet import keras
from live.runtimes import compiled_call
from training import log
from training.augment import SPEED_RANGE
from training.datasets import grouped_split, split_record
from training.heads import evoked_classes, evoked_names, evoked_subset, feature_statistics  # noqa: F401 (re-exported)
from training.model import AUTO, CANDIDATES, CLASS_SCORE_CANDIDATES, build_sequence_model
from training.prepare import (Prepared, cached_features, measured_frame_rate, prepare,  # noqa: F401 (re-exported)
                              prepare_features, record_dataset, resolved_features)
from training.report import classification_metrics, confusion_png, curves_png, metrics_text
from training.windows import WindowBatches, predict_clip, shuffled_frames


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


@dataclass
class Windows:
    """Makes the WindowBatches of a fit, all from one seeded generator, in the order the stages
    ask for them (training windows, validation windows, then the refit's), so a fit's windows
    depend on its seed alone."""
    features: object
    labels: list
    config: object  # the FitConfig
    rng: np.random.Generator

    def batches(self, clips, per_clip, redraw, speed_range=None):
        index = {label: i for i, label in enumerate(self.labels)}
        return WindowBatches(self.features, [str(c.path) for c in clips], [index[c.label] for c in clips],
                             self.config.seq_len, per_clip, self.config.batch_size, self.rng, self.config.dataset.seed,
                             redraw=redraw, speed_range=speed_range,
                             per_window=shuffled_frames if self.config.shuffle_frames else None)

    def training(self, clips):
        """Training windows: drawn afresh every epoch, each sped up or slowed down unless --no-augment."""
        return self.batches(clips, self.config.windows_per_clip, redraw=True,
                            speed_range=SPEED_RANGE if self.config.augment else None)


@dataclass
class Choice:
    """What the choose stage hands on: the kept head's kind, every candidate trained on the same
    windows with its training history and scores, and the backbone classes linear reads."""
    kind: str
    kinds: tuple
    trained: dict  # {kind: (model, history)}
    candidates: dict  # {kind: scores}
    evoked: dict | None  # {label: backbone class indices}, or None: linear reads every feature
    fit_clips: list
    val_clips: list
    train_windows: int
    windows: Windows

    @property
    def model(self):
        return self.trained[self.kind][0]

    @property
    def history(self):
        return self.trained[self.kind][1]

    @property
    def best_epoch(self):
        """The kept head's best epoch, from 0: its lowest validation loss, whose weights it kept."""
        return int(np.argmin(self.history["val_loss"]))

    def subset_for(self, kind):
        """The feature indices `kind` reads (None: all of them)."""
        return evoked_subset(self.evoked) if self.evoked and kind == "linear" else None


def candidate_kinds(model_kind, backbone):
    """The heads `fit` trains for `--model model_kind`: that one, or for auto the candidates, which
    on a backbone of class scores are CLASS_SCORE_CANDIDATES (training.model says why)."""
    if model_kind != AUTO:
        return (model_kind,)
    return CLASS_SCORE_CANDIDATES if get_backbone(backbone).class_names is not None else CANDIDATES


def choose(config, prepared):
    """Stage 2: hold out a validation split of the training clips (grouped by source), train every
    candidate head on the same windows of the rest, and choose one by validation (choose_head)."""
    seed, backbone = config.dataset.seed, config.features.backbone
    fit_clips, val_clips = grouped_split(prepared.train_clips, config.val_fraction, seed)
    if not fit_clips or not val_clips:
        raise UserError(f"{prepared.data}: too few usable training clips to hold out a validation split "
                        f"({len(prepared.train_clips)} usable, {len(prepared.skipped)} skipped)")
    keras.utils.set_random_seed(seed)
    windows = Windows(prepared.features, prepared.labels, config, np.random.default_rng(seed))
    mean, variance = feature_statistics(prepared.features, fit_clips)
    # Drawn in this order from the one generator: the first epoch's windows, then validation's
    # (never sped up: validation scores clips as they are). With --augment the speeds are drawn
    # from it too, so the validation windows differ from a --no-augment run's on the same seed.
    train_batches = windows.training(fit_clips)
    val_batches = windows.batches(val_clips, max(4, config.windows_per_clip // 2), redraw=False)
    kinds = candidate_kinds(config.model_kind, backbone)
    # The backbone classes linear reads, chosen from the clips it trains on; the refit keeps them,
    # the ones validation chose its epochs for.
    reads_class_scores = get_backbone(backbone).class_names is not None
    evoked = (evoked_classes(prepared.features, fit_clips, prepared.labels)
              if reads_class_scores and "linear" in kinds else None) or None
    choice = Choice(None, kinds, {}, {}, evoked, fit_clips, val_clips, train_batches.windows, windows)
    for kind in kinds:
        keras.utils.set_random_seed(seed)  # each candidate starts as it would trained alone
        model = build_sequence_model(kind, config.seq_len, get_backbone(backbone).feature_size, len(prepared.labels),
                                     mean, variance, choice.subset_for(kind))
        log(f"training {kind} model ({model.count_params():,} parameters) on {train_batches.windows} windows "
            f"an epoch from {len(fit_clips)} clips, validating on {len(val_clips)} clips")
        # Every candidate's epoch 0 gets the first draw again (epoch_callback), so all see the same windows.
        history = train_model(model, train_batches, val_batches, config.epochs, config.progress, config.verbose,
                              f"training {kind}")
        choice.trained[kind] = model, {k: [float(v) for v in values] for k, values in history.history.items()}
    choice.kind, choice.candidates = choose_head({kind: history for kind, (_, history) in choice.trained.items()})
    if len(kinds) > 1:
        log("validation accuracy: " + ", ".join(f"{kind} {score['validation_accuracy']:.1%}"
                                                for kind, score in choice.candidates.items())
            + f"; keeping {choice.kind}")
    return choice


def refit(config, prepared, choice):
    """Stage 3: the kept head trained again, from scratch, on every training clip (validation's
    too: whole groups, people and scenes, it has otherwise never seen), for the epochs validation
    chose, on windows drawn afresh. Returns (the bundle's head, the refit's record, or None
    with --no-refit: the head as validated)."""
    if not config.refit:
        return choice.model, None
    keras.utils.set_random_seed(config.dataset.seed)
    all_batches = choice.windows.training(prepared.train_clips)
    epochs = choice.best_epoch + 1
    model = build_sequence_model(choice.kind, config.seq_len, get_backbone(config.features.backbone).feature_size,
                                 len(prepared.labels), *feature_statistics(prepared.features, prepared.train_clips),
                                 choice.subset_for(choice.kind))
    log(f"training {choice.kind} again on {len(prepared.train_clips)} clips (training and validation), "
        f"{epochs} epochs")
    train_model(model, all_batches, None, epochs, config.progress, config.verbose, f"training {choice.kind} again")
    return model, {"clips": len(prepared.train_clips), "epochs": epochs, "windows": all_batches.windows}


def evaluate(config, prepared, choice, model, refitted):
    """Stage 4: every candidate's test metrics as validated (into choice.candidates), and the
    bundle's head's (None without test clips), logged."""
    tests = {kind: evaluate_clips(compiled_call(candidate), prepared.test_clips, prepared.features,
                                  prepared.labels, config.seq_len)
             for kind, (candidate, _) in choice.trained.items()} if prepared.test_clips else {}
    for kind, score in choice.candidates.items():
        score["test_accuracy_all_windows"] = tests[kind]["all_windows"]["accuracy"] if tests else None
    if not prepared.test_clips:
        return None
    test = (evaluate_clips(compiled_call(model), prepared.test_clips, prepared.features, prepared.labels,
                           config.seq_len) if refitted else tests[choice.kind])
    log(metrics_text(test["all_windows"], "test, mean over all windows"))
    log(f"test, first window only: accuracy {test['first_window']['accuracy']:.1%}")
    return test


def write(config, prepared, choice, model, refitted, test, started):
    """Stage 5: the report and the manifest, the bundle written atomically with them, and the
    summary's last lines. Returns the report."""
    backbone = config.features.backbone
    read_classes = evoked_names(backbone, choice.evoked) if choice.evoked and choice.kind == "linear" else None
    if read_classes:
        log("the linear head reads the scores of the backbone's classes each action evokes most: " + "; ".join(
            f"{label}: {', '.join(map(str, names[:3]))}…" for label, names in read_classes.items()))
    seconds = time.perf_counter() - started
    report = report_of(prepared, choice, refitted, test, read_classes, seconds)
    manifest = manifest_of(config, prepared, choice, refitted, test, read_classes)
    extra = {"report.json": (json.dumps(report, indent=2) + "\n").encode(),
             "training_curves.png": curves_png(choice.history)}
    if test:
        extra["confusion_matrix.png"] = confusion_png(test["all_windows"])
    streaming = get_backbone(backbone).streaming
    backbone_manifest, backbone_files = backbone_entries(
        load_backbone_model(backbone, prepared.feature_config.backbone_weights) if streaming else None)
    manifest.update(backbone_manifest)
    if streaming:
        from live.movinet import STATE_POLICY

        manifest["stream_state"] = STATE_POLICY
    extra.update(backbone_files)
    write_bundle(Path(config.out), model, prepared.labels, manifest, force=config.force, extra_files=extra)
    held_out = test["all_windows"]["accuracy"] if test else choice.history["val_accuracy"][choice.best_epoch]
    summarise(Path(config.out), choice.kind, held_out, "test" if test else "validation", len(prepared.labels), seconds)
    return report


def summarise(out, kind, held_out, scored_on, classes, seconds):
    """The summary's last lines: a warning when the kept head is no better than chance, then where
    the bundle went, its head and its accuracy on clips it did not train on."""
    chance = 1 / classes
    if held_out <= chance + 1e-9:
        log(f"warning: the {kind} head scores {held_out:.1%} on clips it did not train on, no better than chance "
            f"({chance:.1%}): it has not learnt these actions. Give it more clips a class, from more sessions "
            "(people, places), and clips of at least the window's length")
    log(f"wrote {out}: {kind} head, {held_out:.1%} on held-out clips ({scored_on}, chance {chance:.1%}), "
        f"{seconds:.0f} s")


def report_of(prepared, choice, refitted, test, read_classes, seconds):
    """report.json: the dataset, the test metrics, the choice and every candidate's scores, the
    history, skipped clips and timings."""
    extraction = prepared.extraction
    return {
        "dataset": {"path": str(prepared.data), "layout": prepared.dataset.layout, "classes": prepared.labels,
                    "train_clips": len(choice.fit_clips), "validation_clips": len(choice.val_clips),
                    "test_clips": len(prepared.test_clips), "train_windows": choice.train_windows},
        "test": test,
        "model": choice.kind,
        "candidates": choice.candidates,
        "best_epoch": choice.best_epoch + 1,
        "refit": refitted,
        "evoked_classes": read_classes,
        "history": choice.history,
        "skipped": [{"video": video, "reason": reason} for video, reason in sorted(prepared.skipped.items())],
        "timings": {"total_s": round(seconds, 1), "extraction_s": round(extraction["seconds"], 1),
                    "frames_extracted": extraction["frames"],
                    "extraction_fps": round(extraction["frames"] / extraction["seconds"], 1)
                    if extraction["frames"] else None},
        "machine": platform.platform(),
    }


def manifest_of(config, prepared, choice, refitted, test, read_classes):
    """The bundle's manifest, less the backbone's entries (write adds them)."""
    backbone, frame_path, history, best = config.features.backbone, prepared.frame_path, choice.history, choice.best_epoch
    by = ("validation accuracy" if len(choice.kinds) > 1
          else "requested" if config.model_kind != AUTO else "the backbone's class scores")
    return {
        "backbone": backbone, "image_size": frame_path.image_size,
        "feature_size": get_backbone(backbone).feature_size, "backbone_fingerprint": frame_path.fingerprint,
        "seq_len": config.seq_len, "frame_step": prepared.feature_config.frame_step,
        "frame_rate": prepared.feature_config.frame_rate, "model": choice.kind,
        "model_selection": {"requested": config.model_kind, "by": by,
                            "candidates": {kind: {name: score[name] for name in
                                                  ("validation_accuracy", "validation_loss", "validation_cross_entropy")}
                                           for kind, score in choice.candidates.items()}},
        "refit": refitted,
        "evoked_classes": read_classes,
        "split": split_record(prepared.dataset, prepared.data, config.dataset.split, config.dataset.classes,
                              config.dataset.test_fraction, config.dataset.seed),
        "trained_on": {"data": str(prepared.data), "layout": prepared.dataset.layout,
                       "clips": len(prepared.train_clips), "description": config.description},
        "metrics": {"test_accuracy_all_windows": test["all_windows"]["accuracy"] if test else None,
                    "test_accuracy_first_window": test["first_window"]["accuracy"] if test else None,
                    # Of the head as validated: after a refit the bundle's head has trained on those clips.
                    "validation_loss": history["val_loss"][best],
                    "validation_accuracy": history["val_accuracy"][best],
                    "validation_of": "the head before its refit" if refitted else "the bundle's head"},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def fit(config, checked=None):
    """Train the sequence model `config` (a FitConfig) describes and write its bundle; returns
    the report written into it. `checked`: what training.checks.check_fit found for `config`
    (the command line runs it before this module, and Keras, are imported), else found here."""
    started = time.perf_counter()
    prepared = prepare(config, checked)
    choice = choose(config, prepared)
    model, refitted = refit(config, prepared, choice)
    test = evaluate(config, prepared, choice, model, refitted)
    return write(config, prepared, choice, model, refitted, test, started)
