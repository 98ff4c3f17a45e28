"""What a head is built from, besides its weights: the training frames' statistics, and on a
backbone whose features are its own classifier's scores, the classes the user's actions evoke.
NumPy only."""
import numpy as np

from live.backbones import backbone_class_names
from training.model import EVOKED_PER_CLASS


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
    frame, averaged, strongest first}. The linear head reads the scores of their union alone:
    with a few clips a class, a linear classifier of all 600 scores learns from the many that say
    nothing about the user's actions and happen to differ between their clips (docs/decisions.md)."""
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
