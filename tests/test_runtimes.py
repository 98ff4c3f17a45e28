"""The sequence model's runtimes: LiteRT where it converts, the traced Keras call otherwise,
both giving what Keras gives on partial windows."""
import numpy as np
import pytest

import live  # noqa: F401
from live.backbones import fingerprint
from live.runtimes import LiteRTModel, compiled_call, make_head
from training.model import build_sequence_model


@pytest.mark.parametrize("kind, expected", [("gru", LiteRTModel), ("motion", LiteRTModel), ("reference", LiteRTModel),
                                            ("while-loop GRU", None)])
@pytest.mark.slow
def test_head_runtimes_agree_on_partial_windows(kind, expected, cache_dir, capfd):
    if kind == "while-loop GRU":  # a GRU left rolled up: a while loop of TensorFlow ops LiteRT lacks
        from live.quiet import keras

        features = keras.Input((20, 64))
        mask = keras.Input((20,), dtype="bool")
        model = keras.Model([features, mask], keras.layers.Dense(4, activation="softmax")(
            keras.layers.GRU(8)(features, mask=mask)))
    else:
        model = build_sequence_model(kind, 20, 64, 4)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 20, 64)).astype(np.float32)
    mask = np.zeros((4, 20), bool)
    for row, filled in enumerate((1, 2, 11, 20)):
        mask[row, :filled] = True
        features[row, filled:] = 0
    capfd.readouterr()
    head = make_head(model, fingerprint(model), "litert")
    notes = [line for line in capfd.readouterr().err.splitlines() if line.startswith("note: ")]
    if expected:
        assert isinstance(head, expected) and not notes
    else:  # the traced Keras call stands in, and one line says why
        assert not isinstance(head, LiteRTModel)
        assert len(notes) == 1 and "not LiteRT" in notes[0], notes
        # ...and the reason is LiteRT's own: the loop's TensorFlow (Flex) ops are not in its interpreter.
        assert "RuntimeError: Select TensorFlow op(s), included in the given model, is(are) not supported" \
            in notes[0], notes
    reference = compiled_call(model)(features, mask)
    np.testing.assert_allclose(head(features, mask), reference, atol=1e-5)
    # One window at a time gives what the batch gives.
    single = np.concatenate([head(features[i:i + 1], mask[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(single, reference, atol=1e-5)
