"""Hardening: a closed stdout pipe, memory that stays flat on a day-long run, thread counts from
the CPUs this process may use, and a bundle that tries to smuggle code through a Lambda layer."""
import json
import shutil
import subprocess
import sys
import tracemalloc

import numpy as np

from conftest import CLIPS, assert_clean_error, run_command


def test_jsonl_to_a_closed_pipe_ends_quietly(lite_bundle):
    """`live --jsonl - | head -n 1`: the reader leaves after one line; live stops with exit 0
    and says nothing about the pipe."""
    command = (f"live --file {CLIPS / 'basketball.mp4'} --weights {lite_bundle} --jsonl - --no-display "
               "| head -n 1; exit ${PIPESTATUS[0]}")
    process = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert len(process.stdout.splitlines()) == 1 and json.loads(process.stdout)["frame"] == 0
    assert "error" not in process.stderr.lower() and "Exception" not in process.stderr, process.stderr


def test_run_summary_memory_stays_flat_over_200000_results():
    import live  # noqa: F401
    from live.outputs import RunSummary
    from live.pipeline import Result
    from live.sources import Frame

    rng = np.random.default_rng(0)
    latencies = rng.lognormal(mean=2.5, sigma=0.4, size=200_000)
    frame = Frame(0, 0.0, np.zeros((4, 4, 3), np.uint8), 0.0, 0.1)
    probs = np.array([0.7, 0.2, 0.1], np.float32)
    summary = RunSummary()

    def add(values):
        for value in values:
            summary.add(Result(frame, ["a", "b", "c"], 20, 20, probs, True,
                               {"read": 0.2, "embed": value / 2, "latency_ms": value}))

    add(latencies[:10_000])
    tracemalloc.start()
    add(latencies[10_000:])
    growth = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert growth < 64 * 1024, growth  # a list of every value would hold ~5 MB more
    text = summary.text(200_000, 100.0)
    median, p95 = (float(part.split()[-2]) for part in text.splitlines()[1].split(","))
    assert abs(median - np.median(latencies)) / np.median(latencies) < 0.02, text
    assert abs(p95 - np.percentile(latencies, 95)) / np.percentile(latencies, 95) < 0.02, text


def test_threads_follow_the_cpus_this_process_may_use(tmp_path):
    probe = "from live.cpus import usable_cpus; print(usable_cpus())"
    pinned = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", probe], capture_output=True, text=True)
    assert pinned.stdout.strip() == "1", pinned.stderr
    from live.cpus import cgroup_cpu_limit

    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a quota of 1.5 CPUs
    assert cgroup_cpu_limit(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_bundle_with_a_lambda_layer_is_refused(lite_bundle, tmp_path):
    """safe_mode refuses a Lambda layer (arbitrary code) in model.keras: one error line."""
    import live  # noqa: F401
    from live.quiet import keras

    bundle = tmp_path / "lambda"
    shutil.copytree(lite_bundle, bundle)
    features = keras.Input((20, 1280), name="features")
    mask = keras.Input((20,), dtype="bool", name="mask")
    pooled = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=1))(features)
    model = keras.Model([features, mask], keras.layers.Dense(3, activation="softmax")(pooled))
    model.save(bundle / "model.keras")
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", bundle, "--no-display")
    assert_clean_error(process, "model.keras does not load")
