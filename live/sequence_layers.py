"""Layers of the sequence model that need code to load. They are registered with Keras so a
bundle loads with `safe_mode=True`: no lambdas, nothing unpickled."""
from live.quiet import keras
ops = keras.ops


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
