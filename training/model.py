"""The sequence models that read a window of frame embeddings.

- "gru" (the default): the features standardised with training statistics, read three ways,
  each through its own small, regularised branch before they meet:
  - appearance: the mean over the window (TemporalStats), dropout 0.7 -> Dense(8);
  - motion: the per-feature least-squares slopes with the mean and trend of the step size
    (TemporalStats), dropout 0.5 -> Dense(16);
  - order: a GRU(16) over the frame-to-frame changes (FrameChanges), each divided by the
    window's root-mean-square change, dropped out at 0.5 and projected to 16 numbers, with the
    size of each change beside it; masked, so partial windows (1..19 frames) read only their
    real changes. Unrolled over the fixed window: LiteRT runs it with builtin ops (no while
    loop of TensorList ops), at about 0.2 ms a call.
  Why this shape: on the photo-derived temporal task, tested on photos never seen in training
  (tests/benchmarks/temporal_eval.py), a GRU over raw features and their changes memorises
  the training scenes (64% within-pair); narrow branches that see only what is common to
  scenes generalise. A linear projection of the changes flips sign with the direction each
  photo happens to move in feature space; the change sizes don't, and their rise or fall
  along the window is what tells most zoom and saturation clips from their reversals.
- "motion": the appearance and motion branches alone, no GRU.
- "reference": the Keras example's GRU(16) -> GRU(8) -> Dropout(0.4) -> Dense(8) head.
"""
import numpy as np

# The one registry of model kinds; `train fit --model` offers these, the first is its default.
# This module imports Keras only inside build_sequence_model, so the CLI can read the names
# without loading TensorFlow.
MODEL_KINDS = ("gru", "motion", "reference")
DEFAULT_MODEL_KIND = MODEL_KINDS[0]
APPEARANCE_UNITS = 8
CHANGE_UNITS = 16
GRU_UNITS = 16


def build_sequence_model(kind, seq_len, feature_size, num_classes, feature_mean=None, feature_var=None):
    from live.quiet import keras
    from live.sequence_layers import FrameChanges, TemporalStats

    features = keras.Input((seq_len, feature_size), name="features")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    if feature_mean is None:
        feature_mean, feature_var = np.zeros(feature_size), np.ones(feature_size)
    normalised = keras.layers.Normalization(mean=np.asarray(feature_mean, np.float32).tolist(),
                                            variance=np.asarray(feature_var, np.float32).tolist(),
                                            name="standardise")(features)
    if kind in ("gru", "motion"):
        appearance, motion = TemporalStats(name="temporal_stats")([normalised, mask])
        appearance = keras.layers.Dropout(0.7)(appearance)
        appearance = keras.layers.Dense(APPEARANCE_UNITS, activation="relu", name="appearance",
                                        kernel_regularizer=keras.regularizers.l2(1e-3))(appearance)
        motion = keras.layers.Dropout(0.5)(motion)
        motion = keras.layers.Dense(16, activation="relu", name="motion",
                                    kernel_regularizer=keras.regularizers.l2(1e-3))(motion)
        branches = [appearance, motion]
        if kind == "gru":
            branches.append(_change_gru(keras, FrameChanges, normalised, mask))
        x = keras.layers.Dropout(0.3)(keras.layers.Concatenate()(branches))
    elif kind == "reference":
        # unroll: a fixed-length loop of builtin ops that LiteRT runs, not a while loop of
        # TensorList ops it can't; the same weights and results either way.
        x = keras.layers.GRU(16, return_sequences=True, unroll=True)(normalised, mask=mask)
        x = keras.layers.GRU(8, unroll=True)(x)
        x = keras.layers.Dropout(0.4)(x)
        x = keras.layers.Dense(8, activation="relu")(x)
    else:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {MODEL_KINDS}")
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model([features, mask], probabilities, name=f"{kind}_sequence_model")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _change_gru(keras, FrameChanges, normalised, mask):
    """GRU(16) reading the window's frame-to-frame changes in order: each change, normalised
    per window and projected to 16 numbers, with its size beside it."""
    changes, sizes, valid = FrameChanges(name="frame_changes")([normalised, mask])
    changes = keras.layers.Dropout(0.5)(changes)
    changes = keras.layers.Dense(CHANGE_UNITS, name="change_projection",
                                 kernel_regularizer=keras.regularizers.l2(1e-3))(changes)
    steps = keras.layers.Concatenate()([changes, sizes])
    state = keras.layers.GRU(GRU_UNITS, unroll=True, name="gru")(steps, mask=valid)
    return keras.layers.Dropout(0.3)(state)
