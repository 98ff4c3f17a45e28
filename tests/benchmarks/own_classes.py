"""Benchmark: how well `train fit` learns one's own actions from a few clips a class, on real
video of people and scenes it never trained on.

Run:  python tests/benchmarks/own_classes.py [--backbone movinet_a0_stream,efficientnet_lite0]
          [--clips-per-class 5,10,all] [--seeds 0,1,2]

Reads ../shared/ucf11_dev (four UCF11 actions, 13 source videos a class; its README: for
development only, never copied into the project). For each seed, whole groups (source videos:
one person, one scene) are held out for testing, about 30% of each class; from the rest, N
clips a class are drawn for training. `fit()` runs on that (split folders of symlinks, each
named <group>__<file> so fit's validation split is grouped by source too), with the default
--model auto, which trains every candidate head, keeps the one with the better validation
accuracy and trains it again on the training and validation clips; the report gives each
candidate's test accuracy as validated (mean over all windows of a clip), the choice, the
refit head's test accuracy (auto) and the fit time. In the same run, the baseline: a logistic regression on the mean
feature of each window (the windows that cover the training clips, half a window apart),
scored the same way. Features come from the feature cache (`train extract` fills it: see
--help's epilog), so repeated fits are cheap; Lite0 is sampled at 25 fps, the clips' median
rate, fixed so that every split reads the same cache entries.

Prints a table (means over the seeds) and merges its results into
bench-results/own_classes.json, so it can be run in parts. Not a test: it measures.
"""
import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from training.config import FitConfig  # noqa: E402
from training.datasets import Clip, grouped_split  # noqa: E402
from training.fit import fit, prepare_features, resolved_features  # noqa: E402
from training.windows import clip_window_starts, window  # noqa: E402

DATA = ROOT.parent / "shared" / "ucf11_dev"
BACKBONES = ("movinet_a0_stream", "efficientnet_lite0")
FRAME_RATES = {"efficientnet_lite0": 25.0}  # the others sample at their own rate
TEST_FRACTION = 0.3
SEQ_LEN = 20
EPILOG = ("Fill the cache first, a class pair at a time (each under 5 minutes here): train extract --data "
          "UCF11_DEV --classes basketball,golf_swing --test-fraction 0 --backbone B [--frame-rate 25 for Lite0].")


def all_clips(data):
    with open(data / "manifest.csv", newline="") as f:
        return [Clip(data / row["class"] / row["file"], row["class"], f"{row['class']}/{row['group']}")
                for row in csv.DictReader(f)]


def draw(clips, per_class, seed):
    """(training clips: `per_class` a class, drawn at random, or all; held-out test clips), split by group."""
    train, test = grouped_split(clips, TEST_FRACTION, seed)
    if per_class != "all":
        rng = np.random.default_rng(seed)
        train = [clip for label in sorted({c.label for c in train})
                 for clip in rng.permutation([c for c in train if c.label == label])[:int(per_class)]]
    return train, test


def link_dataset(folder, train, test):
    """Split folders of symlinks (nothing copied), named so that a clip's group is its source."""
    for side, clips in (("train", train), ("test", test)):
        for clip in clips:
            link = folder / side / clip.label / f"{clip.group.split('/')[1]}__{clip.path.name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(clip.path)
    return folder


def window_means(features, label_index):
    """The mean feature of each window covering a clip, and its label, repeated."""
    starts = clip_window_starts(len(features), SEQ_LEN)
    means = [window(features, start, SEQ_LEN, SEQ_LEN)[0][:min(SEQ_LEN, len(features) - start)].mean(axis=0)
             for start in starts]
    return np.stack(means), [label_index] * len(means)


def linear_baseline(train, test, features, seed):
    """Test accuracy of a logistic regression on windows' mean features (probabilities averaged
    over a clip's windows, as fit scores "all windows")."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = sorted({c.label for c in train})
    x, y = zip(*(window_means(features[str(c.path)], labels.index(c.label)) for c in train))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    classifier.fit(np.concatenate(x), np.concatenate(y))
    right = [np.argmax(classifier.predict_proba(window_means(features[str(c.path)], 0)[0]).mean(axis=0))
             == labels.index(c.label) for c in test]
    return float(np.mean(right))


def run_one(clips, backbone, per_class, seed, features):
    train, test = draw(clips, per_class, seed)
    with tempfile.TemporaryDirectory() as folder:
        data = link_dataset(Path(folder) / "data", train, test)
        started = time.perf_counter()
        report = fit(FitConfig.from_options(data=str(data), out=str(Path(folder) / "bundle"), backbone=backbone,
                                            frame_rate=FRAME_RATES.get(backbone), seed=seed, progress=False))
        seconds = time.perf_counter() - started
    return {"backbone": backbone, "clips_per_class": per_class, "seed": seed,
            "train_clips": len(train), "test_clips": len(test),
            "heads": {kind: score["test_accuracy_all_windows"] for kind, score in report["candidates"].items()},
            "validation": {kind: score["validation_accuracy"] for kind, score in report["candidates"].items()},
            "chosen": report["model"],
            "auto": report["test"]["all_windows"]["accuracy"],
            "linear_baseline": linear_baseline(train, test, features, seed),
            "fit_s": round(seconds, 1)}


def table(results):
    rows = {}
    for result in results.values():
        rows.setdefault((result["backbone"], str(result["clips_per_class"])), []).append(result)
    kinds = sorted({kind for result in results.values() for kind in result["heads"]})
    lines = ["| backbone | clips a class | seeds | " + " | ".join(kinds) + " | auto (chosen) | linear baseline "
             "| fit s |", "|---" * (len(kinds) + 6) + "|"]
    for (backbone, per_class), runs in sorted(rows.items(), key=lambda item: (item[0][0], len(item[0][1]),
                                                                             item[0][1])):
        mean = lambda values: f"{np.mean(values):.3f}"  # noqa: E731
        chosen = ", ".join(f"{kind} {sum(r['chosen'] == kind for r in runs)}" for kind in kinds)
        lines.append(f"| {backbone} | {per_class} | {len(runs)} | "
                     + " | ".join(mean([r["heads"][kind] for r in runs]) for kind in kinds)
                     + f" | {mean([r['auto'] for r in runs])} ({chosen}) | {mean([r['linear_baseline'] for r in runs])}"
                     f" | {np.mean([r['fit_s'] for r in runs]):.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=EPILOG)
    parser.add_argument("--data", type=Path, default=DATA, help="The ucf11_dev folder [default: %(default)s].")
    parser.add_argument("--backbone", default=",".join(BACKBONES))
    parser.add_argument("--clips-per-class", default="5,10,all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "own_classes.json"))
    args = parser.parse_args()
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.exists() else {"results": {}}
    saved["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    for backbone in args.backbone.split(","):
        clips = all_clips(args.data)
        config = resolved_features(FitConfig.from_options(data=str(args.data), out="-", backbone=backbone,
                                                          frame_rate=FRAME_RATES.get(backbone)).features, clips)
        features, skipped, _, timing = prepare_features(clips, config, progress=False)
        if timing["clips"]:
            print(f"warning: {timing['clips']} clips were not in the cache and were extracted "
                  f"({timing['seconds']:.0f} s)")
        for per_class in args.clips_per_class.split(","):
            for seed in map(int, args.seeds.split(",")):
                result = run_one(clips, backbone, per_class, seed, features)
                saved["results"][f"{backbone}/{per_class}/{seed}"] = result
                print(json.dumps(result), flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(saved, indent=2) + "\n")  # after every fit: a part stays valid
    print(table(saved["results"]))


if __name__ == "__main__":
    main()
