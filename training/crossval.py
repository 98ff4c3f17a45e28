"""Choosing a head fairly: every candidate is trained on the same folds of the training clips,
each fold holding out whole sessions (a person, a place: a group less its class), and scored on every window of
the clips it held out, the windows live holds after each sampled frame, partial ones included.
The best pooled window accuracy wins; a tie, within TIE_MARGIN, goes to the simpler head (the
earlier in the candidates' order)."""
import random
from collections import defaultdict

import numpy as np

from training.windows import predict_every_window

MAX_FOLDS = 5  # with fewer sessions a class than this, one session out per fold
TIE_MARGIN = 0.005  # window accuracy within which two heads are tied


def session(clip):
    """The session a clip was recorded in: its group less the class (`train record`'s session,
    a source video's name), so that a session's clips of every class are held out together."""
    return clip.group.split("/", 1)[-1]


def session_folds(clips, seed, most=MAX_FOLDS):
    """[(training clips, held-out clips)], each in path order: the sessions dealt out over the
    folds in a seeded order, each held out with its clips of every class, except that a fold
    never holds out all of a class's clips (those stay in its training). A class recorded in one
    session is dealt out clip by clip over the folds (as datasets.grouped_split splits it); a
    class of one clip is never held out. As many folds as the class with the most units
    (sessions, or clips) has, at most `most`; none when no class has two."""
    rng = random.Random(seed)
    clips = sorted(clips, key=lambda c: str(c.path))
    by_class = defaultdict(list)
    for clip in clips:
        by_class[clip.label].append(clip)
    single = {label for label, members in by_class.items() if len({session(c) for c in members}) == 1}
    count = min(most, max(len(members) if label in single else len({session(c) for c in members})
                          for label, members in by_class.items()))
    if count < 2:
        return []
    sessions = sorted({session(c) for label, members in by_class.items() if label not in single for c in members})
    rng.shuffle(sessions)
    fold_of = {str(c.path): sessions.index(session(c)) % count
               for label, members in by_class.items() if label not in single for c in members}
    for label in sorted(single):
        order = list(by_class[label])
        rng.shuffle(order)
        fold_of.update({str(c.path): number % count for number, c in enumerate(order)})
    folds = []
    for fold in range(count):
        held = {path for path, number in fold_of.items() if number == fold}
        for members in by_class.values():
            if all(str(c.path) in held for c in members):
                held -= {str(c.path) for c in members}
        if held:
            folds.append(([c for c in clips if str(c.path) not in held], [c for c in clips if str(c.path) in held]))
    return folds


def fold_units(clips):
    """What the folds hold out: "sessions", "clips" (every class recorded in one session: its
    clips are held out, not new sessions, and the score is an optimistic one), or both."""
    kinds = {"clips" if len({session(c) for c in clips if c.label == label}) == 1 else "sessions"
             for label in {c.label for c in clips}}
    return " and ".join(sorted(kinds, reverse=True))


def window_scores(head, clips, features, labels, seq_len):
    """A head's (a function of windows and masks) scores on every window of `clips`: {"right",
    "windows", "cross_entropy" (summed), "clips_right" (by the mean over a clip's windows), "clips"}."""
    index = {label: i for i, label in enumerate(labels)}
    scores = {"right": 0, "windows": 0, "cross_entropy": 0.0, "clips_right": 0, "clips": len(clips)}
    for clip in clips:
        probs = predict_every_window(head, features[str(clip.path)], seq_len)
        truth = index[clip.label]
        scores["right"] += int((probs.argmax(axis=1) == truth).sum())
        scores["windows"] += len(probs)
        scores["cross_entropy"] += float(-np.log(np.clip(probs[:, truth], 1e-7, 1)).sum())
        scores["clips_right"] += int(probs.mean(axis=0).argmax() == truth)
    return scores


def summary(scores):
    """Pooled scores ({"right", "windows", ...}, summed) as accuracies: windows and clips."""
    return {"accuracy": scores["right"] / scores["windows"] if scores["windows"] else None,
            "cross_entropy": scores["cross_entropy"] / scores["windows"] if scores["windows"] else None,
            "windows": scores["windows"],
            "clip_accuracy": scores["clips_right"] / scores["clips"] if scores["clips"] else None,
            "clips": scores["clips"]}


def added(total, scores):
    return {name: total.get(name, 0) + value for name, value in scores.items()}


def out_of_reach(scores, windows_total, best, margin=TIE_MARGIN):
    """Whether a candidate with `scores` so far (summed over the folds scored) can no longer be
    kept whatever the other folds give: right on every window still to come, its accuracy would
    still not beat `best` (a simpler candidate's; None: there is none) by more than `margin`."""
    if best is None:
        return False
    return (scores["right"] + windows_total - scores["windows"]) / windows_total <= best + margin


def simplest_best(candidates, margin=TIE_MARGIN):
    """The kind to keep of `candidates` ({kind: summary}, simplest first; a candidate stopped
    early has accuracy None): the best accuracy, where a simpler head within `margin` wins."""
    scored = {kind: score["accuracy"] for kind, score in candidates.items() if score["accuracy"] is not None}
    best = max(scored.values())
    return next(kind for kind, accuracy in scored.items() if accuracy >= best - margin)
