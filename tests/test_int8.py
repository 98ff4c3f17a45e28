"""`train quantize` and `live --runtime openvino-int8`: an int8 backbone made from real clips,
checked against fp32, carried by the bundle, and refused or reported clearly when it can't serve.

The backbone is EfficientNet-Lite0 with its real ImageNet weights (offline), so the drift is
int8's drift on real weights. Measured here with the fixture's calibration (16 frames of arm
wrestling and basketball segments): cosine to fp32 min 0.9695 on quantize's 16 check frames,
min 0.943 / mean 0.969 on the 10 arm-wrestling frames below, min 0.78 on the photos, and
ImageNet top-1 agreeing with fp32 on only 67-70% of them. So the default bound (0.98) refuses it,
as the README says; the tests accept it with a lowered bound to test the path it then takes."""
import json
import re
import shutil
import sys

import numpy as np
import pytest

from conftest import CLIPS, assert_clean_error, make_bundle, read_jsonl, run_command

pytest.importorskip("openvino")
pytest.importorskip("nncf")

pytestmark = [pytest.mark.slow, pytest.mark.real_data]  # every test here starts live or train, or fits a model
CLIP = CLIPS / "arm_wrestling.mp4"
# The bound the fixture accepts the int8 backbone at: below the 0.9695 measured on its check frames.
ACCEPTED_MIN_COSINE = 0.95


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-data")
    process = run_command("train", "demo-data", CLIP, CLIPS / "basketball.mp4", "--to", folder, "--segments", "4")
    assert process.returncode == 0, process.stderr
    return folder


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, demo_data, cache_dir):
    """A Lite0 bundle (real ImageNet weights), refused an int8 backbone at the default bound by
    its real drift, then given one at ACCEPTED_MIN_COSINE."""
    bundle = make_bundle(tmp_path_factory.mktemp("int8") / "lite0", "efficientnet_lite0")
    options = ("--weights", bundle, "--data", demo_data, "--frames", "16")
    refused = run_command("train", "quantize", *options)
    manifest_after_refusal = json.loads((bundle / "manifest.json").read_text())
    accepted = run_command("train", "quantize", *options, "--min-cosine", ACCEPTED_MIN_COSINE)
    return bundle, refused, manifest_after_refusal, accepted


def refused_cosine(refused):
    error = assert_clean_error(refused, "drifts too far", "unchanged")
    return float(re.search(r"cosine min ([0-9.]+) < 0.98 on 16 frames", error).group(1))


def test_real_drift_beyond_the_default_bound_is_refused_and_the_bundle_kept(quantized):
    bundle, refused, manifest, _ = quantized
    assert ACCEPTED_MIN_COSINE <= refused_cosine(refused) < 0.98  # measured 0.9695
    assert "int8_backbone" not in manifest
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["lite0"]  # no staging folder left


def test_int8_backbone_is_added_with_its_measured_drift(quantized):
    """Same seed, same calibration and check frames: the drift recorded is the one the refused
    run measured, to the digit (NNCF and OpenVINO are deterministic on one machine)."""
    bundle, refused, _, accepted = quantized
    assert accepted.returncode == 0, accepted.stderr
    entry = json.loads((bundle / "manifest.json").read_text())["int8_backbone"]
    assert entry["drift"]["cosine_min"] == refused_cosine(refused) and entry["drift"]["frames"] == 16
    assert entry["drift"]["cosine_min"] <= entry["drift"]["cosine_mean"] < 1
    assert entry["calibration"]["frames"] == 16
    assert (bundle / "backbone-int8.xml").is_file() and (bundle / "backbone-int8.bin").stat().st_size > 1e6
    assert (bundle / "model.keras").is_file() and (bundle / "labels.txt").is_file()


def first_frames(count, step=1):
    from live.frames import to_model_input
    from live.sources import FileSource

    source = FileSource(CLIP)
    frames = np.stack([to_model_input(f.image, 224) for _, f in zip(range(count), source.frames())][::step])
    source.close()
    return frames


def test_int8_features_drift_within_measured_bounds_at_any_batch(quantized):
    """Real weights on 10 arm-wrestling frames: measured cosine min 0.943, mean 0.969; the bounds
    leave 0.02 for another CPU's int8 kernels. Batched calls give the one-by-one features."""
    import live  # noqa: F401
    from live.pipeline import load_classifier

    bundle = quantized[0]
    frames = first_frames(60, step=6)
    fp32 = load_classifier(bundle, "litert").embedder(frames)
    int8 = load_classifier(bundle, "openvino-int8").embedder
    one_by_one = np.concatenate([int8(frame[None]) for frame in frames])
    cosine = (fp32 * one_by_one).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(one_by_one, axis=1)
    print(f"int8 vs fp32 cosine on clip frames: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    assert cosine.min() >= 0.92 and cosine.mean() >= 0.95
    assert cosine.max() < 0.9999  # int8, not the fp32 backbone under another name
    np.testing.assert_allclose(int8(frames), one_by_one, rtol=1e-3, atol=1e-3)


def int8_first_window(bundle):
    """The head's probabilities on the clip's first 20 frames as embedded by the bundle's int8
    backbone, computed here: the first full window live and predict hold (the Lite0 bundle has
    no frame rate, so every frame is sampled)."""
    from live.pipeline import load_classifier

    classifier = load_classifier(bundle, "openvino-int8")
    return classifier.head(classifier.embedder(first_frames(20))[None], np.ones((1, 20), bool))[0]


def test_live_runs_the_int8_backbone(quantized, tmp_path):
    """Live's int8 run gives, at frame 19, the int8 backbone's window computed here, and not
    the fp32 run's probabilities: on real weights int8 moves even an untrained head's
    probabilities by up to 0.74 over these 40 frames (measured), far beyond 1e-4."""
    bundle = quantized[0]
    runs = {}
    for runtime in ("openvino-int8", "litert"):
        jsonl = tmp_path / f"{runtime}.jsonl"
        process = run_command("live", "--file", CLIP, "--weights", bundle,
                              "--runtime", runtime, "--no-display", "--max-frames", "40", "--jsonl", jsonl,
                              "--jsonl-probs")
        assert process.returncode == 0, process.stderr
        runs[runtime] = np.array([record["probs"] for record in read_jsonl(jsonl)])
    assert runs["openvino-int8"].shape == runs["litert"].shape == (40, 3)
    np.testing.assert_allclose(runs["openvino-int8"][19], int8_first_window(bundle), atol=1e-4, rtol=0)
    assert np.abs(runs["openvino-int8"] - runs["litert"]).max() > 0.01


def test_bundle_without_an_int8_backbone(lite_bundle):
    process = run_command("live", "--file", CLIP, "--weights", lite_bundle, "--runtime", "openvino-int8",
                          "--no-display", "--max-frames", "5")
    assert_clean_error(process, "no int8 backbone", "train quantize")


def test_damaged_int8_backbone(quantized, tmp_path):
    damaged = shutil.copytree(quantized[0], tmp_path / "damaged")
    weights = damaged / "backbone-int8.bin"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    process = run_command("live", "--file", CLIP, "--weights", damaged, "--runtime", "openvino-int8",
                          "--no-display", "--max-frames", "5")
    assert_clean_error(process, "backbone-int8.bin is missing or damaged")


def test_offline_prediction_with_int8_keeps_its_own_feature_cache(quantized, cache_dir):
    """`train predict --runtime openvino-int8` predicts from int8 features (its first window is
    the one computed here), cached apart from fp32's, which would give other probabilities."""
    bundle = quantized[0]
    first_windows = {}
    for runtime in ("openvino-int8", "litert"):
        process = run_command("train", "predict", "--weights", bundle,
                              "--runtime", runtime, "--json", CLIP)
        assert process.returncode == 0, process.stderr
        first_windows[runtime] = json.loads(process.stdout)["first_window"]["probs"]
    np.testing.assert_allclose(first_windows["openvino-int8"], int8_first_window(bundle), atol=1e-4, rtol=0)
    assert np.abs(np.subtract(first_windows["openvino-int8"], first_windows["litert"])).max() > 1e-3
    keys = [folder.name for folder in (cache_dir / "features").iterdir()
            if folder.name.startswith("efficientnet_lite0")]
    assert any("openvino-int8-" in key for key in keys) and any("openvino" not in key for key in keys)


def test_without_openvino_installed_the_user_is_told_what_to_install(quantized):
    hide_openvino = ("import sys; sys.modules['openvino'] = None; sys.argv = ['live'] + sys.argv[1:]; "
                     "from live.cli import main; main()")
    process = run_command(sys.executable, "-c", hide_openvino, "--file", CLIP, "--weights", quantized[0],
                          "--runtime", "openvino-int8", "--no-display", "--max-frames", "5")
    assert_clean_error(process, "needs OpenVINO", "pip install openvino")
