"""Augmentation of clip features for training: pure functions of one clip's features, used
where training windows are drawn (training.windows), so every window keeps live's buffer
layout (valid frames first, oldest first, padding after).

Why at the feature level: with five clips a class, most of what a model could memorise is the
speed at which those five people happened to move. Playing a clip's sampled frames faster or
slower (by repeating or skipping frames, in order) shows the same action at other speeds for
the cost of an index; it never reverses time, so an action and its time reversal stay apart.
Flips and crops would need every frame embedded again, many times over.
"""
import numpy as np

# Speeds a training clip is replayed at: drawn log-uniformly between these, so 0.8x is as
# likely as 1.25x. One person's golf swing takes 1.5 s, another's 2.5 s.
SPEED_RANGE = (0.8, 1.25)


def change_speed(features, speed):
    """The clip's sampled frames as they would be at `speed` times the pace (2: every other frame;
    0.5: each frame twice), nearest frame in time, in order. At least one frame."""
    count = max(1, int(round(len(features) / speed)))
    picks = np.minimum(np.round(np.arange(count) * speed).astype(int), len(features) - 1)
    return features[picks]


def random_speed(features, rng, speed_range=SPEED_RANGE):
    """The clip at a speed drawn log-uniformly from `speed_range` (None or (1, 1): as it is)."""
    if not speed_range or speed_range[0] == speed_range[1] == 1:
        return features
    low, high = np.log(speed_range[0]), np.log(speed_range[1])
    return change_speed(features, float(np.exp(rng.uniform(low, high))))
