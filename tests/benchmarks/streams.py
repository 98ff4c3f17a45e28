"""Benchmark: N streams in one `live` process against N separate processes, per frame.

Run:  python tests/benchmarks/streams.py [--frames 200] [--streams 1,2,4]
          [--backbones efficientnet_lite0,inception_v3,movinet_a0_stream]

Each stream replays a real clip (arm wrestling, pool, basketball, eye make-up) and every frame
goes through the backbone (frame_step 1, no frame-rate sampling), so the numbers are per
embedded frame: decode, crop, backbone, GRU. In one process the streams' frames of a turn go
through an image backbone as one batch, and through MoViNet on a pool of interpreters (see
MoViNetEmbedder.embed_streams). Separate processes are started, warmed up, and released
together; their time is from the release to the last one's last frame. InceptionV3 runs with random
weights (ImageNet's can't be downloaded here); speed doesn't depend on the weight values.
Prints one table with ratios to one stream alone and writes bench-results/streams.json.
Not a test: it asserts nothing, it measures.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIPS = [ROOT.parent / "shared" / "clips" / name
         for name in ("arm_wrestling.mp4", "pool_cleaning.mp4", "basketball.mp4", "eye_makeup_320x240.avi")]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import live  # noqa: E402,F401
from bench import source_frames  # noqa: E402
from live.backbones import fingerprint, get_backbone, load_backbone_model  # noqa: E402
from live.bundle import Bundle  # noqa: E402
from live.pipeline import Classifier, classify_streams, load_classifier, warm_up  # noqa: E402
from live.quiet import keras  # noqa: E402
from live.runtimes import make_head, make_embedder  # noqa: E402
from live.sources import Feed, FrameIterable  # noqa: E402

SEQ_LEN = 20


def build_classifier(name, workdir):
    """The classifier for a backbone with every frame sampled: the shipped Kinetics bundle for
    MoViNet, an untrained GRU head on the others."""
    if name == "movinet_a0_stream":
        classifier = load_classifier(ROOT / "weights" / "kinetics600", None)
        classifier.bundle.manifest.update(frame_step=1, frame_rate=None)
        return classifier
    from training.model import build_sequence_model

    backbone = get_backbone(name)
    keras.utils.set_random_seed(0)  # the same random InceptionV3 each run, so its LiteRT file is reused
    model = load_backbone_model(name, "random" if name == "inception_v3" else None)
    head = build_sequence_model("gru", SEQ_LEN, backbone.feature_size, 5)
    bundle = Bundle(Path(workdir), head, [str(i) for i in range(5)],
                    {"seq_len": SEQ_LEN, "frame_step": 1, "frame_rate": None, "feature_size": backbone.feature_size})
    return Classifier(bundle, make_embedder(model, fingerprint(model)), make_head(head, fingerprint(head)),
                      backbone.image_size)


def run_streams(classifier, count, frames):
    """Seconds for `count` streams of `frames` frames each, side by side in this process."""
    feeds = [Feed(FrameIterable(source_frames(CLIPS[i % len(CLIPS)], frames)), f"stream {i}") for i in range(count)]
    started = time.perf_counter()
    results = sum(1 for _ in classify_streams(classifier, feeds))
    assert results == count * frames
    return time.perf_counter() - started


def separate_processes(name, count, frames):
    """Seconds from releasing `count` warmed-up worker processes (one stream each) to the last done."""
    with tempfile.TemporaryDirectory() as folder:
        go = Path(folder) / "go"
        workers = [subprocess.Popen([sys.executable, __file__, "--worker", name, "--frames", str(frames),
                                     "--go", str(go)], stdout=subprocess.PIPE, text=True) for _ in range(count)]
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        released = time.perf_counter()
        go.touch()
        for worker in workers:  # "done", not the exit: a process's teardown is not frame work
            assert worker.stdout.readline().strip() == "done"
        finished = time.perf_counter()
        for worker in workers:
            worker.wait()
        return finished - released


def worker(name, frames, go):
    with tempfile.TemporaryDirectory() as folder:
        classifier = build_classifier(name, folder)
        warm_up(classifier)
        run_streams(classifier, 1, 30)  # the batch-of-1 interpreter planned, the clip in the page cache
        print("ready", flush=True)
        while not Path(go).exists():
            time.sleep(0.001)
        run_streams(classifier, 1, frames)
        print("done", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="Frames per stream.")
    parser.add_argument("--streams", default="1,2,4")
    parser.add_argument("--backbones", default="efficientnet_lite0,inception_v3,movinet_a0_stream")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "streams.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.frames, args.go)

    counts = [int(n) for n in args.streams.split(",")]
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               "frames_per_stream": args.frames, "backbones": {}}
    print(f"machine: {results['machine']}; {args.frames} frames per stream, every frame embedded")
    print(f"{'backbone':<20}{'streams':>8}{'one process ms/frame':>22}{'x of 1':>8}"
          f"{'separate processes ms/frame':>29}{'x of 1':>8}")
    for name in args.backbones.split(","):
        with tempfile.TemporaryDirectory() as folder:
            classifier = build_classifier(name, folder)
            warm_up(classifier)
            for count in counts:
                run_streams(classifier, count, 30)  # plan this batch size before timing it
            rows = results["backbones"][name] = {}
            for count in counts:
                together = run_streams(classifier, count, args.frames) / (count * args.frames) * 1000
                apart = separate_processes(name, count, args.frames) / (count * args.frames) * 1000
                rows[count] = {"one_process_ms": round(together, 3), "separate_processes_ms": round(apart, 3)}
                base = rows[counts[0]]
                print(f"{name:<20}{count:>8}{together:>22.2f}{together / base['one_process_ms']:>8.2f}"
                      f"{apart:>29.2f}{apart / base['one_process_ms']:>8.2f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
