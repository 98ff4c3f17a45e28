"""Benchmark: `train extract` frames/s, local against Ray with 1 and 2 workers, and what that
means for a Kinetics-700-scale dataset.

Run:  python tests/benchmarks/extraction.py [--segments 10] [--backbone efficientnet_lite0]

Cuts the shared clips into short clips (`train demo-data`), then runs `train extract` on them
with a fresh cache for each engine, as a user would, and reads the rates it prints: overall
(wall clock from the first clip handed out, start-up excluded for Ray) and per worker (its
busy time). Prints one table with ratios to local and the estimate in hours for N machines
like this one. Writes bench-results/extraction.json. Not a test: it measures.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIPS = sorted((ROOT.parent / "shared" / "clips").glob("*.*"))
KINETICS_FRAMES = 650_000 * 20  # Kinetics-700 scale: about 650,000 clips, 20 sampled frames each
RUNS = {"local": [], "ray, 1 worker": ["--engine", "ray", "--workers", "1"],
        "ray, 2 workers": ["--engine", "ray", "--workers", "2"]}


def run(data, cache, backbone, extra):
    process = subprocess.run(["train", "extract", "--data", str(data), "--backbone", backbone, "--cache", str(cache),
                              "--quiet", *extra], capture_output=True, text=True)
    if process.returncode != 0:
        raise SystemExit(process.stderr)
    overall = re.search(r"extracted (\d+) frames .* \(([\d.]+) frames/s overall", process.stderr)
    workers = [float(rate) for rate in re.findall(r"([\d.]+) frames/s busy", process.stderr)]
    return {"frames": int(overall.group(1)), "overall_fps": float(overall.group(2)), "worker_fps": workers}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10, help="Clips cut from each shared clip.")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "extraction.json"))
    args = parser.parse_args()
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               "backbone": args.backbone, "runs": {}}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        subprocess.run(["train", "demo-data", *map(str, CLIPS), "--to", str(data), "--segments", str(args.segments)],
                       check=True, capture_output=True)
        for name, extra in RUNS.items():
            results["runs"][name] = run(data, Path(folder) / name.replace(" ", "").replace(",", "-"),
                                        args.backbone, extra)
    local = results["runs"]["local"]["overall_fps"]
    print(f"machine: {results['machine']}; backbone {args.backbone}, "
          f"{results['runs']['local']['frames']} frames from {len(CLIPS) * args.segments} clips")
    print(f"{'engine':<16}{'frames/s':>10}{'x local':>9}  per worker (busy)")
    for name, run_result in results["runs"].items():
        workers = ", ".join(f"{rate:.1f}" for rate in run_result["worker_fps"])
        print(f"{name:<16}{run_result['overall_fps']:>10.1f}{run_result['overall_fps'] / local:>9.2f}  {workers}")
    per_machine = results["runs"]["ray, 2 workers"]["overall_fps"]
    results["kinetics_hours"] = {n: round(KINETICS_FRAMES / (per_machine * n) / 3600, 1) for n in (1, 10, 50, 100)}
    print(f"\nKinetics-700 scale ({KINETICS_FRAMES / 1e6:.0f}M sampled frames) at {per_machine:.1f} frames/s "
          f"per machine like this one (2 workers): "
          + ", ".join(f"{n} machines {hours} h" for n, hours in results["kinetics_hours"].items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
