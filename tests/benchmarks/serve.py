"""Benchmark: what `live --serve` costs the classifier, with 0, 1 and 5 viewers.

Run:  python tests/benchmarks/serve.py [--seconds 15] [--viewers 0,1,5]

The default bundle (Kinetics-600) classifies the shipped arm-wrestling sample, looped, as fast
as the machine goes (`--fast`: the worst case for the server, since every classified frame is a
new picture for the viewers; a file played at its own pace or a camera gives them at most the
source's rate). Each setting runs for the same time in one process, through the Python API, with
no server, then with the server (live.web.WebSink) and N viewers: curl processes reading
/streams/1.mjpg?overlay=1 (every new frame, full size, with the overlay drawn: the cost the table
measures), as a browser's <img> does.
Prints one table: frames classified per second and its ratio to no server, the process's CPU
seconds per classified frame, and each viewer's bandwidth. Writes bench-results/serve.json.
Not a test: it asserts nothing, it measures.
"""
import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import live  # noqa: E402
from live.sources import open_source  # noqa: E402
from live.web import WebSink  # noqa: E402

SAMPLE = ROOT / "samples" / "arm_wrestling.mp4"


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(model, seconds, viewers):
    """(frames classified per second, CPU s per frame, bytes per second per viewer) over `seconds`,
    counted once the viewers are connected and have had a second to settle."""
    sink = WebSink(("127.0.0.1", 0), announce=lambda _: None) if viewers is not None else None
    source = open_source(file=str(SAMPLE), loop=True)
    results = model.stream(source, sinks=[sink] if sink else [])
    next(results)
    curls = [subprocess.Popen(["curl", "-sN", "-o", "/dev/null", "-w", "%{size_download}",
                               f"http://127.0.0.1:{sink.port}/streams/1.mjpg?overlay=1"], stdout=subprocess.PIPE, text=True)
             for _ in range(viewers or 0)]
    settle = time.perf_counter() + 1.0
    for _ in results:
        if time.perf_counter() >= settle:
            break
    frames, started, cpu = 0, time.perf_counter(), cpu_seconds()
    for _ in results:
        frames += 1
        if time.perf_counter() - started >= seconds:
            break
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    results.close()
    source.close()
    received = []
    for curl in curls:
        received.append(int(curl.communicate(timeout=30)[0] or 0))  # the server closed: curl ends
    per_viewer = sum(received) / len(received) / (elapsed + 1.0) if received else None
    return frames / elapsed, cpu / frames, per_viewer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--viewers", default="0,1,5")
    args = parser.parse_args()
    model = live.load()
    settings = [("no server", None)] + [(f"server, {n} viewer{'s' * (n != 1)}", n)
                                        for n in map(int, args.viewers.split(","))]
    rows = []
    for name, viewers in settings:
        fps, cpu_per_frame, bandwidth = measure(model, args.seconds, viewers)
        rows.append({"setting": name, "viewers": viewers, "fps": fps, "cpu_ms_per_frame": cpu_per_frame * 1000,
                     "viewer_kbytes_per_s": bandwidth / 1000 if bandwidth else None})
        print(f"{name}: {fps:.1f} fps", file=sys.stderr, flush=True)
    base = rows[0]["fps"]
    print(f"\n{platform.processor() or platform.machine()}, {args.seconds:.0f} s a setting, --fast\n")
    print("| setting | frames/s | ratio to no server | CPU ms a frame | each viewer |")
    print("|---|---|---|---|---|")
    for row in rows:
        bandwidth = f"{row['viewer_kbytes_per_s'] / 1000:.1f} MB/s" if row["viewer_kbytes_per_s"] else "-"
        print(f"| {row['setting']} | {row['fps']:.1f} | {row['fps'] / base:.3f} | {row['cpu_ms_per_frame']:.1f} | "
              f"{bandwidth} |")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "serve.json").write_text(json.dumps({"seconds": args.seconds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
