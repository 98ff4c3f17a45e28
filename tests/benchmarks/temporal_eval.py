"""Benchmark: does a sequence model tell time order apart in scenes it never saw?

Run:  python tests/benchmarks/temporal_eval.py [--models gru,motion,reference] [--seeds 0,1,2] [--shuffle-frames]
          [--variants 3x,2x,hard] [--folds 0,1,2,3]

Makes the temporal task of tests/temporal_clips.py (fade, focus, saturation and zoom, each
forwards and backwards: 8 classes, 4 time-reversal pairs) in several variants, and for each
split of the photos into training and held-out test photos (4 folds; fold 0 holds out the
photos the clips were tuned on; the test suite's fit is the run 3x, fold 1, gru, seed 0) trains
every model kind with `train fit`'s own fit() and EfficientNet-Lite0 (real ImageNet weights,
offline). It prints the within-pair accuracy on the
held-out photos' clips (is the true class more probable than its time reversal?) per pair, per
seed and per fold, and writes bench-results/temporal_eval.json with every test clip's result.
Not a test: it measures.

Each pair is scored twice: over all held-out clips, and without the saturation clips of the
greyscale photos (basketball1, box_in_scene, left01). Saturating a grey picture changes nothing,
so their saturate and desaturate clips are the same still picture and one of the two is always
wrong, whatever the model. Training still sees every clip. Photos with faint colour (cards,
sudoku, pic3) stay in both scores.

Each variant's clips are written once into a pool (every photo, as many clips as any split
needs); a split links the first clips of each photo into train/ or test/, so a clip is the
same file in every split and its features are extracted once (LIVE_CACHE_DIR caches them).
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import temporal_clips  # noqa: E402
from live.quiet import keras  # noqa: E402
from live.bundle import load_bundle  # noqa: E402
from live.runtimes import compiled_call  # noqa: E402
from training.config import FeatureConfig, FitConfig  # noqa: E402
from training.datasets import Clip  # noqa: E402
from training.fit import fit, prepare_features  # noqa: E402
from training.windows import window  # noqa: E402

BACKBONE = "efficientnet_lite0"
SEQ_LEN = 20
# A saturation clip whose ends differ in mean HSV saturation by less than GREY (of 255) is made
# from a greyscale photo: those measure 0.0-0.1, the faintest colour (cards) 6.5 or more. (The
# saturation of a single frame won't do: MJPG's chroma noise gives grey frames 5-7.)
GREY = 1.0
SATURATION = "saturate/desaturate"
# zoom: ranges of the wide and the tight end of a zoom clip, as shares of the crop's side.
VARIANTS = {
    "3x": dict(zoom=((1.0, 1.0), (1 / 3, 1 / 3)), train=3, test=2, data_seed=0),   # the test suite's clips
    "2x": dict(zoom=((1.0, 1.0), (0.5, 0.5)), train=3, test=2, data_seed=1),       # a gentler zoom
    "hard": dict(zoom=((0.85, 1.0), (0.2, 0.3)), train=3, test=4, data_seed=7),    # stronger, uneven zoom
}
FOLDS = temporal_clips.FOLDS


def make_pool(root, variant):
    """root/train/<class>/<photo>__<n>.avi for every photo, max(train, test) clips each."""
    spec = VARIANTS[variant]
    pool = Path(root) / f"pool-{variant}"
    if not (pool / ".complete").exists():
        temporal_clips.make_dataset(pool, clips_per_photo=max(spec["train"], spec["test"]),
                                    seed=spec["data_seed"], test_photos=(), zoom=spec["zoom"])
        (pool / ".complete").touch()
    return pool


def make_split(pool, root, variant, fold):
    """A split-folders dataset of links into the pool: held-out photos under test/."""
    spec = VARIANTS[variant]
    split = Path(root) / f"{variant}-fold{fold}"
    if split.exists():
        return split
    return temporal_clips.split_pool(pool, split, FOLDS[fold], spec["train"], spec["test"])


def pool_features(pool):
    """Features of every clip in the pool, by resolved path (extracted once, then cached)."""
    clips = [Clip(path, path.parent.name, path.stem) for path in sorted((pool / "train").glob("*/*.avi"))]
    features, skipped, _, _ = prepare_features(clips, FeatureConfig(BACKBONE), progress=True)
    assert not skipped, skipped
    return {str(Path(path).resolve()): value for path, value in features.items()}


def saturation_changes(pool):
    """{"saturate|desaturate/<photo>__<n>": how much the mean HSV saturation differs between
    the clip's first and last frame} for every saturation clip in the pool."""
    changes = {}
    for path in sorted(path for label in SATURATION.split("/") for path in (pool / "train" / label).glob("*.avi")):
        capture = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
        first, last = (float(cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)[..., 1].mean())
                       for frame in (frames[0], frames[-1]))
        changes[f"{path.parent.name}/{path.stem}"] = abs(first - last)
    return changes


def pair_name(label):
    return next(f"{a}/{b}" for a, b in temporal_clips.PAIRS if label in (a, b))


def held_out_results(bundle_dir, split, features):
    """One record per test clip of the split: is its class more probable than its time reversal
    (first window)? With its pair."""
    bundle = load_bundle(bundle_dir)
    head = compiled_call(bundle.model)
    labels = bundle.labels
    clips = sorted((split / "test").glob("*/*.avi"))
    windows = [window(features[str(clip.resolve())], 0, SEQ_LEN, SEQ_LEN) for clip in clips]
    probs = head(np.stack([w[0] for w in windows]), np.stack([w[1] for w in windows]))
    records = []
    for clip, p in zip(clips, probs):
        label = clip.parent.name
        records.append(dict(clip=f"{label}/{clip.stem}", pair=pair_name(label),
                            win=bool(p[labels.index(label)] > p[labels.index(temporal_clips.TWIN[label])])))
    return records


def scores(records, saturation_change, without_grey):
    """({pair: within-pair accuracy}, accuracy over all pairs) of a run's clip records;
    `without_grey` leaves out the saturation clips of greyscale photos."""
    kept = [r for r in records
            if not (without_grey and r["pair"] == SATURATION and saturation_change[r["clip"]] < GREY)]
    pairs = [f"{a}/{b}" for a, b in temporal_clips.PAIRS]
    per_pair = {p: float(np.mean([r["win"] for r in kept if r["pair"] == p])) for p in pairs}
    return per_pair, float(np.mean([r["win"] for r in kept]))


def print_report(results, models, saturation_change, without_grey):
    """Per run and per model: within-pair accuracy per pair, the mean, the worst run."""
    pairs = [f"{a}/{b}" for a, b in temporal_clips.PAIRS]
    scored = [(r, *scores(r["clips"], saturation_change[r["variant"]], without_grey)) if "clips" in r
              else (r, r["pairs"], r["mean"]) for r in results]
    which = "without the greyscale photos' saturation clips" if without_grey else "all clips"
    print(f"\nwithin-pair accuracy on held-out photos (first window), {which}")
    print(f"{'variant':7} {'fold':4} {'model':9} {'seed':4} {'mean':>5}  " + "  ".join(f"{p:>20}" for p in pairs))
    for r, per_pair, mean in scored:
        print(f"{r['variant']:7} {r['fold']:<4} {r['model']:9} {r['seed']:<4} {mean:5.3f}  "
              + "  ".join(f"{per_pair[p]:20.2f}" for p in pairs))
    print(f"summary per model, {which}: mean, worst run, worst pair in any run, runs with every pair >= 0.70")
    for model in models:
        rows = [(r, per_pair, mean) for r, per_pair, mean in scored if r["model"] == model]
        if not rows:
            continue
        means = [mean for _, _, mean in rows]
        worst_pairs = [min(per_pair.values()) for _, per_pair, _ in rows]
        print(f"{model:9} mean {np.mean(means):.3f}  worst run {min(means):.3f}  worst pair {min(worst_pairs):.2f}  "
              f"all pairs >= 0.70 in {sum(w >= 0.70 for w in worst_pairs)}/{len(rows)} runs  "
              f"runs >= 0.85: {sum(m >= 0.85 for m in means)}/{len(rows)}")
        for variant in dict.fromkeys(r["variant"] for r, _, _ in rows):
            sub = [(per_pair, mean) for r, per_pair, mean in rows if r["variant"] == variant]
            print(f"  {variant:5} {len(sub):2} runs  mean {np.mean([m for _, m in sub]):.3f}  "
                  + "  ".join(f"{p} {np.mean([pp[p] for pp, _ in sub]):.2f} ({min(pp[p] for pp, _ in sub):.2f})"
                              for p in pairs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gru,motion,reference")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--folds", default=",".join(str(i) for i in range(len(FOLDS))))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "temporal-eval"),
                        help="Where the clips are written (kept for reruns).")
    parser.add_argument("--shuffle-frames", action="store_true",
                        help="The ablation: train on windows whose frames are shuffled (runs named MODEL+shuffled); "
                             "a head that reads order should fall to chance, 0.5 within a pair.")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "temporal_eval.json"),
                        help="Results, rewritten after every run; runs already in it are not repeated.")
    args = parser.parse_args()
    kinds = args.models.split(",")
    suffix = "+shuffled" if args.shuffle_frames else ""
    models = [kind + suffix for kind in kinds]  # the runs' names in the results
    seeds = [int(s) for s in args.seeds.split(",")]
    folds = [int(f) for f in args.folds.split(",")]
    variants = args.variants.split(",")
    work = Path(args.work)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def key(row):
        return row["variant"], row["fold"], row["model"], row["seed"]

    # Each run takes minutes on a small CPU: keep what earlier invocations measured.
    done = {key(r): r for r in (json.loads(out.read_text()) if out.exists() else [])}
    saturation_change = {}  # per variant: {clip: its saturation change}
    for variant in variants:
        pool = make_pool(work, variant)
        features = None
        saturation_change[variant] = saturation_changes(pool)
        for fold in folds:
            split = make_split(pool, work, variant, fold)
            for kind, model in zip(kinds, models):
                for seed in seeds:
                    if (variant, fold, model, seed) in done:
                        continue
                    features = features or pool_features(pool)
                    started = time.perf_counter()
                    with tempfile.TemporaryDirectory() as folder:
                        report = fit(FitConfig.from_options(data=split, out=Path(folder) / "bundle",
                                                            backbone=BACKBONE, seed=seed, model_kind=kind,
                                                            augment=False, refit=False,  # as the README's runs
                                                            shuffle_frames=args.shuffle_frames, progress=False))
                        records = held_out_results(Path(folder) / "bundle", split, features)
                    keras.backend.clear_session()
                    per_pair, mean = scores(records, saturation_change[variant], without_grey=False)
                    row = dict(variant=variant, fold=fold, model=model, seed=seed, mean=mean, pairs=per_pair,
                               clips=records, best_epoch=report.get("best_epoch"),  # None: trained by steps
                               seconds=round(time.perf_counter() - started, 1))
                    done[key(row)] = row
                    out.write_text(json.dumps(list(done.values()), indent=1) + "\n")
                    print(f"{variant:5} fold {fold} {model:9} seed {seed}: {mean:.3f}  "
                          + "  ".join(f"{v:.2f}" for v in per_pair.values())
                          + f"  ({row['seconds']} s)", file=sys.stderr, flush=True)

    results = sorted((r for r in done.values() if r["variant"] in variants and r["fold"] in folds
                      and r["model"] in models and r["seed"] in seeds),
                     key=lambda r: (variants.index(r["variant"]), r["fold"], models.index(r["model"]), r["seed"]))
    print_report(results, models, saturation_change, without_grey=False)
    with_clips = [r for r in results if "clips" in r]
    if len(with_clips) < len(results):
        print(f"\n{len(results) - len(with_clips)} runs from an older version of this script have no per-clip "
              "results and are left out below; delete them from the results file to repeat them")
    print_report(with_clips, models, saturation_change, without_grey=True)
    print(f"\nresults in {out}")


if __name__ == "__main__":
    main()
