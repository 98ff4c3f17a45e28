"""Benchmark: a new user's first model, as the README tells it: two actions recorded with
`train record --file` from four clips of other people (two sessions a class, each a source clip
cut into 2 clips of 2 s), `train fit` with its default options, then `train predict` on clips of
people it never saw (the other groups of ../shared/ucf11_dev). Each seed draws other sessions.

Run:  LIVE_MODELS=../shared/models python tests/benchmarks/recorded_clips.py [--seeds 0,1,2]
          [--pairs golf_swing,tennis_swing basketball,walking ...] [--test-clips 7] [--json out.json]
          [-- more train fit options]

Prints, per action pair and seed, the unseen clips named right, the head `fit` kept and the last
line `fit` printed; then, per pair and over all of them, the worst, mean and best. Runs the real
commands as subprocesses. Not a test: it measures.
"""
import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "ucf11_dev"
PAIRS = ("golf_swing,tennis_swing", "basketball,walking", "basketball,tennis_swing", "golf_swing,walking")


def run(*command):
    process = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if process.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{process.stderr[-2000:]}")
    return process


def one_seed(seed, actions, test_clips, extra_fit_options):
    rng = np.random.default_rng(seed)
    with open(DATA / "manifest.csv") as file:
        rows = list(csv.DictReader(file))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        tests = []
        for action in actions:
            long_enough = [row for row in rows if row["class"] == action and float(row["duration_s"]) >= 4.5]
            groups = sorted({row["group"] for row in long_enough})
            sessions = list(rng.choice(groups, 2, replace=False))
            for session in sessions:
                source = rng.choice([row["file"] for row in long_enough if row["group"] == session])
                run("train", "record", folder / "data", "--label", action, "--file", DATA / action / source,
                    "--clips", 2, "--seconds", 2, "--session", f"g{session}", "--no-window")
            unseen = [DATA / action / row["file"] for row in rows if row["class"] == action
                      and row["group"] not in sessions]
            tests += [(path, action) for path in rng.choice(unseen, test_clips, replace=False)]
        started = time.perf_counter()
        fitted = run("train", "fit", "--data", folder / "data", "--out", folder / "bundle", "--seed", seed,
                     "--quiet", *extra_fit_options)
        seconds = time.perf_counter() - started
        manifest = json.loads((folder / "bundle" / "manifest.json").read_text())
        predicted = run("train", "predict", "--weights", folder / "bundle", "--json", *[path for path, _ in tests])
        results = [json.loads(line) for line in predicted.stdout.splitlines()]
        right = sum(result["all_windows"]["label"] == action for result, (_, action) in zip(results, tests))
        return {"actions": actions, "seed": seed, "right": right, "of": len(tests), "head": manifest["model"],
                "selection": manifest["model_selection"]["by"], "fit_s": round(seconds, 1),
                "last_line": fitted.stderr.strip().splitlines()[-1]}


def spread(results):
    scores = [r["right"] for r in results]
    return f"worst {min(scores)}, mean {np.mean(scores):.1f}, best {max(scores)} of {results[0]['of']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), help="action pairs, each as A,B")
    parser.add_argument("--test-clips", type=int, default=7, help="unseen clips a class")
    parser.add_argument("--json", type=Path)
    parser.add_argument("fit_options", nargs="*", help="more `train fit` options, after --")
    options = parser.parse_args()
    results = []
    for pair in options.pairs:
        for seed in options.seeds.split(","):
            result = one_seed(int(seed), pair.split(","), options.test_clips, options.fit_options)
            results.append(result)
            print(f"{pair}, seed {result['seed']}: {result['right']} of {result['of']} unseen clips right "
                  f"({result['head']}, {result['selection']}, {result['fit_s']} s); fit said: {result['last_line']}",
                  flush=True)
    for pair in options.pairs:
        print(f"{pair}: {spread([r for r in results if r['actions'] == pair.split(',')])}")
    print(f"all pairs: {spread(results)}")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
