"""Benchmark: N real-time cameras in one `live` process (the default bundle, headless).

Run:  python tests/benchmarks/cameras.py [--streams 8,16,24,32] [--seconds 25]
          [--engines local,ray] [--workers 2] [--baseline DIR] [--out bench-results/cameras.json]

Each camera is a local ffmpeg serving a 640x480 H.264 clip at 25 fps in real time, looped, by
stream copy (`-re -stream_loop -1 ... -c copy`: the servers cost almost nothing), as HTTP
MPEG-TS. One `live --file URL ... --no-display --jsonl` process reads all N. Once every stream
has given results and `--settle` seconds more have passed, a window of `--seconds` is measured:

- frames classified, worst stream: results in the window over the 25 x seconds frames sent;
- sample points embedded, worst stream: sampled results over the 5 x seconds sample points
  (the bundle samples at 5 fps);
- p95 latency of the sampled frames, all streams together (from the frame's read to its result);
- the CPU of the process and every process under it (Ray's too, with --engine ray) over the
  window, in cores (of os.cpu_count()), and in milliseconds per sample point embedded;
- frames read per second, worst stream (below 25: the readers themselves fall behind, and the
  latency, measured from the read, no longer shows the wait in the socket);
- the summary's median time per step (read, preprocess, embed, gru), over the streams.

`--baseline DIR` runs the same measurement on another checkout of the code (e.g. today's main:
`git archive fd0d783 | tar -x -C /tmp/live-main`) right after, for the ratio in the same run.
Before the runs, the bare cost of decoding a frame of the clip with the same decoder (OpenCV's
FFmpeg: grab() only, and grab() plus the BGR conversion), one thread, is measured: the floor.
`--engines local,ray` measures each N with `live` alone and with `live --engine ray --workers
W` (a local Ray cluster started by that process: its actors run the same pipeline, the driver
the sinks), one after the other: the cluster's overhead on one machine.
Results are merged into the JSON file by N, code and engine, so N values can be run one at a time.
Not a test: it asserts nothing, it measures.
"""
import argparse
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CLIPS, free_port, listening, wait_for  # noqa: E402

CLIP = CLIPS / "basketball.mp4"
WEIGHTS = ROOT / "weights" / "kinetics600"
FPS, SAMPLE_FPS = 25, 5


def camera_clip(folder):
    """10 s of 640x480 H.264 at 25 fps, as an IP camera sends it (no B-frames, a key frame a second)."""
    clip = Path(folder) / "camera_640x480.mp4"
    clip.parent.mkdir(parents=True, exist_ok=True)
    if not clip.exists():
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(CLIP), "-t", "10",
                        "-vf", "scale=640:480,fps=25", "-an", "-c:v", "libx264", "-preset", "veryfast",
                        "-bf", "0", "-g", "25", "-pix_fmt", "yuv420p", str(clip)], check=True)
    return clip


def serve(clip, port):
    server = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                               "-c", "copy", "-an", "-f", "mpegts", "-listen", "1",
                               f"http://127.0.0.1:{port}/stream.ts"], stderr=subprocess.DEVNULL)
    if not wait_for(lambda: listening(port) or server.poll() is not None, 30) or server.poll() is not None:
        raise RuntimeError(f"ffmpeg did not listen on port {port}")
    return server


def bare_decode_ms(clip, frames=200):
    """Milliseconds per frame to decode the clip with OpenCV's FFmpeg on one thread: grab()
    alone, and grab() with the conversion to BGR (retrieve())."""
    import cv2

    costs = {}
    for name, convert in (("decode_ms", False), ("decode_and_convert_ms", True)) * 3:  # the least of 3
        capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        capture.grab()
        started = time.process_time()
        for _ in range(frames):
            capture.grab()
            if convert:
                capture.retrieve()
        cost = round((time.process_time() - started) * 1000 / frames, 3)
        costs[name] = min(costs.get(name, cost), cost)
        capture.release()
    return costs


def process_tree_cpu(pid):
    """{pid: CPU seconds} of `pid` and every process under it (a Ray driver's raylet and actors)."""
    children, own = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        number = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(number)
        own[number] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, todo = {}, [pid]
    while todo:
        number = todo.pop()
        tree[number] = own.get(number, 0.0)
        todo += children.get(number, [])
    return tree


def cpu_over(pid, seconds, every=0.5):
    """CPU seconds the process tree of `pid` used over the next `seconds`: each process's last
    reading less its first (0 for one that started meanwhile), read every `every` seconds, so a
    process that ends within the window (Ray's idle workers) still counts what it used."""
    first = process_tree_cpu(pid)
    last = dict(first)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        time.sleep(min(every, max(0.0, deadline - time.perf_counter())))
        last.update(process_tree_cpu(pid))
    return sum(value - first.get(number, 0.0) for number, value in last.items())


def lines(path):
    return path.read_text().splitlines()[:-1] if path.exists() else []  # the last may be half-written


def step_medians(stderr):
    """Median ms per step over the streams, from the closing summary's 'median per step' lines."""
    steps = {}
    for line in stderr.splitlines():
        if "median per step:" in line:
            for part in line.split(":", 1)[1].replace("(", ",").split(","):
                words = part.split()
                if len(words) >= 3 and words[2] == "ms":
                    steps.setdefault(words[0], []).append(float(words[1]))
    return {step: round(float(np.median(values)), 2) for step, values in steps.items()}


def measure(code, clip, count, seconds, settle, folder, engine="local", workers=2):
    """One `live` process on `count` fresh servers; the figures of the measured window."""
    ports = set()
    while len(ports) < count:  # free_port() may give a port twice
        ports.add(free_port())
    servers = [serve(clip, port) for port in ports]
    urls = [f"http://127.0.0.1:{port}/stream.ts" for port in ports]
    jsonl = Path(folder) / f"{count}-{Path(code).name}-{engine}.jsonl"
    command = [sys.executable, "-m", "live", *[arg for url in urls for arg in ("--file", url)],
               "--weights", str(WEIGHTS), "--no-display", "--jsonl", str(jsonl)]
    if engine == "ray":
        command += ["--engine", "ray", "--workers", str(workers)]
    process = subprocess.Popen(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = wait_for(lambda: process.poll() is not None or
                           len({json.loads(line)["stream"] for line in lines(jsonl)[-20 * count:]}) == count, 120)
        if process.poll() is not None or not started:
            process.kill()  # first: reading the stderr of a process still running waits for ever
            raise RuntimeError(f"live did not start on {count} streams: {process.communicate()[1][-2000:]}")
        time.sleep(settle)
        first, clock_first = len(lines(jsonl)), time.perf_counter()
        cpu = cpu_over(process.pid, seconds)
        last, clock_last = len(lines(jsonl)), time.perf_counter()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        for server in servers:
            server.kill()
    window = clock_last - clock_first
    records = [json.loads(line) for line in lines(jsonl)[first:last]]
    per_stream = {url: [r for r in records if r["stream"] == url] for url in urls}
    classified = [len(rs) / (FPS * window) for rs in per_stream.values()]
    embedded = [sum(r["sampled"] for r in rs) / (SAMPLE_FPS * window) for rs in per_stream.values()]
    read_fps = [(rs[-1]["frame"] - rs[0]["frame"] + 1) / window if rs else 0.0 for rs in per_stream.values()]
    latencies = [r["latency_ms"] for r in records if r["sampled"]]
    missed = [int(line.split("sample points missed")[1].split()[0].strip(",;"))
              for line in stderr.splitlines() if "sample points missed" in line]
    return {"streams": count, "window_s": round(window, 1),
            "classified_worst": round(min(classified), 3), "classified_mean": round(float(np.mean(classified)), 3),
            "embedded_worst": round(min(embedded), 3), "embedded_mean": round(float(np.mean(embedded)), 3),
            "p95_sampled_latency_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
            "median_sampled_latency_ms": round(float(np.median(latencies)), 1) if latencies else None,
            "cpu_cores": round(cpu / window, 2),
            "cpu_ms_per_sample_point": round(cpu * 1000 / max(1, sum(r["sampled"] for r in records)), 2),
            "engine": engine,
            "read_fps_worst": round(min(read_fps), 1),
            "step_median_ms": step_medians(stderr),
            "sample_points_missed": sum(missed) if missed else None}


def row(label, figures):
    p95 = figures["p95_sampled_latency_ms"]
    steps = ", ".join(f"{step} {ms}" for step, ms in figures["step_median_ms"].items())
    return (f"{label:<14}{figures['streams']:>8}{figures['classified_worst']:>11.0%}{figures['embedded_worst']:>11.0%}"
            f"{p95 if p95 is not None else float('nan'):>10.0f}{figures['cpu_cores']:>7.2f}"
            f"{figures['cpu_ms_per_sample_point']:>9.1f}"
            f"{figures['read_fps_worst']:>10.1f}   {steps}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="8,16,24,32", help="Numbers of cameras, one run each.")
    parser.add_argument("--seconds", type=float, default=25.0, help="The measured window per run.")
    parser.add_argument("--settle", type=float, default=5.0, help="Seconds after every stream's first result.")
    parser.add_argument("--baseline", metavar="DIR", help="Another checkout, measured the same way after this one.")
    parser.add_argument("--only", choices=("this", "baseline"), help="Measure one of the two codes only.")
    parser.add_argument("--engines", default="local", help="local, ray or both (local,ray): live --engine.")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors, with --engines ray.")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "cameras.json"))
    args = parser.parse_args()

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    codes = {"this": ROOT, **({"baseline": Path(args.baseline).resolve()} if args.baseline else {})}
    codes = {label: code for label, code in codes.items() if args.only in (None, label)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        clip = camera_clip(ROOT / "bench-results")
        floor = bare_decode_ms(clip)
        results.update(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                       clip="640x480 H.264 25 fps, no B-frames, GOP 25", floor=floor)
        print(f"machine: {results['machine']}; bare decode, one thread: {floor['decode_ms']} ms a frame, "
              f"{floor['decode_and_convert_ms']} ms with the conversion to BGR")
        print(f"{'code/engine':<14}{'streams':>8}{'classified':>11}{'embedded':>11}{'p95 ms':>10}{'cores':>7}"
              f"{'cpu ms':>9}"
              f"{'read fps':>10}   median ms per step")
        for count in [int(n) for n in args.streams.split(",")]:
            for (label, code), engine in itertools.product(codes.items(), args.engines.split(",")):
                run = (code, clip, count, args.seconds, args.settle, folder, engine, args.workers)
                try:
                    figures = measure(*run)
                except RuntimeError as exc:  # a server that did not answer in time, on a loaded machine
                    print(f"{label} {count}: {str(exc)[:200]}; once more", flush=True)
                    figures = measure(*run)
                key = label if engine == "local" else f"{label}/{engine}"
                results.setdefault(key, {})[str(count)] = {**figures, "code": str(code)}
                out.write_text(json.dumps(results, indent=2))  # after each: a run cut short keeps what it measured
                print(row(f"{label}/{engine}", figures), flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
