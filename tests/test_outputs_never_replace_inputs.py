"""No output ever replaces an input or another output: `live` compares every output path with
every input and with each other, by identity (the same path written another way, a symbolic
link, a hard link), and refuses before anything is opened for writing."""
import hashlib
import os

import numpy as np
import pytest

from conftest import ROOT, assert_clean_error, run_command, write_clip

DEMO = ROOT / "weights" / "demo"  # a shipped bundle that needs nothing from the model store


@pytest.fixture
def clip(tmp_path):
    frames = [np.full((64, 80, 3), 10 * i, np.uint8) for i in range(10)]
    return write_clip(tmp_path / "clip.avi", frames)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("options, fragment", [
    (["--jsonl", "{clip}"], "--jsonl {clip} is the same file as --file {clip}"),
    (["--events", "{clip}"], "--events {clip} is the same file as --file {clip}"),
    (["--output", "{clip}"], "--output {clip} is the same file as --file {clip}"),
    (["--jsonl", "{dot}"], "is the same file as --file"),
    (["--jsonl", "{link}"], "--jsonl {link} is the same file as --file {clip}"),
    (["--events", "{hard}"], "--events {hard} is the same file as --file {clip}"),
])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(clip, tmp_path, options, fragment):
    (tmp_path / "link.avi").symlink_to(clip)
    os.link(clip, tmp_path / "hard.avi")
    names = {"clip": clip, "dot": f"{tmp_path}/./{clip.name}", "link": tmp_path / "link.avi",
             "hard": tmp_path / "hard.avi"}
    before = digest(clip)
    process = run_command("live", "--file", clip, "--weights", DEMO, "--no-display",
                          *[option.format(**names) for option in options])
    assert_clean_error(process, fragment.format(**names), "would destroy the input")
    assert process.returncode == 2
    assert digest(clip) == before


def test_two_outputs_in_one_file_are_refused(clip, tmp_path):
    process = run_command("live", "--file", clip, "--weights", DEMO, "--no-display",
                          "--jsonl", tmp_path / "out.jsonl", "--events", tmp_path / "out.jsonl")
    assert_clean_error(process, "would mix two outputs in one file")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_numbered_video_of_several_streams_may_not_be_an_input(clip, tmp_path):
    """With two streams --output out.avi writes out-1.avi and out-2.avi: the second is checked too."""
    second = write_clip(tmp_path / "out-2.avi", [np.zeros((64, 80, 3), np.uint8)] * 5)
    before = digest(second)
    process = run_command("live", "--file", clip, "--file", second, "--weights", DEMO, "--no-display",
                          "--output", tmp_path / "out.avi")
    assert_clean_error(process, f"--output {second} is the same file as --file {second}")
    assert digest(second) == before
