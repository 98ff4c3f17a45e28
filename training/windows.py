"""Windows of clip features in the exact layout of live's buffer: valid frames first, oldest
first, zero padding and a false mask after them.

Training draws its windows as specs (clip, start, length, speed: a few bytes each) and fills them
batch by batch from the clips' cache entries (WindowBatches), so memory holds one
batch of windows, never every window of every clip."""
import numpy as np

from live.quiet import keras
from training.augment import frames_at_speed, random_speed, speed_picks

PARTIAL_SHARE = 0.3  # of training windows: partial ones, as live sees while its buffer fills


def window(features, start, length, seq_len):
    """Frames start..start+length of a clip as (seq_len, F) features and a (seq_len,) mask: live's
    buffer layout."""
    length = min(length, seq_len, len(features) - start)
    out = np.zeros((seq_len, features.shape[1]), np.float32)
    mask = np.zeros(seq_len, bool)
    out[:length] = features[start:start + length]
    mask[:length] = True
    return out, mask


def draw_windows(frame_counts, seq_len, per_clip, rng, partial_share=PARTIAL_SHARE, speed_range=None):
    """Random windows across each clip: full ones anywhere in the clip, and partial ones (the
    first 1..seq_len-1 frames after a random start, as live sees when it starts). With
    `speed_range`, each window is cut from its clip replayed at a speed drawn from that range
    (training.augment): its length counts frames at that speed, its start is a frame of the clip
    and the frames it spans (window_picks) lie inside the clip. Returns their specs: the index of
    each window's clip, its start, its length and its speed (arrays)."""
    owners, starts, lengths, speeds = [], [], [], []
    for owner, count in enumerate(frame_counts):
        for _ in range(per_clip):
            speed = random_speed(rng, speed_range) if speed_range else 1.0
            available = frames_at_speed(count, speed)
            if rng.random() < partial_share or available < seq_len:
                length = int(rng.integers(1, min(seq_len, available) + 1))
            else:
                length = seq_len
            span = min(count, int(speed_picks(length, speed)[-1]) + 1)
            owners.append(owner)
            starts.append(int(rng.integers(0, count - span + 1)))
            lengths.append(length)
            speeds.append(speed)
    return (np.asarray(owners, np.int32), np.asarray(starts, np.int32), np.asarray(lengths, np.int16),
            np.asarray(speeds))


def window_picks(start, length, speed, count):
    """The rows of its clip (of `count` frames) a window spec shows, oldest first: start..start+length
    at speed 1, frames repeated (slower) or skipped (faster) in order otherwise, never past the clip's end."""
    return start + np.minimum(speed_picks(length, speed), count - start - 1)


def shuffled_frames(frames, mask, rng):
    """A per-window hook (see WindowBatches): the window's valid frames in a random order (the
    --shuffle-frames ablation: what is left to learn without the order)."""
    length = int(mask.sum())
    frames[:length] = frames[rng.permutation(length)]
    return frames


class WindowBatches(keras.utils.PyDataset):
    """Batches of windows for model.fit, made from the clips' features as they are asked for:
    ((features (B, T, F) float32, mask (B, T)), labels (B,)).

    `features` maps each of `clips` (paths) to its (frames, F) array: a ClipFeatures of
    cache entries read a run of rows at a time, or arrays in memory. `labels` are the clips' class indices.
    The first draw takes `rng` (fit's, seeded), so the windows of the first epoch, and the
    validation windows drawn after them from the same rng, are the ones fit drew before it
    streamed. With `redraw` (training), every later epoch draws new windows from the clips
    (seeded by (seed, epoch)) and the order is shuffled; without it (validation), the windows
    stay as drawn, in clip order, so validation scores the same windows every epoch. Pass
    epoch_callback() to model.fit.

    With `speed_range` (training windows only), each window is cut from its clip replayed at a
    speed drawn from that range (draw_windows); the batch reads the run of rows the window spans
    and picks its frames from them.

    `per_window(frames, mask, rng) -> frames` changes each window as its batch is made
    (shuffled_frames, augmentation); its rng is seeded by (seed, epoch, batch), so a run is
    repeatable whichever thread makes the batch. Batches are made ahead of training, while it
    runs: with TensorFlow, Keras reads a PyDataset through tf.data, which prefetches in a thread
    of its own; other backends (JAX) read it in the training loop, so two worker threads of
    Keras's make the batches ahead there (with TensorFlow they would only add a thread pool
    started and stopped every epoch: measured slower)."""

    def __init__(self, features, clips, labels, seq_len, per_clip, batch_size, rng, seed, redraw=True,
                 speed_range=None, per_window=None):
        workers = 0 if keras.backend.backend() == "tensorflow" else 2
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.features, self.clips, self.labels = features, list(clips), np.asarray(labels, np.int64)
        self.seq_len, self.per_clip, self.batch_size = seq_len, per_clip, batch_size
        self.seed, self.redraw, self.speed_range, self.per_window = seed, redraw, speed_range, per_window
        self.frame_counts = [len(features[clip]) for clip in self.clips]
        self.feature_size = features[self.clips[0]].shape[1]
        self.epoch = 0
        self.failure = None  # the exception a batch raised, if one did
        self.specs = draw_windows(self.frame_counts, seq_len, per_clip, rng, speed_range=speed_range)
        self.order = self._ordered(np.random.default_rng([seed, 0]))
        self.first_draw = self.specs, self.order  # epoch 0's, again for each model fit on these batches

    def _ordered(self, rng):
        return rng.permutation(len(self.specs[0])) if self.redraw else np.arange(len(self.specs[0]))

    def __len__(self):
        return -(-self.windows // self.batch_size)

    @property
    def windows(self):
        return len(self.specs[0])

    def __getitem__(self, batch):
        try:
            return self._batch(batch)
        except Exception as exc:  # kept: the backend's data pipeline re-raises it as its own error
            self.failure = exc
            raise

    def _batch(self, batch):
        chosen = self.order[batch * self.batch_size:(batch + 1) * self.batch_size]
        frames = np.zeros((len(chosen), self.seq_len, self.feature_size), np.float32)
        mask = np.zeros((len(chosen), self.seq_len), bool)
        rng = np.random.default_rng([self.seed, self.epoch, batch]) if self.per_window else None
        owners, starts, lengths, speeds = self.specs
        for row, number in enumerate(chosen):
            owner, start, length = owners[number], starts[number], lengths[number]
            picks = window_picks(start, length, speeds[number], self.frame_counts[owner])
            frames[row, :length] = self.features[self.clips[owner]][start:picks[-1] + 1][picks - start]
            mask[row, :length] = True
            if self.per_window:
                frames[row] = self.per_window(frames[row], mask[row], rng)
        return (frames, mask), self.labels[owners[chosen]]

    def draw_epoch(self, epoch):
        """Draw epoch `epoch`'s windows, unless they are drawn. Epoch 0's are the first draw, kept:
        a second model fit on these batches (fit's candidate heads) starts from epoch 0 again and
        sees the same windows, epoch by epoch, as the first."""
        if self.redraw and epoch != self.epoch:
            self.epoch = epoch
            if epoch == 0:
                self.specs, self.order = self.first_draw
            else:
                rng = np.random.default_rng([self.seed, epoch])
                self.specs = draw_windows(self.frame_counts, self.seq_len, self.per_clip, rng,
                                          speed_range=self.speed_range)
                self.order = self._ordered(rng)

    def epoch_callback(self):
        """The callback to give model.fit so each epoch draws its own windows. Keras calls a
        callback's on_epoch_begin with the epoch's number before it reads the epoch's first batch
        (batches are made lazily, TensorFlow's prefetch included), whereas a PyDataset's own
        on_epoch_end is also called before the first epoch, and, on JAX, after a batch that
        builds the model: counting those calls would skip the first draw."""
        return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: self.draw_epoch(epoch))


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
