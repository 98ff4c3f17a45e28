"""Few clips a class: speed augmentation keeps live's window layout, and `fit` chooses its head
by validation, writes the chosen one and records the choice."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIPS

SEQ_LEN = 20


def frame_numbers(windows, masks):
    """The frame index each valid row of each window holds (the test clip's feature i is i)."""
    return [window[mask, 0].astype(int) for window, mask in zip(windows, masks)]


def test_speed_augmentation_keeps_the_live_buffer_layout():
    """Windows of a clip replayed at 0.8x-1.25x are still live's layout (valid frames first,
    oldest first, zeros and a false mask after), in time order, never reversed: a frame is at
    most repeated once (0.8x) or one skipped (1.25x), and both happen. Without augmentation every
    step is one frame."""
    from training.windows import training_windows

    clip = np.repeat(np.arange(1, 61, dtype=np.float32)[:, None], 4, axis=1)  # feature i of frame i-1 is i
    rng = np.random.default_rng(0)
    windows, masks, owners = training_windows([clip], SEQ_LEN, 300, rng, speed_range=(0.8, 1.25))
    assert windows.shape == (300, SEQ_LEN, 4) and masks.shape == (300, SEQ_LEN) and set(owners) == {0}
    filled = masks.sum(axis=1)
    assert all(mask[:n].all() and not mask[n:].any() for mask, n in zip(masks, filled))
    assert all((window[n:] == 0).all() for window, n in zip(windows, filled))
    steps = np.concatenate([np.diff(frames) for frames in frame_numbers(windows, masks)])
    assert set(steps) == {0, 1, 2}
    plain, plain_masks, _ = training_windows([clip], SEQ_LEN, 50, rng)
    assert all((np.diff(frames) == 1).all() for frames in frame_numbers(plain, plain_masks))


def layer_classes(bundle):
    with zipfile.ZipFile(Path(bundle) / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
    return {layer["class_name"] for layer in config["config"]["layers"]}


@pytest.mark.slow
def test_fit_keeps_the_head_validation_prefers_and_records_it(tmp_path, cache_dir):
    """On a tiny real dataset (two clips cut into segments, MoViNet features), the default
    --model auto trains gru and mean, keeps the one with the better validation accuracy (its
    lower loss on a tie), writes that one, and records both candidates' scores in the manifest
    and the report; live's LiteRT head of a mean model gives Keras' probabilities."""
    from live.bundle import load_bundle
    from live.runtimes import LiteRTModel, compiled_call, make_head
    from training.config import FitConfig
    from training.demo_data import make_demo_data
    from training.fit import fit
    from training.model import build_sequence_model

    make_demo_data([str(CLIPS / "arm_wrestling.mp4"), str(CLIPS / "pool_cleaning.mp4")], tmp_path / "data", 6)
    report = fit(FitConfig.from_options(data=tmp_path / "data", out=tmp_path / "bundle", backbone="movinet_a0_stream",
                                        epochs=3, progress=False))
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    selection = manifest["model_selection"]
    assert selection["requested"] == "auto" and set(selection["candidates"]) == {"gru", "mean"}
    scores = {kind: (s["validation_accuracy"], -s["validation_loss"]) for kind, s in selection["candidates"].items()}
    assert manifest["model"] == report["model"] == max(scores, key=scores.get)
    assert ("GRU" in layer_classes(tmp_path / "bundle")) == (manifest["model"] == "gru")
    assert all(0 <= c["test_accuracy_all_windows"] <= 1 for c in report["candidates"].values())

    assert load_bundle(tmp_path / "bundle").labels == ["arm_wrestling", "cleaning_pool"]

    mean_model = build_sequence_model("mean", SEQ_LEN, 8, 3)
    features = np.random.default_rng(0).normal(size=(3, SEQ_LEN, 8)).astype(np.float32)
    mask = np.arange(SEQ_LEN)[None, :] < np.array([[1], [11], [SEQ_LEN]])  # partial and full windows
    head = make_head(mean_model, "test-mean-head", "litert")
    assert isinstance(head, LiteRTModel)
    np.testing.assert_allclose(head(features, mask), compiled_call(mean_model)(features, mask), atol=1e-4)
