"""`train extract`: the feature cache filled here or by Ray workers on a local cluster, equal to
each other, resumable after Ctrl-C, and read by `fit` without extracting again."""
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIPS, assert_clean_error, run_command, wait_for

pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.real_data]  # every test here starts live or train, or fits a model
LITE0 = ["--backbone", "efficientnet_lite0"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Three real actions cut into 3 clips each, plus one empty and one garbage file: enough
    clips for two workers to share and for a run to be stopped part-way, and half the
    extraction of 6 a class."""
    folder = tmp_path_factory.mktemp("extract-data")
    process = run_command("train", "demo-data", CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4",
                          CLIPS / "basketball.mp4", "--to", folder, "--segments", 3)
    assert process.returncode == 0, process.stderr
    (folder / "arm_wrestling" / "empty.avi").write_bytes(b"")
    (folder / "cleaning_pool" / "garbage.mp4").write_text("not a video\n" * 50)
    return folder


def entries(cache):
    """The cache's entries; a temporary file (a dotfile, `.host.pid.token.tmp.NAME.npy`) is not one."""
    return {path.name: np.load(path) for path in Path(cache).rglob("*.npy") if not path.name.startswith(".")}


def test_ray_extraction_resumes_and_equals_local(small_data, tmp_path):
    ray_cache, local_cache = tmp_path / "ray", tmp_path / "local"
    command = ["train", "extract", "--data", str(small_data), *LITE0, "--cache", str(ray_cache),
               "--engine", "ray", "--workers", "2", "--quiet"]
    # Ctrl-C part-way: only complete entries are left, and no worker is left running.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list(ray_cache.rglob("*.npy"))) >= 2 or process.poll() is not None, 240)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    interrupted = entries(ray_cache)
    # Complete entries only. A worker stopped mid-write may leave its temporary file, which no
    # reader takes for an entry; every entry must load whole.
    assert interrupted and all(entry.ndim == 2 and entry.shape[1] == 1280 for entry in interrupted.values())

    process = run_command(*command)  # the rerun resumes
    assert process.returncode == 0, process.stderr
    assert f"{len(interrupted)} of 11 clips were already in the cache" in process.stderr
    workers = [line for line in process.stderr.splitlines() if line.strip().startswith("worker ")]
    assert len(workers) == 2, process.stderr  # a summary for each worker
    skipped = {Path(line.split("skipped ")[1].split(":")[0]).name for line in process.stderr.splitlines()
               if line.strip().startswith("skipped ")}
    assert skipped == {"empty.avi", "garbage.mp4"}, process.stderr  # bad clips listed, as in fit

    process = run_command("train", "extract", "--data", small_data, *LITE0, "--cache", local_cache, "--quiet")
    assert process.returncode == 0, process.stderr
    ray_entries, local_entries = entries(ray_cache), entries(local_cache)
    assert set(ray_entries) == set(local_entries) and len(local_entries) == 9
    assert max(np.abs(ray_entries[k] - local_entries[k]).max() for k in local_entries) <= 1e-5

    # fit reads the cache extract filled: nothing is extracted again.
    out = tmp_path / "bundle"
    process = run_command("train", "fit", "--data", small_data, "--out", out, *LITE0, "--cache", ray_cache,
                          "--epochs", 2, "--model", "gru", "--no-refit", "--quiet")
    assert process.returncode == 0, process.stderr
    assert json.loads((out / "report.json").read_text())["timings"]["frames_extracted"] == 0


def test_ray_engine_without_ray_says_what_to_install(small_data, tmp_path):
    # sys.modules["ray"] = None makes `import ray` fail as it does where Ray isn't installed.
    code = ("import sys; sys.modules['ray'] = None; from training.cli import main; "
            "sys.argv = ['train'] + sys.argv[1:]; main()")
    process = subprocess.run([sys.executable, "-c", code, "extract", "--data", str(small_data), *LITE0,
                              "--cache", str(tmp_path / "c"), "--engine", "ray"],
                             capture_output=True, text=True, timeout=300)
    assert_clean_error(process, "pip install", "distributed")


def test_local_engine_refuses_ray_options(small_data, tmp_path):
    process = run_command("train", "extract", "--data", small_data, *LITE0, "--cache", tmp_path / "c",
                          "--workers", 3)
    assert_clean_error(process, "--engine ray")


def test_a_worker_killed_mid_run_loses_nothing(small_data, tmp_path):
    cache = tmp_path / "cache"
    process = subprocess.Popen(["train", "extract", "--data", str(small_data), *LITE0, "--cache", str(cache),
                                "--engine", "ray", "--workers", "2", "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(list(cache.rglob("*.npy"))) >= 2 or process.poll() is not None, 240)
        workers = subprocess.run(["pgrep", "-f", "ray::ClipExtractor"], capture_output=True, text=True).stdout.split()
        assert workers, "no Ray worker found"
        subprocess.run(["kill", "-9", workers[0]], check=True)  # as a crash in native code would end it
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "a worker died" in stderr and "(died)" in stderr, stderr  # said, and in the worker summaries
    # Its clips went to the other workers: every good clip is in the cache, only the bad two skipped.
    assert len(entries(cache)) == 9, stderr
    skipped = [line for line in stderr.splitlines() if line.strip().startswith("skipped ")]
    assert len(skipped) == 2, stderr
