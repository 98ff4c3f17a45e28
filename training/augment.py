"""Speed augmentation of training windows: index arithmetic on one clip's sampled frames, used
where training windows are drawn and filled (training.windows), so every window keeps live's
buffer layout (valid frames first, oldest first, padding after).

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


def random_speed(rng, speed_range=SPEED_RANGE):
    """A speed drawn log-uniformly from `speed_range` (one draw from `rng`)."""
    low, high = np.log(speed_range[0]), np.log(speed_range[1])
    return float(np.exp(rng.uniform(low, high)))


def frames_at_speed(count, speed):
    """How many frames a clip of `count` sampled frames has replayed at `speed` (at least one)."""
    return max(1, int(round(count / speed)))


def speed_picks(length, speed):
    """The clip frames, counted from a window's start, that its `length` frames show replayed at
    `speed` times the pace (2: every other frame; 0.5: each frame twice): nearest in time, in order."""
    return np.round(np.arange(length) * speed).astype(np.int64)
