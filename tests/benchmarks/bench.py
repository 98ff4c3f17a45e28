"""Benchmark: live per-frame latency, training extraction throughput, memory and start-up.

Run:  python tests/benchmarks/bench.py [--frames 150] [--backbones inception_v3,efficientnet_lite0]
Prints tables with ratios side by side and writes bench-results/bench.json. Not a test: it
asserts nothing, it measures. InceptionV3 runs with random weights (ImageNet weights can't
be downloaded here); speed doesn't depend on the weight values.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT.parent / "shared" / "clips"
sys.path.insert(0, str(ROOT))

import live  # noqa: E402,F401
from live.backbones import fingerprint, get_backbone, load_backbone_model  # noqa: E402
from live.buffer import EmbeddingBuffer  # noqa: E402
from live.bundle import Bundle  # noqa: E402
from live.frames import to_model_input  # noqa: E402
from live.pipeline import Classifier, classify, warm_up  # noqa: E402
from live.quiet import keras  # noqa: E402
from live.render import OverlayRenderer  # noqa: E402
from live.runtimes import RUNTIMES, OpenVINOModel, make_embedder, make_head  # noqa: E402
from live.sources import FileSource  # noqa: E402
from training.features import FeatureCache, FramePath, extract_features  # noqa: E402
from training.model import build_sequence_model  # noqa: E402
from training.quantize import int8_backbone_files  # noqa: E402

SEQ_LEN = 20
LIVE_CLIP = CLIPS / "arm_wrestling.mp4"
EXTRACT_CLIPS = [CLIPS / "eye_makeup_320x240.avi", CLIPS / "basketball.mp4"]


def rss_mb(field="VmRSS"):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def stats(values_ms):
    values = np.asarray(values_ms)
    return {"median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95)),
            "fps": float(1000 / np.mean(values))}


def source_frames(clip, count):
    """`count` frames of a clip, replayed in a loop when the clip is shorter."""
    produced = 0
    while produced < count:
        source = FileSource(clip)
        for frame in source.frames():
            frame.index = produced
            yield frame
            produced += 1
            if produced >= count:
                break
        source.close()


def reference_live(backbone_model, head, frames):
    """The Keras example's way: predict() on the backbone per frame, predict() on the GRU per step."""
    size = backbone_model.input_shape[1]
    buffer = EmbeddingBuffer(SEQ_LEN, backbone_model.output_shape[-1])
    steps = {"read": [], "preprocess": [], "embed": [], "head": [], "total": []}
    iterator = source_frames(LIVE_CLIP, frames)
    while True:
        started = time.perf_counter()
        frame = next(iterator, None)
        if frame is None:
            break
        read = time.perf_counter()
        image = to_model_input(frame.image, size)[None].astype(np.float32)
        prepared = time.perf_counter()
        buffer.append(backbone_model.predict(image, verbose=0)[0])
        embedded = time.perf_counter()
        head.predict([buffer.features, buffer.mask], verbose=0)
        done = time.perf_counter()
        for key, (a, b) in {"read": (started, read), "preprocess": (read, prepared), "embed": (prepared, embedded),
                            "head": (embedded, done), "total": (started, done)}.items():
            steps[key].append((b - a) * 1000)
    return steps


def our_live(classifier, frames, draw=True):
    """Our pipeline, as `live --file … --no-display --output` runs it: classify() and the renderer."""
    renderer = OverlayRenderer()
    steps = {"read": [], "preprocess": [], "embed": [], "head": [], "draw": [], "total": []}
    status = {"source_fps": 25.0, "model_fps": 25.0, "model_ms": 0.0}
    last = time.perf_counter()
    for result in classify(classifier, source_frames(LIVE_CLIP, frames)):
        drawn = time.perf_counter()
        if draw:
            renderer.draw(result.frame.image, result, status)
        now = time.perf_counter()
        for key in ("read", "preprocess", "embed", "head"):
            steps[key].append(result.timings[key])
        steps["draw"].append((now - drawn) * 1000)
        steps["total"].append((now - last) * 1000)
        last = now
    return steps


def even_frames(clip, count, size):
    frames = [to_model_input(frame.image, size) for frame in FileSource(clip).frames()]
    return np.stack([frames[i] for i in np.linspace(0, len(frames) - 1, count).astype(int)])


def int8_embedder(model, weights_fingerprint, size, folder):
    """What `train quantize` adds to a bundle: calibrated on the extraction clips, checked on
    frames of the live clip."""
    calibration = np.concatenate([even_frames(clip, 64, size) for clip in EXTRACT_CLIPS])
    folder.mkdir(parents=True, exist_ok=True)
    xml, drift = int8_backbone_files(model, weights_fingerprint, calibration, even_frames(LIVE_CLIP, 32, size),
                                     folder)
    return OpenVINOModel(xml), drift


def bare_call(embedder, size, batch, repeats):
    images = np.random.default_rng(0).integers(0, 255, (batch, size, size, 3), dtype=np.uint8)
    embedder(images)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        embedder(images)
        times.append((time.perf_counter() - started) * 1000 / batch)
    return float(np.median(times))


def reference_extraction(backbone_model, clips):
    """prepare_all_videos: decode every frame of a clip, then predict() frame by frame."""
    size = backbone_model.input_shape[1]
    frames, started = 0, time.perf_counter()
    for clip in clips:
        source = FileSource(clip)
        video = np.stack([to_model_input(f.image, size) for f in source.frames()]).astype(np.float32)
        for image in video:
            backbone_model.predict(image[None], verbose=0)
            frames += 1
    return frames / (time.perf_counter() - started)


def startup(bundle_path, env):
    """Seconds from starting `live` to its first JSONL record."""
    started = time.perf_counter()
    process = subprocess.Popen(["live", "--file", str(LIVE_CLIP), "--weights", str(bundle_path), "--jsonl", "-",
                                "--no-display", "--max-frames", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env={**os.environ, **env})
    process.stdout.readline()
    first = time.perf_counter() - started
    process.wait()
    return first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="Frames per live measurement.")
    parser.add_argument("--backbones", default="inception_v3,efficientnet_lite0")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES) if keras.backend.backend() == "tensorflow" else "keras")
    parser.add_argument("--memory-frames", type=int, default=5000)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "bench.json"))
    args = parser.parse_args()
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.platform()}", "keras_backend": keras.backend.backend(), "backbones": {}}
    print(f"machine: {results['machine']}; Keras backend {results['keras_backend']}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    for name in args.backbones.split(","):
        backbone = get_backbone(name)
        keras.utils.set_random_seed(0)  # the same random InceptionV3 each run, so its LiteRT files are reused
        model = load_backbone_model(name, "random" if name == "inception_v3" else None)
        weights_fingerprint = fingerprint(model)
        head = build_sequence_model("motion", SEQ_LEN, backbone.feature_size, 5)
        reference_head = build_sequence_model("reference", SEQ_LEN, backbone.feature_size, 5)
        entry = results["backbones"][name] = {"runtimes": {}}
        print(f"\n== {name} ({'random' if name == 'inception_v3' else 'ImageNet'} weights), "
              f"{args.frames} frames of {LIVE_CLIP.name}")
        reference = reference_live(model, reference_head, args.frames)
        entry["reference_live"] = {k: stats(v) for k, v in reference.items()}
        ref_fps = entry["reference_live"]["total"]["fps"]
        print(f"{'path':<28}{'median ms':>10}{'p95 ms':>8}{'fps':>7}  {'read':>5} {'prep':>5} {'embed':>6} "
              f"{'head':>5} {'draw':>5}  {'b/a fps':>7} {'b/c ms':>6}")

        def row(label, s, steps, ratio_a="", ratio_c=""):
            parts = " ".join(f"{np.median(steps[k]):{w}.1f}" if k in steps else " " * w
                             for k, w in (("read", 5), ("preprocess", 5), ("embed", 6), ("head", 5), ("draw", 5)))
            print(f"{label:<28}{s['median_ms']:>10.1f}{s['p95_ms']:>8.1f}{s['fps']:>7.1f}  {parts}  "
                  f"{ratio_a:>7} {ratio_c:>6}")

        row("(a) reference predict()", entry["reference_live"]["total"], reference)
        embedders = {}
        for runtime in args.runtimes.split(","):
            if runtime == "openvino-int8":
                embedder, drift = int8_embedder(model, weights_fingerprint, backbone.image_size, workdir / name)
                entry["openvino_int8_drift"] = drift
                print(f"{'':<28}(openvino-int8 features vs fp32: cosine min {drift['cosine_min']}, "
                      f"mean {drift['cosine_mean']} on {drift['frames']} frames)")
            else:
                embedder = make_embedder(model, weights_fingerprint, runtime)
            bundle = Bundle(workdir, head, [str(i) for i in range(5)],
                            {"seq_len": SEQ_LEN, "frame_step": 1, "frame_rate": None,
                             "feature_size": backbone.feature_size})
            classifier = Classifier(bundle, embedder, make_head(head, fingerprint(head), runtime), backbone.image_size)
            warm_up(classifier)
            ours = our_live(classifier, args.frames)
            floor = bare_call(embedder, backbone.image_size, 1, 30)
            ours_stats = {k: stats(v) for k, v in ours.items()}
            embedders[runtime] = embedder
            entry["runtimes"][runtime] = {"live": ours_stats, "bare_batch1_ms": floor,
                                          "bare_batch32_ms_per_frame": bare_call(embedder, backbone.image_size, 32, 3)}
            entry["runtimes"][runtime]["ratio_b_over_a_fps"] = ours_stats["total"]["fps"] / ref_fps
            entry["runtimes"][runtime]["ratio_b_over_c_ms"] = ours_stats["total"]["median_ms"] / floor
            row(f"(b) live, {runtime}", ours_stats["total"], ours,
                f"{ours_stats['total']['fps'] / ref_fps:.2f}x", f"{ours_stats['total']['median_ms'] / floor:.2f}")
            print(f"{'(c) bare call, ' + runtime:<28}{floor:>10.1f}")

        # Training extraction: the reference's loop, ours (cold cache), the bare batched call.
        fastest = min(entry["runtimes"], key=lambda r: entry["runtimes"][r]["bare_batch32_ms_per_frame"])
        reference_fps = reference_extraction(model, EXTRACT_CLIPS)
        embedder = embedders[fastest]
        frame_path = FramePath(name, weights_fingerprint, backbone.image_size, 1, None, embedder.numerics)
        _, _, timing = extract_features([str(c) for c in EXTRACT_CLIPS], embedder, frame_path,
                                        FeatureCache(frame_path, workdir / f"features-{name}"), progress=False)
        ours_fps = timing["frames"] / timing["seconds"]
        bare_fps = 1000 / entry["runtimes"][fastest]["bare_batch32_ms_per_frame"]
        entry["extraction"] = {"runtime": fastest, "reference_fps": reference_fps, "ours_fps": ours_fps,
                               "bare_batched_fps": bare_fps}
        print(f"extraction ({fastest}): reference {reference_fps:.1f} fps, ours {ours_fps:.1f} fps "
              f"({ours_fps / reference_fps:.1f}x), bare batched {bare_fps:.1f} fps "
              f"(ours per frame = {bare_fps / ours_fps:.2f}x bare)")

    # Memory: a long looped replay through the fastest runtime of the last backbone.
    runtime = min(entry["runtimes"], key=lambda r: entry["runtimes"][r]["live"]["total"]["median_ms"])
    embedder = embedders[runtime]
    classifier = Classifier(bundle, embedder, make_head(head, fingerprint(head), runtime), backbone.image_size)
    marks = {}
    for result in classify(classifier, source_frames(LIVE_CLIP, args.memory_frames)):
        count = result.frame.index + 1
        if count in (1000, args.memory_frames):
            marks[count] = rss_mb()
    growth = (marks[args.memory_frames] - marks[1000]) / ((args.memory_frames - 1000) / 1000)
    results["memory"] = {"backbone": name, "runtime": runtime, "rss_mb_at": marks,
                         "growth_mb_per_1000_frames": growth, "peak_rss_mb": rss_mb("VmHWM")}
    print(f"\nmemory ({name}, {runtime}): RSS {marks[1000]:.0f} MB after 1,000 frames, "
          f"{marks[args.memory_frames]:.0f} MB after {args.memory_frames:,}: {growth:+.2f} MB per 1,000 frames; "
          f"peak RSS {results['memory']['peak_rss_mb']:.0f} MB")

    # Start-up of the real command, with the shipped bundle: cold (empty cache) and warm.
    cold_cache = workdir / "cold-cache"
    default = ROOT / "weights" / "default"
    cold = startup(default, {"LIVE_CACHE_DIR": str(cold_cache)})
    warm = startup(default, {"LIVE_CACHE_DIR": str(cold_cache)})
    results["startup_s"] = {"cold_cache": cold, "warm_cache": warm}
    print(f"start-up to first classified frame (live, shipped bundle): cold cache {cold:.1f} s, warm {warm:.1f} s")

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
