"""How a head learns, however few its clips.

- `linear` is a convex problem: a softmax regression of the head's inputs (the window's mean and
  newest frame, standardised) with an L2 penalty. It is fitted by L-BFGS, to a tolerance, on the
  inputs of LINEAR_WINDOWS windows drawn from the clips (as many from 4 clips as from 100), and
  the Keras head gets the weights. Its optimum is unique, so it is the same head whatever order
  the windows come in, and it has always converged.
- The others learn by Adam, for a number of optimiser steps that does not depend on how many
  clips there are: an epoch draws at least EPOCH_STEPS batches of windows afresh, so `--epochs`
  counts steps, not passes over a handful of windows (with 4 clips and 24 windows a clip an
  epoch was 1–2 batches).
"""
import sys
from dataclasses import dataclass

import numpy as np

from live.errors import UserError, first_line
from live.quiet import keras
from live.runtimes import compiled_call
from training.augment import SPEED_RANGE
from training.heads import feature_statistics
from training.lbfgs import softmax_regression
from training.model import LINEAR_INPUTS, LINEAR_WEIGHT_DECAY, build_sequence_model
from training.windows import WindowBatches, shuffled_frames

EPOCH_STEPS = 5  # batches an epoch draws at least: epochs x EPOCH_STEPS optimiser steps in all
LINEAR_WINDOWS = 4096  # windows linear is fitted on (at least one a clip)
LINEAR_MAX_VALUES = 64 * 2**20  # inputs held for L-BFGS (256 MB of float32); more: Adam, streamed


@dataclass
class Windows:
    """Makes the WindowBatches of one training, all from one seeded generator, in the order they
    are asked for, so the windows depend on the seed alone."""
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

    def training(self, clips, windows=None):
        """Training windows, at least `windows` (EPOCH_STEPS batches) an epoch however few the clips,
        drawn afresh every epoch, each sped up or slowed down unless --no-augment."""
        windows = windows or EPOCH_STEPS * self.config.batch_size
        return self.batches(clips, max(1, -(-windows // len(clips))), redraw=True,
                            speed_range=SPEED_RANGE if self.config.augment else None)

    def validation(self, clips):
        """Validation windows: the same every epoch, never sped up."""
        return self.batches(clips, max(4, self.config.windows_per_clip // 2), redraw=False)


def train_head(kind, config, windows, clips, feature_size, subset=None, val_batches=None, description=None):
    """A `kind` head trained on `clips` (standardised by their statistics; `subset`: the feature
    indices linear reads) with `windows` (a Windows); returns (model, history). `val_batches`, if
    given, are scored every epoch of an Adam training, for the progress bar and the history."""
    keras.utils.set_random_seed(config.dataset.seed)  # each head starts as it would trained alone
    model = build_sequence_model(kind, config.seq_len, feature_size, len(windows.labels),
                                 *feature_statistics(windows.features, clips), subset)
    # L-BFGS holds the inputs of every window (at least one a clip): past LINEAR_MAX_VALUES, Adam streams them.
    lbfgs_values = max(LINEAR_WINDOWS, len(clips)) * 2 * (len(subset) if subset is not None else feature_size)
    if kind == "linear" and lbfgs_values <= LINEAR_MAX_VALUES:
        return model, fit_linear(model, windows.training(clips, LINEAR_WINDOWS))
    batches = windows.training(clips)
    history = train_model(model, batches, val_batches, config.epochs, config.progress, config.verbose,
                          description or f"training {kind}")
    history = {name: [float(v) for v in values] for name, values in history.history.items()}
    return model, {**history, "steps": config.epochs * len(batches)}


def fit_linear(model, batches):
    """Fit a linear head's classifier by L-BFGS on the inputs of every window of `batches` (their
    first draw); returns its history: the objective at each iteration."""
    inputs_of = compiled_call(keras.Model(model.inputs, model.get_layer(LINEAR_INPUTS).output))
    inputs, labels = [], []
    for number in range(len(batches)):
        (frames, mask), label = batches[number]
        inputs.append(inputs_of(frames, mask))
        labels.append(label)
    kernel, bias, history = softmax_regression(np.concatenate(inputs), np.concatenate(labels),
                                               model.output_shape[-1], LINEAR_WEIGHT_DECAY)
    model.get_layer("probabilities").set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return {"loss": [float(v) for v in history["loss"]], "iterations": history["iterations"]}


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
        if self.bar is not None:
            self.bar.close()


def train_model(model, train_batches, val_batches, epochs, progress, verbose=False, description="training"):
    """model.fit on the streamed windows, each epoch's drawn afresh, for `epochs` epochs, scoring
    `val_batches` (if any) after each; returns Keras's History. Progress is one bar (`verbose`:
    Keras's line per epoch). An error in making a batch (an entry that changed or vanished while
    training) reaches the user as itself, one line, not as the backend's wrapping of it
    (tf.data's UnknownError and its traceback)."""
    callbacks = [train_batches.epoch_callback()]
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
