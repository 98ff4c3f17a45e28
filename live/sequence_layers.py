"""Layers of the sequence model that need code to load. They are registered with Keras so a
bundle loads with `safe_mode=True`: no lambdas, nothing unpickled."""
from live.quiet import keras
ops = keras.ops


def newest_frame(features, mask):
    """The newest valid frame of each masked window (B, T, F) -> (B, F); valid frames come first
    (live's buffer and training's windows both put them there). A one-hot sum rather than a
    gather: LiteRT runs it as builtin ops, and an empty window picks frame 0 instead of failing."""
    steps = ops.shape(features)[1]
    last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
    return ops.sum(features * ops.one_hot(last, steps, dtype=features.dtype)[:, :, None], axis=1)


@keras.saving.register_keras_serializable(package="live")
class TemporalStats(keras.layers.Layer):
    """Summarises a masked window of features in a way that sees the order of frames.

    Input: features (B, T, F) and a boolean mask (B, T) true on valid frames.
    Outputs two tensors. Appearance (B, F): the mean of each feature over valid frames.
    Motion (B, F + 2): the least-squares slope of each feature over time, then the mean and
    the slope of the size of the frame-to-frame change. Slopes change sign when time runs backwards, which is
    what tells "fade in" from "fade out" when single frames look alike. Time runs 0..1 over a
    full window, so a slope is the change across one window.
    """

    def call(self, inputs):
        features, mask = inputs
        steps = ops.shape(features)[1]
        valid = ops.cast(mask, features.dtype)[:, :, None]
        time = ops.reshape(ops.cast(ops.arange(steps), features.dtype), (1, -1, 1))
        time = time / ops.cast(ops.maximum(steps - 1, 1), features.dtype)

        count = ops.maximum(ops.sum(valid, axis=1), 1.0)
        mean = ops.sum(valid * features, axis=1) / count
        centred_time = (time - ops.sum(valid * time, axis=1, keepdims=True) / count[:, None, :]) * valid
        slope = ops.sum(centred_time * features, axis=1) / ops.maximum(
            ops.sum(centred_time ** 2, axis=1), 1e-6)

        step_size = ops.sqrt(ops.mean((features[:, 1:] - features[:, :-1]) ** 2, axis=-1) + 1e-8)
        pair_valid = valid[:, 1:, 0] * valid[:, :-1, 0]
        pair_time = time[:, 1:, 0]
        pair_count = ops.maximum(ops.sum(pair_valid, axis=1, keepdims=True), 1.0)
        step_mean = ops.sum(pair_valid * step_size, axis=1, keepdims=True) / pair_count
        centred_pair_time = (pair_time - ops.sum(pair_valid * pair_time, axis=1, keepdims=True)
                             / pair_count) * pair_valid
        step_slope = ops.sum(centred_pair_time * step_size, axis=1, keepdims=True) / ops.maximum(
            ops.sum(centred_pair_time ** 2, axis=1, keepdims=True), 1e-6)
        return [mean, ops.concatenate([slope, step_mean, step_slope], axis=-1)]

    def compute_output_shape(self, input_shape):
        batch, _, size = input_shape[0]
        return [(batch, size), (batch, size + 2)]


@keras.saving.register_keras_serializable(package="live")
class FrameChanges(keras.layers.Layer):
    """The frame-to-frame changes of a masked window, for a recurrent layer to read in order.

    Input: features (B, T, F) and a boolean mask (B, T), valid frames first. Outputs the
    changes (B, T - 1, F), x[t + 1] - x[t], zero where either frame is padding; their sizes
    (B, T - 1, 1), the root mean square over features; and their mask (B, T - 1): a window of n
    frames has n - 1 changes, none for a single frame. The sizes are what a linear projection
    of the changes can't give: they don't flip sign with the direction a scene happens to move
    in feature space, and their rise or fall along the window is how fast the clip changes at
    its start against its end, which time reversal swaps.

    With `normalise`, each window's changes are divided by their root mean square over its
    valid changes: one number per window, so the direction of every step and how the step
    sizes grow or shrink along the window (what tells a zoom in from a zoom out) are kept,
    but not how much this scene happens to change, which differs from photo to photo and
    would otherwise be learnt as part of the scene.
    """

    def __init__(self, normalise=True, **kwargs):
        super().__init__(**kwargs)
        self.normalise = normalise

    def call(self, inputs):
        features, mask = inputs
        valid = ops.logical_and(mask[:, 1:], mask[:, :-1])
        weight = ops.cast(valid, features.dtype)[:, :, None]
        changes = (features[:, 1:] - features[:, :-1]) * weight
        if self.normalise:
            size = ops.cast(ops.shape(features)[-1], features.dtype)
            count = ops.maximum(ops.sum(weight, axis=(1, 2)), 1.0) * size
            rms = ops.sqrt(ops.sum(changes ** 2, axis=(1, 2)) / count + 1e-6)
            changes = changes / rms[:, None, None]
        sizes = ops.sqrt(ops.mean(changes ** 2, axis=-1, keepdims=True) + 1e-12) * weight
        return [changes, sizes, valid]

    def compute_output_shape(self, input_shape):
        batch, steps, size = input_shape[0]
        steps = None if steps is None else steps - 1
        return [(batch, steps, size), (batch, steps, 1), (batch, steps)]

    def compute_output_spec(self, inputs):
        features, _ = inputs
        batch, steps, size = features.shape
        steps = None if steps is None else steps - 1
        return [keras.KerasTensor((batch, steps, size), dtype=features.dtype),
                keras.KerasTensor((batch, steps, 1), dtype=features.dtype),
                keras.KerasTensor((batch, steps), dtype="bool")]

    def get_config(self):
        return {**super().get_config(), "normalise": self.normalise}


@keras.saving.register_keras_serializable(package="live")
class NewestFrame(keras.layers.Layer):
    """The newest valid frame of a masked window: features (B, T, F) and a boolean mask (B, T),
    valid frames first -> (B, F).

    Why a head reads it beside the window's mean: a streaming backbone's (MoViNet's) features
    for a frame already pool every frame since its state was reset, so the newest frame is the
    best-informed summary of the window, where the oldest frames of the window saw only a second
    or so. On ucf11_dev (tests/benchmarks/own_classes.py, MoViNet, 5 clips a class, 3 seeds),
    a linear head of the mean and the newest frame scored 0.951 against 0.924 for the mean alone.
    """

    def call(self, inputs):
        features, mask = inputs
        return newest_frame(features, mask)

    def compute_output_shape(self, input_shape):
        batch, _, size = input_shape[0]
        return (batch, size)


@keras.saving.register_keras_serializable(package="live")
class FeatureSubset(keras.layers.Layer):
    """Some of the features of every frame, by index: (..., F) -> (..., len(indices)).

    A linear head on a backbone whose features are its own classifier's class scores (MoViNet's
    Kinetics-600 logits) reads only the scores of the classes the user's training clips evoke
    most (training.fit.evoked_classes says why)."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, features):
        return ops.take(features, ops.convert_to_tensor(self.indices, dtype="int32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.indices))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package="live")
class LastStepSoftmax(keras.layers.Layer):
    """The head of a bundle that runs its backbone's own classifier (MoViNet's Kinetics-600
    logits): the softmax of the features of the newest valid frame, nothing trained.

    Input: features (B, T, F) and a boolean mask (B, T) true on the valid frames, which come
    first (live's buffer and training's windows both put them there).
    """

    def call(self, inputs):
        features, mask = inputs
        return ops.softmax(newest_frame(features, mask), axis=-1)

    def compute_output_shape(self, input_shape):
        batch, _, size = input_shape[0]
        return (batch, size)


@keras.saving.register_keras_serializable(package="live")
class TrajectoryShape(keras.layers.Layer):
    """How a masked window travels, in numbers that don't depend on the scene.

    Input: features (B, T, F), unstandardised, and a boolean mask (B, T), valid frames first.
    Outputs (B, T - 1, 3), one row per frame-to-frame change k (frame k to k + 1), zero where
    either frame is padding: the cosine distance of frame k + 1 from the window's first frame
    and from its last valid frame, each divided by its largest value in the window, and the
    cosine distance of the step itself divided by the window's mean step.

    Why: a zoom moves each photo in its own direction in feature space, so a learnt direction
    memorises scenes; the shape of the path does not. A zoom in covers most of its distance
    early (each step's share of the view shrinks as the view narrows), a zoom out late, and
    time reversal swaps the two curves. Cosine distances ignore overall brightness, so a fade
    does not swamp them.
    """

    EPSILON = 1e-4  # cosine distance; a video's frame-to-frame steps are ~5e-3 (EfficientNet-Lite0)

    def call(self, inputs):
        features, mask = inputs
        valid = ops.cast(mask, features.dtype)
        unit = features / ops.sqrt(ops.sum(features ** 2, axis=-1, keepdims=True) + 1e-12)
        last = newest_frame(unit, mask)
        # Half the squared distance between unit vectors is the cosine distance, without the
        # cancellation of 1 - dot: identical frames give exactly 0 in every runtime.
        from_first = 0.5 * ops.sum((unit - unit[:, :1]) ** 2, axis=-1) * valid
        from_last = 0.5 * ops.sum((unit - last[:, None, :]) ** 2, axis=-1) * valid
        pair = valid[:, 1:] * valid[:, :-1]
        step = 0.5 * ops.sum((unit[:, 1:] - unit[:, :-1]) ** 2, axis=-1) * pair
        pair_count = ops.maximum(ops.sum(pair, axis=1, keepdims=True), 1.0)
        # EPSILON: a still scene's steps are noise, not a path; below it nothing is scaled up.
        rows = [from_first[:, 1:] / (ops.max(from_first, axis=1, keepdims=True) + self.EPSILON),
                from_last[:, 1:] / (ops.max(from_last, axis=1, keepdims=True) + self.EPSILON),
                step / (ops.sum(step, axis=1, keepdims=True) / pair_count + self.EPSILON)]
        return ops.stack(rows, axis=-1) * pair[:, :, None]

    def compute_output_shape(self, input_shape):
        batch, steps, _ = input_shape[0]
        return (batch, None if steps is None else steps - 1, 3)
