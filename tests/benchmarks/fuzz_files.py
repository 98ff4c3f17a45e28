"""Fuzz `live --file` with damaged copies of the shared clips: each copy is truncated at a random
point or has random bytes flipped, and goes through the real command. Every run must end with
exit 0, 1 or 2, at most one `error:` line, no traceback, no crash (a signal) and no hang.

    python tests/benchmarks/fuzz_files.py [--count 200] [--seed 0] [--workers 2]

Prints the count of each outcome and lists any failure; exits 1 if there was one. The test
suite runs a small sample of it (tests/test_hardening.py).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT.parent / "shared" / "clips"
TIMEOUT_S = 180


def damaged_copy(source, folder, rng, number):
    data = bytearray(source.read_bytes())
    if rng.random() < 0.5:
        kind = "truncated"
        data = data[:int(rng.integers(1, len(data)))]
    else:
        kind = "flipped"
        for offset in rng.integers(0, len(data), size=int(rng.integers(1, 64))):
            data[offset] ^= int(rng.integers(1, 256))
    path = Path(folder) / f"{number:03d}-{kind}-{source.name}"
    path.write_bytes(bytes(data))
    return path, kind


def run_one(path, weights=None):
    command = ["live", "--file", str(path), "--no-display", "--jsonl", str(path) + ".jsonl"]
    if weights:
        command += ["--weights", str(weights)]
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "hang", ""
    errors = [line for line in process.stderr.splitlines() if line.startswith("error: ")]
    if process.returncode < 0:
        return f"crash (signal {-process.returncode})", process.stderr[-400:]
    if "Traceback" in process.stderr:
        return "traceback", process.stderr[-400:]
    if process.returncode not in (0, 1, 2) or len(errors) > 1:
        return f"bad exit {process.returncode} with {len(errors)} error lines", process.stderr[-400:]
    jsonl = Path(str(path) + ".jsonl")
    if jsonl.exists():  # what was written must parse, whatever happened
        try:
            [json.loads(line) for line in jsonl.read_text().splitlines()]
        except ValueError:
            return "unparseable jsonl", ""
    return f"exit {process.returncode}", ""


def fuzz(count=200, seed=0, workers=2, weights=None, folder=None, clips=CLIPS):
    """Damaged copies of the clips in `clips` (the shared ones by default). Returns (Counter of outcomes by kind of damage, [(file, outcome, stderr tail)] failures)."""
    rng = np.random.default_rng(seed)
    clips = sorted(path for path in Path(clips).iterdir() if path.name != "NOTICE")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        copies = [damaged_copy(clips[i % len(clips)], scratch, rng, i) for i in range(count)]
        with ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(lambda item: run_one(item[0], weights), copies))
    counts = Counter(f"{kind}: {outcome}" for (_, kind), (outcome, _) in zip(copies, outcomes))
    failures = [(path.name, outcome, tail) for (path, _), (outcome, tail) in zip(copies, outcomes)
                if not outcome.startswith("exit ")]
    return counts, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--weights", help="Bundle to run [default: live's default].")
    args = parser.parse_args()
    counts, failures = fuzz(args.count, args.seed, args.workers, args.weights)
    for outcome, number in sorted(counts.items()):
        print(f"{number:4d}  {outcome}")
    for name, outcome, tail in failures:
        print(f"FAILED {name}: {outcome}\n{tail}")
    print(f"{args.count - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
