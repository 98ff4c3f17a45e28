"""What reading the trainer found, each checked on real files: the held-out split recorded in the
bundle and reused by `train evaluate`, the frame rate a bundle records, the cache's identity of
a video, the min-frames rule for cached clips, and preprocessing in the backbone fingerprint."""
import json
import shutil

import pytest

from conftest import CLIPS, run_command

pytestmark = pytest.mark.slow  # every test here starts live or train, or fits a model

LITE0 = ("--backbone", "efficientnet_lite0")


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    """Class folders cut from three shared clips: <class>/<clip>__partN.avi, 6 parts each."""
    data = tmp_path_factory.mktemp("class-folders")
    process = run_command("train", "demo-data", CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4",
                          CLIPS / "basketball.mp4", "--to", data, "--segments", 6)
    assert process.returncode == 0, process.stderr
    return data


@pytest.fixture(scope="module")
def seeded_bundle(class_folders, tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("seeded") / "bundle"
    process = run_command("train", "fit", "--data", class_folders, "--out", out, *LITE0, "--seed", 3,
                          "--epochs", 3, "--quiet")
    assert process.returncode == 0, process.stderr
    return out


def test_evaluate_scores_the_models_own_test_clips(seeded_bundle, class_folders):
    """A model fit with --seed 3 is scored on the clips that seed held out, not on the split the
    default seed would make (which overlaps its training clips)."""
    manifest = json.loads((seeded_bundle / "manifest.json").read_text())
    recorded = manifest["split"]
    assert recorded["seed"] == 3 and recorded["layout"] == "class folders"
    process = run_command("train", "evaluate", "--weights", seeded_bundle, "--data", class_folders, "--json")
    assert process.returncode == 0, process.stderr
    evaluated = json.loads(process.stdout)["clips"]
    assert sorted(evaluated) == sorted(recorded["test_clips"])
    from training.datasets import dataset_relative, load_dataset

    seed3 = load_dataset(class_folders, seed=3)  # the split `train fit --seed 3` trained on
    assert not {dataset_relative(c.path, class_folders) for c in seed3.train} & set(evaluated)
    process = run_command("train", "evaluate", "--weights", seeded_bundle, "--data", class_folders, "--json",
                          "--seed", 0)
    assert process.returncode == 0, process.stderr
    resplit = json.loads(process.stdout)["clips"]
    assert sorted(resplit) != sorted(evaluated)  # seed 0 holds out other clips: the old behaviour


def test_bundle_records_the_training_clips_frame_rate(seeded_bundle):
    # The three clips run at 28, 30 and 29.97 fps: the median is recorded, and live samples at it.
    assert json.loads((seeded_bundle / "manifest.json").read_text())["frame_rate"] == pytest.approx(29.97, abs=0.01)


def test_video_identity_sees_every_byte_of_a_small_file(tmp_path):
    from training.features import video_identity

    data = bytearray(CLIPS.joinpath("pool_cleaning.mp4").read_bytes())  # 1.3 MiB
    assert (1 << 20) < len(data) < (2 << 20)
    original = tmp_path / "a.mp4"
    original.write_bytes(data)
    data[(1 << 20) + 1000] ^= 0xFF  # past the first MiB and before the last one: in neither
    changed = tmp_path / "b.mp4"
    changed.write_bytes(data)
    assert video_identity(original) != video_identity(changed)


def test_cached_clips_obey_min_frames(class_folders, tmp_path, cache_dir):
    """A clip too short to train on is skipped on the second run too, when it comes from the cache."""
    data = tmp_path / "data"
    shutil.copytree(class_folders, data)
    short = data / "arm_wrestling" / "short.avi"
    from conftest import write_clip
    import cv2

    capture = cv2.VideoCapture(str(CLIPS / "arm_wrestling.mp4"))
    write_clip(short, [capture.read()[1] for _ in range(3)], fps=28)
    reports = []
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        process = run_command("train", "fit", "--data", data, "--out", out, *LITE0, "--epochs", 2, "--quiet")
        assert process.returncode == 0, process.stderr
        reports.append(json.loads((out / "report.json").read_text()))
    for report in reports:
        assert [s["video"] for s in report["skipped"]] == [str(short)]
        assert "too short" in report["skipped"][0]["reason"]


def test_fingerprint_covers_the_preprocessing_layer(cache_dir):
    """Features depend on the Rescaling inside the backbone: changing it changes the fingerprint,
    and so the feature-cache key and the bundle check."""
    import live  # noqa: F401
    from live.backbones import fingerprint, load_backbone_model
    from live.quiet import keras

    model = load_backbone_model("efficientnet_lite0")
    before = fingerprint(model)
    layer = next(l for l in model._flatten_layers() if isinstance(l, keras.layers.Rescaling))
    layer.scale = layer.scale * 2
    assert fingerprint(model) != before
