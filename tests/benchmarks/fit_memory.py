"""Benchmark: `fit`'s peak memory and time per epoch on 1x and 8x the clips, streaming windows
from the feature cache (this checkout) against fit as it was before it streamed (commit
fd0d783, read from git), in one run; and fit's own cost per sampled frame.

Run:  python tests/benchmarks/fit_memory.py [--clips 200] [--scale 8] [--epochs 2]

The cache is synthesised in the layout README's "The feature cache" documents, as features
made elsewhere would be brought in: class folders of placeholder clip files (a few bytes each:
nothing is decoded), one float16 entry of MoViNet-A0-Stream's 600 features for each (2 s at
5 fps: 10 frames, a class's mean plus noise) and the index. Each fit runs in a fresh process
(peak RSS is a process's high-water mark) as the fit before streaming ran: gru, no speed
augmentation, no refit. Time per epoch is the mean of the epochs after the first (the first
includes tracing). Also checks that the
held-out split and the validation windows are the old fit's. Writes bench-results/fit_memory.json.
Not a test: it measures.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "fd0d783"  # the last commit whose fit held every window in memory
BACKBONE, FRAMES, CLASSES = "movinet_a0_stream", 10, 10
KINETICS_FRAMES = 545_000 * 10 * 5  # Kinetics-700's training clips, 10 s each at MoViNet's 5 fps


def make_cache(folder, clips):
    """`clips` placeholder files in class folders, and their cache entries and index records."""
    sys.path.insert(0, str(ROOT))
    from live.backbones import get_backbone
    from training.config import FeatureConfig
    from training.features import CacheIndex, FeatureCache, clip_key, load_embedder

    data, root = folder / "data", folder / "cache"
    _, frame_path = load_embedder(FeatureConfig(BACKBONE, frame_rate=get_backbone(BACKBONE).frame_rate,
                                                cache_root=str(root)))
    index = CacheIndex(root)
    cache = FeatureCache(frame_path, root, index)
    rng = np.random.default_rng(0)
    means = rng.normal(size=(CLASSES, 600))
    for number in range(clips):
        label = f"class{number % CLASSES}"
        path = data / label / f"clip{number:05d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"placeholder {number}\n".encode())
        features = (means[number % CLASSES] + rng.normal(size=(FRAMES, 600))).astype(np.float16)
        np.save(cache.entry_file(path), features, allow_pickle=False)
        index.note_frames(path, cache.frame_path_key, FRAMES)
        index.update(path, label=label, group=f"{label}/clip{number:05d}", split=None,
                     dataset=clip_key(data), layout="class folders")
    index.save()
    return data, root


def old_fit_module():
    """fit.py and windows.py as they were at BEFORE, imported beside today's modules."""
    def source(path):
        return subprocess.run(["git", "show", f"{BEFORE}:{path}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout

    windows = types.ModuleType("training.windows_before")
    exec(compile(source("training/windows.py"), "windows_before.py", "exec"), windows.__dict__)
    sys.modules[windows.__name__] = windows
    fit = types.ModuleType("training.fit_before")
    code = source("training/fit.py").replace("from training.windows import", "from training.windows_before import")
    exec(compile(code, "fit_before.py", "exec"), fit.__dict__)
    return fit


def run_fit(variant, data, cache, epochs, out):
    """In this (child) process: one fit; prints a JSON line of its peak RSS and epoch times."""
    import resource

    sys.path.insert(0, str(ROOT))
    from live.quiet import keras
    from training.config import DatasetConfig, FeatureConfig, FitConfig

    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    original_fit = keras.Model.fit

    def timed_fit(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, EpochTimer()], **kwargs)

    keras.Model.fit = timed_fit
    if variant == "before":
        fit = old_fit_module().fit
    else:
        from training.fit import fit
    # One head, no speed augmentation: the fit BEFORE made (gru, windows as they are).
    config = FitConfig(out=out, dataset=DatasetConfig(data), epochs=epochs, progress=False, force=True,
                       model_kind="gru", augment=False, refit=False,
                       features=FeatureConfig(BACKBONE, cache_root=cache))
    started = time.perf_counter()
    report = fit(config)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "epoch_s": epoch_seconds, "total_s": time.perf_counter() - started,
                      # (fit's report changed since: steps, not epochs of windows; no validation split)
                      "train_windows": report["dataset"].get("train_windows", report.get("steps")),
                      "dataset": report["dataset"], "val_loss": report.get("history", {}).get("val_loss"),
                      "test_accuracy": report["test"]["all_windows"]["accuracy"]}))


def validation_windows_match(data, cache):
    """Whether today's fit draws the old fit's validation windows (same seed, same split)."""
    sys.path.insert(0, str(ROOT))
    from training.config import DatasetConfig
    from training.datasets import grouped_split
    from training.features import CacheIndex, ClipFeatures, clip_key
    from training.windows import WindowBatches

    fit_clips, val_clips = grouped_split(DatasetConfig(data).load().train, 0.2, 0)  # fit's defaults
    index = CacheIndex(cache)
    folder = next(p for p in Path(cache).iterdir() if p.is_dir())
    features = ClipFeatures({str(c.path): folder / f"{index.records[clip_key(c.path)]['key']}.npy"
                             for c in fit_clips + val_clips}, 600)
    fit_paths, val_paths = [str(c.path) for c in fit_clips], [str(c.path) for c in val_clips]
    before, rng = old_fit_module(), np.random.default_rng(0)
    before.training_windows([features[p] for p in fit_paths], 20, 24, rng)
    old_x, old_mask, _ = before.training_windows([features[p] for p in val_paths], 20, 12, rng)
    rng = np.random.default_rng(0)
    WindowBatches(features, fit_paths, [0] * len(fit_paths), 20, 24, 64, rng, 0)
    val = WindowBatches(features, val_paths, [0] * len(val_paths), 20, 12, 64, rng, 0, redraw=False)
    new_x = np.concatenate([val[i][0][0] for i in range(len(val))])
    new_mask = np.concatenate([val[i][0][1] for i in range(len(val))])
    return bool(np.array_equal(old_x, new_x) and np.array_equal(old_mask, new_mask))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--scale", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    # "before" (fit as of fd0d783, read from git) no longer imports against today's live/: --variants streamed
    parser.add_argument("--variants", default="before,streamed")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "DATA", "CACHE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, data, cache, out = args.child
        return run_fit(variant, data, cache, args.epochs, out)

    results = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder:
        for clips in (args.clips, args.clips * args.scale):
            data, cache = make_cache(Path(folder) / str(clips), clips)
            if clips == args.clips and "before" in args.variants.split(","):  # the old fit runs only with it
                results["validation_windows_equal_before"] = validation_windows_match(data, cache)
            for variant in args.variants.split(","):
                process = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs), "--child", variant,
                                          str(data), str(cache), str(Path(folder) / f"out-{variant}-{clips}")],
                                         capture_output=True, text=True, env=env)
                if process.returncode != 0:
                    raise SystemExit(process.stderr[-3000:])
                result = json.loads(process.stdout.strip().splitlines()[-1])
                results[f"{variant}, {clips} clips"] = result
                later = result["epoch_s"][1:] or result["epoch_s"]
                print(f"{variant:9} {clips:5} clips: peak RSS {result['peak_rss_mb']:7.0f} MB, "
                      f"{np.mean(later):6.1f} s an epoch ({result['train_windows']} windows), "
                      f"test accuracy {result['test_accuracy']:.3f}", flush=True)
    for variant in args.variants.split(","):
        small, large = results[f"{variant}, {args.clips} clips"], results[f"{variant}, {args.clips * args.scale} clips"]
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        window_s = np.mean(large["epoch_s"][1:] or large["epoch_s"]) / (large["train_windows"] or float("nan"))
        results[f"{variant}, memory ratio"] = ratio
        # A window is 20 sampled frames; fit's own cost per sampled frame an epoch:
        results[f"{variant}, ms per window"] = window_s * 1000
        print(f"{variant}: peak RSS {args.scale}x/1x = {ratio:.2f}; {window_s * 1e3:.2f} ms a training window; "
              f"Kinetics-700 ({KINETICS_FRAMES / 1e6:.0f}M sampled frames, 24 windows a clip): "
              f"{545_000 * 24 * window_s / 3600:.1f} h an epoch on one machine like this")
    if "validation_windows_equal_before" in results:
        print(f"validation windows equal the old fit's: {results['validation_windows_equal_before']}")
    variants = args.variants.split(",")
    for clips in (args.clips, args.clips * args.scale):
        splits = {json.dumps(results[f"{variant}, {clips} clips"]["dataset"], sort_keys=True) for variant in variants}
        print(f"{clips} clips: the same split and window counts in every variant: {len(splits) == 1}")
    results["machine"] = platform.platform()
    out = ROOT / "bench-results" / "fit_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
