"""What `train` checks before TensorFlow loads (training/checks.py), as `live` does: mistyped
paths, a folder with no dataset layout, an --out that exists or would take the dataset's place,
missing clips, a missing bundle. Each is run as the real command in a Python where TensorFlow
and Keras cannot be imported, so an answer proves it came before them: one `error:` line, exit
2, nothing written; and the dataset, byte for byte, as it was."""
import hashlib
import shutil
import subprocess
import sys

import pytest

from conftest import CLIPS, KINETICS, assert_clean_error, run_command

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

# `train` as its console script runs it (training.cli.command), with TensorFlow and Keras marked
# absent: importing either fails at once.
WITHOUT_TENSORFLOW = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "
                      "from training.cli import command; sys.argv[0] = 'train'; command()")


def train_without_tensorflow(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def class_folders(folder):
    """A two-class dataset of real clips, in the class-folders layout."""
    for label, clip in (("cricket", "v_CricketShot_g04_c01_rgb.gif"), ("makeup", "eye_makeup_320x240.avi")):
        (folder / label).mkdir(parents=True)
        shutil.copy(CLIPS / clip, folder / label / clip)
    return folder


def contents(folder):
    """Every file under `folder` and the sha256 of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def no_layout(tmp):
    (tmp / "notes").mkdir()
    (tmp / "notes" / "readme.txt").write_text("no videos here\n")
    return tmp / "notes"


def one_class(tmp):
    data = class_folders(tmp / "data")
    shutil.rmtree(data / "makeup")
    return data


def existing_out(tmp):
    (tmp / "out").mkdir()
    return tmp / "out"


def a_clip_and_a_folder(tmp):
    (tmp / "clips").mkdir()
    return [tmp / "clips" / "missing.mp4", CLIPS / "arm_wrestling.mp4", tmp / "clips"]


MISTAKES = {
    "fit, --data missing": lambda tmp: (["fit", "--data", tmp / "no-such", "--out", tmp / "b"],
                                        f"dataset folder not found: {tmp / 'no-such'}"),
    "fit, no dataset layout": lambda tmp: (["fit", "--data", no_layout(tmp), "--out", tmp / "b"],
                                           f"no dataset layout found in {tmp / 'notes'}"),
    "fit, one class": lambda tmp: (["fit", "--data", one_class(tmp), "--out", tmp / "b"],
                                   "training needs at least two classes, found 1"),
    "fit, --out exists": lambda tmp: (["fit", "--data", class_folders(tmp / "data"), "--out", existing_out(tmp)],
                                      f"{tmp / 'out'} already exists; choose another --out or pass --force"),
    "fit, an empty cache without --data": lambda tmp: (["fit", "--cache", tmp / "cache", "--out", tmp / "b"],
                                                       "the feature cache's index records no labelled clips"),
    "fit, backbone weights missing": lambda tmp: (["fit", "--data", class_folders(tmp / "data"), "--out", tmp / "b",
                                                   "--backbone", "inception_v3", "--backbone-weights", tmp / "w.h5"],
                                                  f"backbone weights file not found: {tmp / 'w.h5'}"),
    "extract, --data missing": lambda tmp: (["extract", "--data", tmp / "no-such"],
                                            f"dataset folder not found: {tmp / 'no-such'}"),
    "extract, no dataset layout": lambda tmp: (["extract", "--data", no_layout(tmp)], "no dataset layout found in"),
    "evaluate, --data missing": lambda tmp: (["evaluate", "--weights", KINETICS, "--data", tmp / "no-such"],
                                             f"dataset folder not found: {tmp / 'no-such'}"),
    "evaluate, bundle missing": lambda tmp: (["evaluate", "--weights", tmp / "b", "--data",
                                              class_folders(tmp / "data")], f"no model bundle at {tmp / 'b'}"),
    "predict, a clip missing": lambda tmp: (["predict", "--weights", KINETICS, *a_clip_and_a_folder(tmp)],
                                            f"no such file: {tmp / 'clips' / 'missing.mp4'} (and 1 more of the "
                                            "clips given are not files)"),
    "predict, a folder for a clip": lambda tmp: (["predict", "--weights", KINETICS, CLIPS],
                                                 f"{CLIPS} is a folder; name the video files in it"),
    "predict, bundle missing": lambda tmp: (["predict", "--weights", tmp / "b", CLIPS / "arm_wrestling.mp4"],
                                            f"no model bundle at {tmp / 'b'}"),
    "quantize, a streaming bundle": lambda tmp: (["quantize", "--weights", KINETICS, "--data",
                                                  class_folders(tmp / "data")], "int8 copies of image backbones only"),
    "pretrained, labels missing": lambda tmp: (["pretrained", "--labels", tmp / "labels.txt", "--out", tmp / "b"],
                                               f"cannot read --labels {tmp / 'labels.txt'}"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_mistakes_are_answered_before_tensorflow_loads(mistake, tmp_path):
    args, expected = MISTAKES[mistake](tmp_path)
    before = contents(tmp_path)
    process = train_without_tensorflow(*args)
    assert_clean_error(process, expected)
    assert process.returncode == 2, process.stderr
    assert process.stdout == ""
    assert contents(tmp_path) == before  # nothing written: no bundle, no cache, no index


@pytest.mark.parametrize("out", ["the dataset", "the dataset, relative", "its parent", "a link to the dataset"])
@pytest.mark.parametrize("force", [True, False])
def test_fit_out_never_takes_the_dataset_place(out, force, tmp_path):
    """--out the dataset folder itself (as given, as ./data, through a symbolic link) or a folder
    holding it: with --force the bundle would replace the dataset, clips and all. Refused, naming
    both, before anything is read or written; the dataset unchanged to the byte."""
    data = class_folders(tmp_path / "data")
    (tmp_path / "link").symlink_to(data)
    given = {"the dataset": data, "the dataset, relative": "./data", "its parent": tmp_path,
             "a link to the dataset": tmp_path / "link"}[out]
    before = contents(data)
    process = train_without_tensorflow("fit", "--data", data, "--out", given, *(["--force"] if force else []),
                                       cwd=tmp_path)
    relation = "holds" if out == "its parent" else "is"
    assert_clean_error(process, f"--out {given} {relation} the dataset folder --data {data}")
    assert process.returncode == 2, process.stderr
    assert contents(data) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "link"]


@pytest.mark.slow
def test_fit_from_the_cache_alone_never_takes_the_dataset_place(tmp_path, cache_dir):
    """Without --data, the dataset is the one the feature cache's index records (filled here by a
    real `train extract`, on the default backbone, movinet_a0_stream): an --out holding it is
    refused all the same, before TensorFlow loads."""
    data = class_folders(tmp_path / "data")
    cache = tmp_path / "cache"
    process = run_command("train", "extract", "--data", data, "--cache", cache, "--quiet", timeout=600)
    assert process.returncode == 0, process.stderr
    assert [entry.name.split("-")[0] for entry in cache.iterdir() if entry.is_dir()] == ["movinet_a0_stream"]
    before = contents(data)
    process = train_without_tensorflow("fit", "--cache", cache, "--out", tmp_path, "--force")
    assert_clean_error(process, f"--out {tmp_path} holds the dataset folder --data {data}")
    assert process.returncode == 2, process.stderr
    assert contents(data) == before


def test_predict_missing_clip_through_the_installed_command(tmp_path):
    """The `train` console script itself: a mistyped clip is one error line and exit 2 (it was a
    warning and exit 1, after the model had loaded), and no clip is predicted."""
    process = run_command("train", "predict", "--weights", KINETICS, tmp_path / "clip.mpp4",
                          CLIPS / "v_CricketShot_g04_c01_rgb.gif", timeout=120)
    assert_clean_error(process, f"no such file: {tmp_path / 'clip.mpp4'}")
    assert process.returncode == 2 and process.stdout == "", process.stderr
    assert "warning" not in process.stderr


def test_the_checks_module_imports_no_keras():
    """training.checks runs before TensorFlow loads: importing it (and what it imports) must not
    bring Keras in."""
    process = subprocess.run([sys.executable, "-c", "import sys, training.checks, training.cli, training.record, "
                              "training.pretrained; print('keras' in sys.modules)"],
                             capture_output=True, text=True, timeout=120)
    assert process.stdout.strip() == "False", process.stderr
