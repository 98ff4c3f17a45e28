"""Windows of clip features in the exact layout of live's buffer: valid frames first, oldest
first, zero padding and a false mask after them."""
import numpy as np

from training.augment import random_speed


def window(features, start, length, seq_len):
    """Frames start..start+length of a clip as (seq_len, F) features and a (seq_len,) mask."""
    length = min(length, seq_len, len(features) - start)
    out = np.zeros((seq_len, features.shape[1]), np.float32)
    mask = np.zeros(seq_len, bool)
    out[:length] = features[start:start + length]
    mask[:length] = True
    return out, mask


def training_windows(clips, seq_len, per_clip, rng, partial_share=0.3, shuffle_frames=False, speed_range=None):
    """Random windows across each clip: full ones anywhere in the clip, and partial ones (the
    first 1..seq_len-1 frames after a random start, as live sees when it starts). With
    `speed_range`, each window is cut from its clip replayed at a random speed in that range
    (training.augment). Returns features (N, T, F), mask (N, T) and the index of each window's clip."""
    windows, masks, owners = [], [], []
    for owner, clip in enumerate(clips):
        for _ in range(per_clip):
            features = random_speed(clip, rng, speed_range)
            count = len(features)
            if rng.random() < partial_share or count < seq_len:
                length = int(rng.integers(1, min(seq_len, count) + 1))
            else:
                length = seq_len
            start = int(rng.integers(0, count - length + 1))
            frames, mask = window(features, start, length, seq_len)
            if shuffle_frames:
                frames[:length] = frames[rng.permutation(length)]
            windows.append(frames)
            masks.append(mask)
            owners.append(owner)
    return np.stack(windows), np.stack(masks), np.asarray(owners)


def clip_window_starts(count, seq_len):
    """Start frames of the windows that cover a clip, half a window apart; the first is 0."""
    if count <= seq_len:
        return [0]
    stride = max(1, seq_len // 2)
    starts = list(range(0, count - seq_len + 1, stride))
    if starts[-1] != count - seq_len:
        starts.append(count - seq_len)
    return starts


def every_window(features, seq_len, ends):
    """The window live holds after each sampled frame i in `ends`: frames max(0, i-seq_len+1)..i,
    partial (padded, masked) while the buffer fills, then shifting by one frame. Returns
    features (N, T, F) and mask (N, T)."""
    pairs = [window(features, max(0, end - seq_len + 1), min(end + 1, seq_len), seq_len) for end in ends]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def predict_every_window(head, features, seq_len, chunk=256):
    """Probabilities for every window of a clip, `chunk` windows at a time, so a long clip
    never holds all its windows in memory at once."""
    return np.concatenate([head(*every_window(features, seq_len, range(start, min(start + chunk, len(features)))))
                           for start in range(0, len(features), chunk)])


def predict_clip(head, features, seq_len):
    """(first-window probabilities, mean over all windows) for one clip's features."""
    starts = clip_window_starts(len(features), seq_len)
    pairs = [window(features, start, seq_len, seq_len) for start in starts]
    probs = head(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    return probs[0], probs.mean(axis=0)
