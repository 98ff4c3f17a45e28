"""`train fit`: dataset -> cached features -> windows -> sequence model -> test metrics ->
an atomically written bundle with its report, in named stages:

    prepare (training.prepare) -> choose -> refit -> evaluate -> write

Each stage is a function of the config and what the stages before it handed on. How a head
learns is training.train's; how candidates are compared, training.crossval's."""
import json
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from live.backbones import get_backbone, load_backbone_model
from live.bundle import backbone_entries, write_bundle
from live.errors import UserError
from live.runtimes import compiled_call
from training import log
from training.crossval import (TIE_MARGIN, added, fold_units, out_of_reach, session_folds, simplest_best, summary,
                               window_scores)
from training.datasets import grouped_split, split_record
from training.heads import evoked_classes, evoked_names, evoked_subset, feature_statistics  # noqa: F401 (re-exported)
from training.model import AUTO, CANDIDATES, CLASS_SCORE_CANDIDATES
from training.prepare import (Prepared, cached_features, measured_frame_rate, prepare,  # noqa: F401 (re-exported)
                              prepare_features, record_dataset, resolved_features)
from training.report import classification_metrics, confusion_png, curves_png, metrics_text
from training.train import EpochBar, Windows, train_head, train_model  # noqa: F401 (re-exported)
from training.windows import predict_clip


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


@dataclass
class Choice:
    """What the choose stage hands on: the head to keep, why (`by`), every candidate's scores on
    the clips it did not train on, and, with --no-refit, the head as validated."""
    kind: str
    kinds: tuple
    by: str  # "cross-validation", "validation", "requested", or why neither could be made
    candidates: dict = field(default_factory=dict)  # {kind: crossval.summary of its held-out windows}
    folds: int | None = None
    units: str | None = None  # what the folds held out: sessions, or clips (crossval.fold_units)
    model: object = None  # --no-refit: the head trained on the training clips less validation's
    history: dict | None = None
    evoked: dict | None = None  # {label: backbone class indices} linear reads, if it reads class scores
    clips: list | None = None  # --no-refit: the clips the head trained on, and those validation held out
    held: list | None = None


def candidate_kinds(model_kind, backbone):
    """The heads `fit` compares for `--model model_kind`: that one, or for auto the candidates,
    simplest first (on a backbone of class scores CLASS_SCORE_CANDIDATES: training.model)."""
    if model_kind != AUTO:
        return (model_kind,)
    return CLASS_SCORE_CANDIDATES if get_backbone(backbone).class_names is not None else CANDIDATES


def evoked_for(kind, backbone, features, clips, labels):
    """The backbone classes a `kind` head trained on `clips` reads ({label: indices}), or None:
    linear on a backbone of class scores reads those the clips' actions evoke most."""
    if kind != "linear" or get_backbone(backbone).class_names is None:
        return None
    return evoked_classes(features, clips, labels) or None


def trained_head(kind, config, prepared, clips, rng_seed, description, val_batches=None):
    """(model, history, evoked): a `kind` head trained on `clips` alone (its statistics and evoked
    classes theirs), on windows drawn from a generator seeded by `rng_seed`."""
    backbone = config.features.backbone
    evoked = evoked_for(kind, backbone, prepared.features, clips, prepared.labels)
    windows = Windows(prepared.features, prepared.labels, config, np.random.default_rng(rng_seed))
    model, history = train_head(kind, config, windows, clips, get_backbone(backbone).feature_size,
                                evoked_subset(evoked) if evoked else None, val_batches, description)
    return model, history, evoked


def choose(config, prepared):
    """Stage 2: the head to keep. Several candidates (auto) are compared by cross-validation over
    the training sessions (crossval); --no-refit compares them on one validation split instead and
    keeps the head as validated; one candidate is kept as requested."""
    kinds = candidate_kinds(config.model_kind, config.features.backbone)
    if not config.refit:
        return choose_by_validation(config, prepared, kinds)
    if len(kinds) == 1:
        return Choice(kinds[0], kinds, "requested" if config.model_kind != AUTO else "the only candidate")
    folds = session_folds(prepared.train_clips, config.dataset.seed)
    if not folds:
        log(f"warning: every class has a single training clip, so no head can be scored on clips it did not "
            f"train on; keeping the simplest, {kinds[0]}")
        return Choice(kinds[0], kinds, "too few clips to cross-validate: the simplest head")
    candidates, units = cross_validate(config, prepared, kinds, folds), fold_units(prepared.train_clips)
    kind = simplest_best(candidates)
    log(f"cross-validation over {len(folds)} folds of {units}, every window of the held-out clips: "
        + ", ".join(f"{k} {score['accuracy']:.1%}" if score["accuracy"] is not None
                    else f"{k} at most {score['at_most']:.1%}" for k, score in candidates.items())
        + f"; keeping {kind}")
    return Choice(kind, kinds, "cross-validation", candidates, len(folds), units)


def cross_validate(config, prepared, kinds, folds):
    """{kind: its scores on every window of each fold's held-out clips, pooled, and per fold}:
    each candidate trained on each fold's training clips alone, on the same windows, simplest
    first. A candidate is stopped as soon as it can no longer be kept (crossval.out_of_reach: even
    right on every window still to come, it would not beat a simpler one by TIE_MARGIN); its
    scores then say how far it got and the most it could have reached."""
    windows_total = sum(len(prepared.features[str(c.path)]) for _, held in folds for c in held)  # one a frame
    candidates = {}
    for kind in kinds:
        total, per_fold = {}, []
        for number, (train, held) in enumerate(folds):
            model, _, _ = trained_head(kind, config, prepared, train, [config.dataset.seed, number + 1],
                                       f"cross-validating {kind}, fold {number + 1}/{len(folds)}")
            scores = window_scores(compiled_call(model), held, prepared.features, prepared.labels, config.seq_len)
            total = added(total, scores)
            per_fold.append(summary(scores)["accuracy"])
            best = max((c["accuracy"] for c in candidates.values() if c["accuracy"] is not None), default=None)
            if number + 1 < len(folds) and out_of_reach(total, windows_total, best):
                candidates[kind] = {**summary(total), "accuracy": None, "fold_accuracy": per_fold,
                                    "stopped_after_folds": number + 1,
                                    "at_most": (total["right"] + windows_total - total["windows"]) / windows_total}
                log(f"cross-validating {kind}: stopped after {number + 1} of {len(folds)} folds, at most "
                    f"{candidates[kind]['at_most']:.1%}: it can no longer beat {best:.1%} by {TIE_MARGIN:.1%}")
                break
        else:
            candidates[kind] = {**summary(total), "fold_accuracy": per_fold}
    return candidates


def choose_by_validation(config, prepared, kinds):
    """--no-refit: hold out a validation split of the training clips (whole sessions), train every
    candidate on the rest and keep the best on every window of the validation clips, as validated."""
    seed = config.dataset.seed
    fit_clips, val_clips = grouped_split(prepared.train_clips, config.val_fraction, seed)
    if not fit_clips or not val_clips:
        raise UserError(f"{prepared.data}: too few usable training clips to hold out a validation split "
                        f"({len(prepared.train_clips)} usable, {len(prepared.skipped)} skipped)")
    val_batches = Windows(prepared.features, prepared.labels, config,
                          np.random.default_rng([seed, 0])).validation(val_clips)
    trained, candidates = {}, {}
    for kind in kinds:
        trained[kind] = trained_head(kind, config, prepared, fit_clips, seed, f"training {kind}", val_batches)
        candidates[kind] = summary(window_scores(compiled_call(trained[kind][0]), val_clips, prepared.features,
                                                 prepared.labels, config.seq_len))
    kind = simplest_best(candidates)
    if len(kinds) > 1:
        log("validation, every window: " + ", ".join(f"{k} {s['accuracy']:.1%}" for k, s in candidates.items())
            + f"; keeping {kind}")
    model, history, evoked = trained[kind]
    return Choice(kind, kinds, "validation", candidates, None, None, model, history, evoked, fit_clips, val_clips)


def refit(config, prepared, choice):
    """Stage 3: the kept head trained on every training clip (its statistics and evoked classes
    theirs). Returns (the bundle's head, a record of its training), or, with --no-refit, (the head
    as validated, None)."""
    if choice.model is not None:
        return choice.model, None
    kind, clips = choice.kind, prepared.train_clips
    log(f"training {kind} on {len(clips)} clips")
    model, choice.history, choice.evoked = trained_head(kind, config, prepared, clips, config.dataset.seed,
                                                        f"training {kind}")
    record = {"clips": len(clips)}
    if "iterations" in choice.history:
        record.update(method="L-BFGS", iterations=choice.history["iterations"])
    else:
        record.update(method="Adam", epochs=len(choice.history["loss"]), steps=choice.history["steps"])
    return model, record


def evaluate(config, prepared, choice, model):
    """Stage 4: the bundle's head on the test clips (metrics: first window, mean over all windows;
    None without test clips) and on every window of the clips it trained on (has it learnt them?),
    logged."""
    head, trained_on = compiled_call(model), choice.clips or prepared.train_clips
    training = summary(window_scores(head, trained_on, prepared.features, prepared.labels, config.seq_len))
    log(f"on its training clips: {training['clip_accuracy']:.1%} of the clips, {training['accuracy']:.1%} of "
        "their windows")
    test = None
    if prepared.test_clips:
        test = evaluate_clips(head, prepared.test_clips, prepared.features, prepared.labels, config.seq_len)
        log(metrics_text(test["all_windows"], "test, mean over all windows"))
        log(f"test, first window only: accuracy {test['first_window']['accuracy']:.1%}")
    return {"test": test, "training": training}


def write(config, prepared, choice, model, refitted, scores, started):
    """Stage 5: the report and the manifest, the bundle written atomically with them, and the
    summary's last lines. Returns the report."""
    backbone = config.features.backbone
    read_classes = evoked_names(backbone, choice.evoked) if choice.evoked else None
    if read_classes:
        log("the linear head reads the scores of the backbone's classes each action evokes most: " + "; ".join(
            f"{label}: {', '.join(map(str, names[:3]))}…" for label, names in read_classes.items()))
    seconds = time.perf_counter() - started
    held_out, scored_on = held_out_accuracy(choice, scores)
    report = report_of(prepared, choice, refitted, scores, read_classes, seconds)
    manifest = manifest_of(config, prepared, choice, refitted, scores, read_classes, held_out, scored_on)
    extra = {"report.json": (json.dumps(report, indent=2) + "\n").encode(),
             "training_curves.png": curves_png(choice.history)}
    if scores["test"]:
        extra["confusion_matrix.png"] = confusion_png(scores["test"]["all_windows"])
    streaming = get_backbone(backbone).streaming
    backbone_manifest, backbone_files = backbone_entries(
        load_backbone_model(backbone, prepared.feature_config.backbone_weights) if streaming else None)
    manifest.update(backbone_manifest)
    if streaming:
        from live.movinet import STATE_POLICY

        manifest["stream_state"] = STATE_POLICY
    extra.update(backbone_files)
    write_bundle(Path(config.out), model, prepared.labels, manifest, force=config.force, extra_files=extra)
    summarise(Path(config.out), choice.kind, held_out, scored_on, len(prepared.labels), seconds)
    return report


def held_out_accuracy(choice, scores):
    """(the kept head's accuracy on clips it did not train on, what it was scored on): the
    cross-validated accuracy when candidates were cross-validated, else the test clips', else
    validation's; without any, its training clips' (and says so)."""
    if choice.by == "cross-validation":
        return (choice.candidates[choice.kind]["accuracy"],
                f"cross-validated over {choice.folds} folds of {choice.units}, every window")
    if scores["test"]:
        return scores["test"]["all_windows"]["accuracy"], "test"
    if choice.by == "validation":
        return choice.candidates[choice.kind]["accuracy"], "validation"
    return scores["training"]["clip_accuracy"], "none held out: its training clips"


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


def report_of(prepared, choice, refitted, scores, read_classes, seconds):
    """report.json: the dataset, the test and training scores, the choice and every candidate's
    scores, the training history, skipped clips and timings."""
    extraction = prepared.extraction
    return {
        "dataset": {"path": str(prepared.data), "layout": prepared.dataset.layout, "classes": prepared.labels,
                    "train_clips": len(choice.clips or prepared.train_clips),
                    "validation_clips": len(choice.held) if choice.held else 0,
                    "test_clips": len(prepared.test_clips)},
        "test": scores["test"],
        "training": scores["training"],
        "model": choice.kind,
        "selection": {"by": choice.by, "folds": choice.folds, "folds_hold_out": choice.units, "tie_margin": TIE_MARGIN},
        "candidates": choice.candidates,
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


def manifest_of(config, prepared, choice, refitted, scores, read_classes, held_out, scored_on):
    """The bundle's manifest, less the backbone's entries (write adds them)."""
    backbone, frame_path, test = config.features.backbone, prepared.frame_path, scores["test"]
    return {
        "backbone": backbone, "image_size": frame_path.image_size,
        "feature_size": get_backbone(backbone).feature_size, "backbone_fingerprint": frame_path.fingerprint,
        "seq_len": config.seq_len, "frame_step": prepared.feature_config.frame_step,
        "frame_rate": prepared.feature_config.frame_rate, "model": choice.kind,
        "model_selection": {"requested": config.model_kind, "by": choice.by, "folds": choice.folds,
                            "folds_hold_out": choice.units,
                            "scored_on": "every window of the held-out clips", "tie_margin": TIE_MARGIN,
                            "candidates": choice.candidates},
        "refit": refitted,
        "evoked_classes": read_classes,
        "split": split_record(prepared.dataset, prepared.data, config.dataset.split, config.dataset.classes,
                              config.dataset.test_fraction, config.dataset.seed),
        "trained_on": {"data": str(prepared.data), "layout": prepared.dataset.layout,
                       "clips": len(prepared.train_clips), "description": config.description},
        "metrics": {"test_accuracy_all_windows": test["all_windows"]["accuracy"] if test else None,
                    "test_accuracy_first_window": test["first_window"]["accuracy"] if test else None,
                    "held_out_accuracy": held_out, "held_out": scored_on,
                    "training_accuracy": scores["training"]["accuracy"],
                    "training_clip_accuracy": scores["training"]["clip_accuracy"]},
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
    scores = evaluate(config, prepared, choice, model)
    return write(config, prepared, choice, model, refitted, scores, started)
