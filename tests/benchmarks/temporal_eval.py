"""Benchmark: does a sequence model tell time order apart in scenes it never saw?

Run:  python tests/benchmarks/temporal_eval.py [--models gru,motion,reference] [--seeds 0,1,2]
          [--variants 3x,2x,hard] [--folds 0,1,2,3]

Makes the temporal task of tests/temporal_clips.py (fade, focus, saturation and zoom, each
forwards and backwards: 8 classes, 4 time-reversal pairs) in several variants, and for each
split of the photos into training and held-out test photos (4 folds; fold 0 holds out the
photos the test suite holds out) trains every model kind with `train fit`'s own fit() and
EfficientNet-Lite0 (real ImageNet weights, offline). It prints the within-pair accuracy on the
held-out photos' clips (is the true class more probable than its time reversal?) per pair, per
seed and per fold, and writes bench-results/temporal_eval.json. Not a test: it measures.

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

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import temporal_clips  # noqa: E402
from live.quiet import keras  # noqa: E402
from live.bundle import load_bundle  # noqa: E402
from live.runtimes import compiled_call  # noqa: E402
from training.datasets import Clip  # noqa: E402
from training.fit import fit, prepare_features  # noqa: E402
from training.windows import window  # noqa: E402

BACKBONE = "efficientnet_lite0"
SEQ_LEN = 20
# zoom: ranges of the wide and the tight end of a zoom clip, as shares of the crop's side.
VARIANTS = {
    "3x": dict(zoom=((1.0, 1.0), (1 / 3, 1 / 3)), train=3, test=2, data_seed=0),   # the test suite's clips
    "2x": dict(zoom=((1.0, 1.0), (0.5, 0.5)), train=3, test=2, data_seed=1),       # a gentler zoom
    "hard": dict(zoom=((0.85, 1.0), (0.2, 0.3)), train=3, test=4, data_seed=7),    # stronger, uneven zoom
}
# Held-out photos of each fold: fold 0 is the test suite's; the other 11 photos are dealt out
# so that each fold holds one grey photo (basketball1, box_in_scene, left01; cards is nearly
# grey). Saturating a grey photo changes nothing, so its saturate and desaturate clips are the
# same still picture and no model can tell them apart: with one per fold of 4 photos the
# saturation pair can reach at most 7/8 (5/6 in the fold of 3).
FOLDS = [
    list(temporal_clips.TEST_PHOTOS),
    ["apple", "basketball1", "messi5", "sudoku"],
    ["WindowsLogo", "box_in_scene", "chicky_512", "pic3"],
    ["aloeL", "butterfly", "left01"],
]


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
    for clip in sorted((pool / "train").glob("*/*.avi")):
        photo, n = clip.stem.split("__")
        side = "test" if photo in FOLDS[fold] else "train"
        if int(n) < spec[side]:
            target = split / side / clip.parent.name / clip.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(clip)
    return split


def pool_features(pool):
    """Features of every clip in the pool, by resolved path (extracted once, then cached)."""
    clips = [Clip(path, path.parent.name, path.stem) for path in sorted((pool / "train").glob("*/*.avi"))]
    features, skipped, _, _ = prepare_features(clips, BACKBONE, None, None, 1, None, progress=True)
    assert not skipped, skipped
    return {str(Path(path).resolve()): value for path, value in features.items()}


def within_pair(bundle_dir, split, features):
    """{pair name: accuracy} and the overall mean, on the split's test clips (first window)."""
    bundle = load_bundle(bundle_dir)
    head = compiled_call(bundle.model)
    labels = bundle.labels
    clips = sorted((split / "test").glob("*/*.avi"))
    windows = [window(features[str(clip.resolve())], 0, SEQ_LEN, SEQ_LEN) for clip in clips]
    probs = head(np.stack([w[0] for w in windows]), np.stack([w[1] for w in windows]))
    wins = {pair: [] for pair in temporal_clips.PAIRS}
    for clip, p in zip(clips, probs):
        label = clip.parent.name
        pair = next(pair for pair in temporal_clips.PAIRS if label in pair)
        wins[pair].append(p[labels.index(label)] > p[labels.index(temporal_clips.TWIN[label])])
    per_pair = {f"{a}/{b}": float(np.mean(w)) for (a, b), w in wins.items()}
    return per_pair, float(np.mean([x for w in wins.values() for x in w]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gru,motion,reference")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--folds", default=",".join(str(i) for i in range(len(FOLDS))))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "temporal-eval"),
                        help="Where the clips are written (kept for reruns).")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "temporal_eval.json"),
                        help="Results, rewritten after every run; runs already in it are not repeated.")
    args = parser.parse_args()
    models = args.models.split(",")
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
    for variant in variants:
        pool = make_pool(work, variant)
        features = None
        for fold in folds:
            split = make_split(pool, work, variant, fold)
            for model in models:
                for seed in seeds:
                    if (variant, fold, model, seed) in done:
                        continue
                    features = features or pool_features(pool)
                    started = time.perf_counter()
                    with tempfile.TemporaryDirectory() as folder:
                        report = fit(split, Path(folder) / "bundle", backbone=BACKBONE, seed=seed,
                                     model_kind=model, progress=False)
                        per_pair, mean = within_pair(Path(folder) / "bundle", split, features)
                    keras.backend.clear_session()
                    row = dict(variant=variant, fold=fold, model=model, seed=seed, mean=mean, pairs=per_pair,
                               best_epoch=report["best_epoch"], seconds=round(time.perf_counter() - started, 1))
                    done[key(row)] = row
                    out.write_text(json.dumps(list(done.values()), indent=1) + "\n")
                    print(f"{variant:5} fold {fold} {model:9} seed {seed}: {mean:.3f}  "
                          + "  ".join(f"{v:.2f}" for v in per_pair.values())
                          + f"  (epoch {row['best_epoch']}, {row['seconds']} s)", file=sys.stderr, flush=True)

    results = sorted((r for r in done.values() if r["variant"] in variants and r["fold"] in folds
                      and r["model"] in models and r["seed"] in seeds),
                     key=lambda r: (variants.index(r["variant"]), r["fold"], models.index(r["model"]), r["seed"]))
    pairs = [f"{a}/{b}" for a, b in temporal_clips.PAIRS]
    print("\nwithin-pair accuracy on held-out photos (first window)")
    print(f"{'variant':7} {'fold':4} {'model':9} {'seed':4} {'mean':>5}  " + "  ".join(f"{p:>20}" for p in pairs))
    for r in results:
        print(f"{r['variant']:7} {r['fold']:<4} {r['model']:9} {r['seed']:<4} {r['mean']:5.3f}  "
              + "  ".join(f"{r['pairs'][p]:20.2f}" for p in pairs))
    print("\nsummary per model: mean, worst run, worst pair in any run, runs with every pair >= 0.70")
    for model in models:
        rows = [r for r in results if r["model"] == model]
        if not rows:
            continue
        means = [r["mean"] for r in rows]
        worst_pairs = [min(r["pairs"].values()) for r in rows]
        print(f"{model:9} mean {np.mean(means):.3f}  worst run {min(means):.3f}  worst pair {min(worst_pairs):.2f}  "
              f"all pairs >= 0.70 in {sum(w >= 0.70 for w in worst_pairs)}/{len(rows)} runs  "
              f"runs >= 0.85: {sum(m >= 0.85 for m in means)}/{len(rows)}")
        for variant in dict.fromkeys(r["variant"] for r in rows):
            sub = [r for r in rows if r["variant"] == variant]
            print(f"  {variant:5} mean {np.mean([r['mean'] for r in sub]):.3f}  "
                  + "  ".join(f"{p} {np.mean([r['pairs'][p] for r in sub]):.2f}" for p in pairs))
    print(f"\nresults in {out}")


if __name__ == "__main__":
    main()
