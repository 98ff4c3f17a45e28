"""Mistakes caught early and reported as bad input (exit 2, one `error:` line naming the file and
what to do): a mistyped path, a missing folder, an absent camera are answered before TensorFlow
is even imported; wrong or damaged weights, cache entries and models, once found, are named
instead of surfacing as an unexpected exception (exit 3)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CLIPS, ROOT, assert_clean_error

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

CLIP = CLIPS / "arm_wrestling.mp4"


def live_without_model(tmp_path, *args):
    """`python -m live ARGS` with Python's import log on: returns the process and the modules it
    imported. LIVE_DEBUG keeps stderr open while Keras imports (live hides TensorFlow's
    start-up chatter, and with it the import log's lines)."""
    process = subprocess.run([sys.executable, "-X", "importtime", "-m", "live", "--no-display", *map(str, args)],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120,
                             env={**os.environ, "LIVE_DEBUG": "1"})
    imported = [line.split("|")[-1].strip() for line in process.stderr.splitlines() if line.startswith("import time:")]
    process.stderr = "\n".join(line for line in process.stderr.splitlines() if not line.startswith("import time:"))
    return process, imported


def not_a_video(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are not frames\n" * 100)
    return ["--file", tmp_path / "notes.mp4"], "notes.mp4 is not a video"


def existing_folder_as_events(tmp_path):
    return ["--file", CLIP, "--events", tmp_path], f"--events {tmp_path} is a folder"


MISTAKES = {
    "mistyped file": lambda tmp: (["--file", tmp / "clip.mpp4"], f"no such file: {tmp / 'clip.mpp4'}"),
    "not a video": not_a_video,
    "no camera": lambda tmp: (["--camera", 7], "camera 7 is not available"),
    "output folder missing": lambda tmp: (["--file", CLIP, "--output", tmp / "videos" / "out.mp4"],
                                          f"the folder {tmp / 'videos'} does not exist; create it"),
    # Several streams name their videos out-1.mp4, out-2.mp4: the folder is checked all the same.
    "output folder missing, two streams": lambda tmp: (["--file", CLIP, "--file", CLIP, "--output",
                                                         tmp / "no" / "out.mp4"], f"--output {tmp / 'no' / 'out.mp4'}"),
    "output extension": lambda tmp: (["--file", CLIP, "--output", tmp / "out.gif"], ".mp4, .mov, .m4v, .avi or .mkv"),
    "jsonl folder missing": lambda tmp: (["--file", CLIP, "--jsonl", tmp / "logs" / "frames.jsonl"],
                                         f"--jsonl {tmp / 'logs' / 'frames.jsonl'}: the folder"),
    "events is a folder": existing_folder_as_events,
    "bundle missing": lambda tmp: (["--file", CLIP, "--weights", tmp / "weights" / "mine"], "no model bundle at"),
    "backbone weights missing": lambda tmp: (["--file", CLIP, "--backbone-weights", tmp / "w.h5"],
                                             f"backbone weights file not found: {tmp / 'w.h5'}"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_mistake_is_reported_before_tensorflow_is_imported(mistake, tmp_path):
    args, expected = MISTAKES[mistake](tmp_path)
    process, imported = live_without_model(tmp_path, *args)
    assert process.returncode == 2, process.stderr
    assert_clean_error(process, expected)
    assert "live.cli" in imported  # the log is there, so an absence in it means something
    assert not [module for module in imported if module.split(".")[0] in ("tensorflow", "keras")]


def expect_user_error(call, *fragments):
    from live.errors import UserError

    with pytest.raises(UserError) as raised:
        call()
    assert raised.value.exit_code == 2
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("kind", ["text file", "damaged .weights.h5", "another model's .weights.h5"])
def test_backbone_weights_of_the_wrong_kind(kind, lite_bundle, inception_weights, tmp_path, recwarn):
    from live.pipeline import load_classifier

    if kind == "text file":
        weights = tmp_path / "weights.txt"
        weights.write_text("not weights\n")
    elif kind == "damaged .weights.h5":
        weights = tmp_path / "lite.weights.h5"
        weights.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))  # an HDF5 signature, then nothing valid
    else:
        weights = inception_weights
    expect_user_error(lambda: load_classifier(lite_bundle, None, str(weights)),
                      f"cannot read EfficientNet-Lite0 weights {weights}", "give")
    # Keras warns once per layer it cannot fill (hundreds of lines on stderr); the error says it all.
    skipped = [warning for warning in recwarn if warning.category is UserWarning and "saving" in warning.filename]
    assert not skipped, str(skipped[0].message)


def test_damaged_cache_entries_are_named(lite_bundle, cache_dir, tmp_path, monkeypatch):
    """A converted-weights entry and a LiteRT model in the cache, each cut short: the error names
    the entry and says it can be deleted."""
    from live.backbones import load_backbone_model
    from live.quiet import keras
    from live.runtimes import LiteRTModel, litert_file

    monkeypatch.setenv("LIVE_CACHE_DIR", str(tmp_path))  # the session's cache stays whole
    converted, = cache_dir.glob("efficientnet_lite0-*.weights.h5")
    (tmp_path / converted.name).write_bytes(converted.read_bytes()[:4096])
    expect_user_error(lambda: load_backbone_model("efficientnet_lite0"),
                      f"the cache entry {tmp_path / converted.name} is damaged", "delete it")

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="tiny")
    converted = litert_file(model, "key")
    converted.write_bytes(converted.read_bytes()[:100])
    expect_user_error(lambda: LiteRTModel(model, "key"), f"the cache entry {converted} is damaged", "delete it")


def test_bundle_model_with_another_number_of_inputs(lite_bundle, tmp_path):
    from live.bundle import load_bundle
    from live.quiet import keras

    bundle = shutil.copytree(lite_bundle, tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    features = keras.Input((manifest["seq_len"], manifest["feature_size"]))
    pooled = keras.layers.GlobalAveragePooling1D()(features)
    keras.Model(features, keras.layers.Dense(3, activation="softmax")(pooled)).save(bundle / "model.keras")
    expect_user_error(lambda: load_bundle(bundle), f"model bundle {bundle}", "takes 1 input(s)", "retrain it")


def test_quantize_refuses_a_streaming_backbone_bundle(tmp_path):
    from training.quantize import quantize

    bundle = shutil.copytree(ROOT / "weights" / "kinetics600", tmp_path / "kinetics600")
    before = sorted(path.name for path in bundle.iterdir())
    expect_user_error(lambda: quantize(bundle, tmp_path / "data"), f"model bundle {bundle} runs on movinet_a0_stream",
                      "int8 copies of image backbones only")
    assert sorted(path.name for path in bundle.iterdir()) == before


@pytest.mark.parametrize("command, expected, help_command", [
    (["live", "--file", str(CLIP), "--runtime", "tflite"], "Invalid value for '--runtime': 'tflite' is not one of", "live"),
    (["live", "--fiel", str(CLIP)], "No such option '--fiel'", "live"),
    (["train", "fit", "--data", "d", "--out", "o", "--epochs", "ten"], "Invalid value for '--epochs'", "train fit"),
    (["train", "fti"], "No such command 'fti'", "train"),
])
def test_command_line_mistakes_are_one_error_line(command, expected, help_command):
    """click's own usage errors (a value not among the choices, a misspelt option or command)
    read like every other mistake: one line naming the option and where help is, exit 2."""
    process = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert process.returncode == 2, process.stderr
    line = assert_clean_error(process, expected, f"see '{help_command} --help'")
    assert process.stderr.strip() == line  # no usage block, no second line
