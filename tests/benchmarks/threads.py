"""Benchmark: N threads sharing one classifier, one stream each, against the same N streams
one after another on one thread and side by side in one call, per frame.

Run:  python tests/benchmarks/threads.py [--frames 150] [--threads 2]
          [--backbones efficientnet_lite0,movinet_a0_stream]

The classifiers are streams.py's (every frame embedded). Threads start together behind a
barrier; their time runs from the barrier to the last one's last frame. The runtimes lend each
thread's call an interpreter of its own (live/lender.py), so threads overlap where the cores
allow; on 2 cores XNNPACK already keeps both busy for an image backbone at batch 1, while
MoViNet's interpreters run on one thread each. Not a test: it asserts nothing, it measures.
"""
import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams import ROOT, build_classifier  # noqa: E402
from bench import source_frames  # noqa: E402
from live.pipeline import classify_streams, warm_up  # noqa: E402
from live.sources import Feed, FrameIterable  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from conftest import CLIPS as DATA_CLIPS  # noqa: E402  the data folder (../shared, or $LIVE_TEST_DATA)

CLIPS = [DATA_CLIPS / name
         for name in ("arm_wrestling.mp4", "pool_cleaning.mp4", "basketball.mp4", "flipping_pancake.mkv")]


def run_streams(classifier, numbers, frames):
    """Classify streams `numbers` (clips, in turn) side by side in one call, `frames` frames each."""
    feeds = [Feed(FrameIterable(source_frames(CLIPS[number % len(CLIPS)], frames)), f"stream {number}")
             for number in numbers]
    results = sum(1 for _ in classify_streams(classifier, feeds))
    assert results == len(numbers) * frames, f"{results} results for {len(numbers)} streams of {frames} frames"


def in_threads(classifier, count, frames):
    """Seconds for `count` threads, one stream of `frames` frames each, released together."""
    barrier, finished = threading.Barrier(count + 1), []

    def work(number):
        barrier.wait()
        run_streams(classifier, [number], frames)
        finished.append(time.perf_counter())

    threads = [threading.Thread(target=work, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return max(finished) - started


def one_after_another(classifier, count, frames):
    started = time.perf_counter()
    for number in range(count):
        run_streams(classifier, [number], frames)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="Frames per stream.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbones", default="efficientnet_lite0,movinet_a0_stream")
    args = parser.parse_args()
    count, frames = args.threads, args.frames
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f}; {count} streams of {frames} frames, every frame embedded; ms per frame")
    print(f"{'backbone':<20}{'one after another':>19}{'threads':>9}{'x':>6}{'side by side':>14}{'x':>6}")
    for name in args.backbones.split(","):
        with tempfile.TemporaryDirectory() as folder:
            classifier = build_classifier(name, folder)
            warm_up(classifier)
            in_threads(classifier, count, 30)  # each thread's interpreters made before timing
            run_streams(classifier, range(count), 30)
            total = count * frames / 1000
            serial = one_after_another(classifier, count, frames) / total
            threaded = in_threads(classifier, count, frames) / total
            started = time.perf_counter()
            run_streams(classifier, range(count), frames)
            side_by_side = (time.perf_counter() - started) / total
            print(f"{name:<20}{serial:>19.2f}{threaded:>9.2f}{threaded / serial:>6.2f}"
                  f"{side_by_side:>14.2f}{side_by_side / serial:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
