"""The sequence models that read a window of frame embeddings.

- "gru": the features standardised with training statistics, read four ways,
  each through its own small, regularised branch before they meet:
  - appearance: the mean over the window (TemporalStats), dropout 0.7 -> Dense(8);
  - motion: the per-feature least-squares slopes with the mean and trend of the step size
    (TemporalStats), dropout 0.5 -> Dense(16);
  - order: a GRU(16) reading, change by change, how the window travels (TrajectoryShape: the
    distance from its first and from its last frame, and the size of each step, all relative
    to the window) with the size of each normalised change (FrameChanges); masked, so
    partial windows (1..19 frames) read only their real changes. Unrolled over the fixed
    window: LiteRT runs it with builtin ops (no while loop of TensorList ops);
  - path: the same path shape, flattened, -> Dense(8).
  The appearance and motion branches are each dropped whole from half of the training windows
  (dropout with one mask per window), so the order and path branches must learn to name the
  class on their own rather than lean on what a scene looks like.
  Why this shape: what a linear view of the features learns about a zoom is the direction each
  training photo happens to move in feature space, which is another direction for a new photo,
  and a GRU over raw features and their changes memorises the training scenes; the path's shape
  does not depend on the scene: a zoom in covers most of its distance early, a zoom out late
  (the measurements: docs/decisions.md).
- "linear": a linear classifier of the window's mean feature and its newest frame's (both
  standardised; NewestFrame says why the newest), with dropout and strong weight decay. On real
  actions the scene is most of the signal, which a linear view of the mean reads best from a few
  clips; the decay is what keeps it from learning the clips' accidents. On a backbone whose
  features are its own class scores (MoViNet), it reads only those of the classes the actions
  evoke (feature_subset, training.heads.evoked_classes). It cannot tell an action from its time
  reversal, which the order task needs.
- "motion": the appearance and motion branches alone, no GRU.
- "reference": the Keras example's GRU(16) -> GRU(8) -> Dropout(0.4) -> Dense(8) head.
"""
import numpy as np

# The one registry of model kinds. `train fit --model` offers these and AUTO, its default: compare
# CANDIDATES by cross-validation over the training sessions and keep the best, a tie going to the
# simpler (training.crossval); they are listed simplest first.
# No one head wins on both kinds of data: "gru" reads time order (the photo-derived order task,
# where "linear" is at chance within each pair), "linear" reads the scene, which on real actions
# with few clips is most of the signal. This module imports Keras only inside
# build_sequence_model, so the CLI can read the names without loading TensorFlow.
MODEL_KINDS = ("gru", "linear", "motion", "reference")
AUTO = "auto"
CANDIDATES = ("linear", "gru")
# On a backbone whose features are its own classifier's class scores (MoViNet's Kinetics-600),
# linear reads the scores of the classes the user's actions evoke (training.heads.evoked_classes).
CLASS_SCORE_CANDIDATES = ("linear", "gru")
DEFAULT_MODEL_KIND = AUTO
LINEAR_DROPOUT = 0.5  # when it learns by Adam (training.train: on data too big for L-BFGS)
LINEAR_INPUTS = "linear_inputs"  # the layer whose output the linear classifier reads
LINEAR_WEIGHT_DECAY = 3e-2  # L2, on the classifier's weights (the docstring says why)
EVOKED_PER_CLASS = 5  # backbone classes a user's class adds to what linear reads (training.heads.evoked_classes)
APPEARANCE_UNITS = 8
GRU_UNITS = 16
PATH_UNITS = 8
BRANCH_DROPOUT = 0.5  # the share of training windows without appearance; the same, drawn apart, without motion


def build_sequence_model(kind, seq_len, feature_size, num_classes, feature_mean=None, feature_var=None,
                         feature_subset=None):
    """The head `kind` reads, compiled. feature_mean/var: the training frames' statistics, which
    standardise the features; feature_subset (linear only): the indices of the features it reads,
    when they are the backbone's class scores (training.heads.evoked_classes), which it scales by
    one shared deviation, as scores of one softmax, rather than one each."""
    from live.quiet import keras
    from live.sequence_layers import FeatureSubset, FrameChanges, NewestFrame, TemporalStats, TrajectoryShape

    features = keras.Input((seq_len, feature_size), name="features")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    if feature_mean is None:
        feature_mean, feature_var = np.zeros(feature_size), np.ones(feature_size)
    read = features
    if feature_subset is not None:
        if kind != "linear":
            raise ValueError(f"only the linear head reads a subset of the features, not {kind!r}")
        subset = np.asarray(feature_subset, np.int64)
        read = FeatureSubset(subset.tolist(), name="evoked_classes")(features)
        feature_mean = np.asarray(feature_mean)[subset]
        feature_var = np.full(len(subset), np.mean(np.asarray(feature_var)[subset]))
    normalised = keras.layers.Normalization(mean=np.asarray(feature_mean, np.float32).tolist(),
                                            variance=np.asarray(feature_var, np.float32).tolist(),
                                            name="standardise")(read)
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
            # noise_shape (None, 1): one keep-or-drop per window for the whole branch.
            branches = [keras.layers.Dropout(BRANCH_DROPOUT, noise_shape=(None, 1))(branch) for branch in branches]
            path = TrajectoryShape(name="trajectory_shape")([features, mask])
            branches.append(_order_gru(keras, FrameChanges, normalised, mask, path))
            path = keras.layers.Flatten()(path)
            branches.append(keras.layers.Dense(PATH_UNITS, activation="relu", name="path",
                                               kernel_regularizer=keras.regularizers.l2(1e-3))(path))
        x = keras.layers.Dropout(0.3)(keras.layers.Concatenate()(branches))
    elif kind == "linear":
        appearance, _ = TemporalStats(name="temporal_stats")([normalised, mask])
        newest = NewestFrame(name="newest_frame")([normalised, mask])
        x = keras.layers.Concatenate(name=LINEAR_INPUTS)([appearance, newest])
        x = keras.layers.Dropout(LINEAR_DROPOUT)(x)
    elif kind == "reference":
        # unroll: a fixed-length loop of builtin ops that LiteRT runs, not a while loop of
        # TensorList ops it can't; the same weights and results either way.
        x = keras.layers.GRU(16, return_sequences=True, unroll=True)(normalised, mask=mask)
        x = keras.layers.GRU(8, unroll=True)(x)
        x = keras.layers.Dropout(0.4)(x)
        x = keras.layers.Dense(8, activation="relu")(x)
    else:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {MODEL_KINDS}")
    decay = keras.regularizers.l2(LINEAR_WEIGHT_DECAY) if kind == "linear" else None
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities",
                                       kernel_regularizer=decay)(x)
    model = keras.Model([features, mask], probabilities, name=f"{kind}_sequence_model")
    # cross_entropy: the loss without the weight decay, which differs between heads (linear's is
    # far stronger); comparing heads by a loss that counts it would favour the lightly decayed one.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="cross_entropy")])
    return model


def _order_gru(keras, FrameChanges, normalised, mask, path):
    """GRU(16) reading the window change by change: the path's shape at each change and the
    size of the change (normalised per window), never the change's direction."""
    _, sizes, valid = FrameChanges(name="frame_changes")([normalised, mask])
    steps = keras.layers.Concatenate()([sizes, path])
    state = keras.layers.GRU(GRU_UNITS, unroll=True, name="gru")(steps, mask=valid)
    return keras.layers.Dropout(0.3)(state)
