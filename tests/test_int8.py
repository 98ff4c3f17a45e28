"""`train quantize` and `live --runtime openvino-int8`: an int8 backbone made from real clips,
checked against fp32, carried by the bundle, and refused or reported clearly when it can't serve."""
import json
import shutil
import sys

import numpy as np
import pytest

from conftest import CLIPS, assert_clean_error, make_bundle, read_jsonl, run_command

pytest.importorskip("openvino")
pytest.importorskip("nncf")
CLIP = CLIPS / "arm_wrestling.mp4"


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-data")
    process = run_command("train", "demo-data", CLIP, CLIPS / "basketball.mp4", "--to", folder, "--segments", "4")
    assert process.returncode == 0, process.stderr
    return folder


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, inception_weights, demo_data):
    """An InceptionV3 bundle, first refused an int8 backbone by an unreachable bound, then given one."""
    bundle = make_bundle(tmp_path_factory.mktemp("int8") / "inception", "inception_v3", str(inception_weights))
    options = ("--weights", bundle, "--data", demo_data, "--backbone-weights", inception_weights, "--frames", "16")
    refused = run_command("train", "quantize", *options, "--min-cosine", "0.999999")
    manifest_after_refusal = json.loads((bundle / "manifest.json").read_text())
    accepted = run_command("train", "quantize", *options)
    return bundle, refused, manifest_after_refusal, accepted


def test_drift_beyond_the_bound_is_refused_and_the_bundle_kept(quantized):
    bundle, refused, manifest, _ = quantized
    assert_clean_error(refused, "drifts too far", "unchanged")
    assert "int8_backbone" not in manifest
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["inception"]  # no staging folder left


def test_int8_backbone_is_added_with_its_measured_drift(quantized):
    bundle, _, _, accepted = quantized
    assert accepted.returncode == 0, accepted.stderr
    entry = json.loads((bundle / "manifest.json").read_text())["int8_backbone"]
    assert entry["drift"]["cosine_min"] >= 0.98 and entry["drift"]["frames"] >= 16
    assert entry["calibration"]["frames"] == 16
    assert (bundle / "backbone-int8.xml").is_file() and (bundle / "backbone-int8.bin").stat().st_size > 1e6
    assert (bundle / "model.keras").is_file() and (bundle / "labels.txt").is_file()


def test_int8_features_match_fp32_on_clip_frames_at_any_batch(quantized, inception_weights):
    import live  # noqa: F401
    from live.frames import to_model_input
    from live.pipeline import load_classifier
    from live.sources import FileSource

    bundle = quantized[0]
    source = FileSource(CLIP)
    frames = np.stack([to_model_input(f.image, 224) for _, f in zip(range(60), source.frames())][::6])
    source.close()
    fp32 = load_classifier(bundle, "litert", str(inception_weights)).embedder(frames)
    int8 = load_classifier(bundle, "openvino-int8").embedder
    one_by_one = np.concatenate([int8(frame[None]) for frame in frames])
    cosine = (fp32 * one_by_one).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(one_by_one, axis=1)
    assert cosine.min() >= 0.98
    np.testing.assert_allclose(int8(frames), one_by_one, rtol=1e-3, atol=1e-3)


def test_live_runs_the_int8_backbone(quantized, inception_weights, tmp_path):
    bundle = quantized[0]
    runs = {}
    for runtime in ("openvino-int8", "litert"):
        jsonl = tmp_path / f"{runtime}.jsonl"
        process = run_command("live", "--file", CLIP, "--weights", bundle, "--backbone-weights", inception_weights,
                              "--runtime", runtime, "--no-display", "--max-frames", "40", "--jsonl", jsonl,
                              "--jsonl-probs")
        assert process.returncode == 0, process.stderr
        runs[runtime] = np.array([record["probs"] for record in read_jsonl(jsonl)])
    assert runs["openvino-int8"].shape == runs["litert"].shape == (40, 3)
    np.testing.assert_allclose(runs["openvino-int8"], runs["litert"], atol=0.02)


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


def test_offline_prediction_with_int8_keeps_its_own_feature_cache(quantized, inception_weights, cache_dir):
    bundle = quantized[0]
    first_windows = {}
    for runtime in ("openvino-int8", "litert"):
        process = run_command("train", "predict", "--weights", bundle, "--backbone-weights", inception_weights,
                              "--runtime", runtime, "--json", CLIP)
        assert process.returncode == 0, process.stderr
        first_windows[runtime] = json.loads(process.stdout)["first_window"]["probs"]
    np.testing.assert_allclose(first_windows["openvino-int8"], first_windows["litert"], atol=0.02)
    keys = [folder.name for folder in (cache_dir / "features").iterdir() if folder.name.startswith("inception_v3")]
    assert any("openvino-int8-" in key for key in keys) and any("openvino" not in key for key in keys)


def test_without_openvino_installed_the_user_is_told_what_to_install(quantized):
    hide_openvino = ("import sys; sys.modules['openvino'] = None; sys.argv = ['live'] + sys.argv[1:]; "
                     "from live.cli import main; main()")
    process = run_command(sys.executable, "-c", hide_openvino, "--file", CLIP, "--weights", quantized[0],
                          "--runtime", "openvino-int8", "--no-display", "--max-frames", "5")
    assert_clean_error(process, "needs OpenVINO", "pip install openvino")
