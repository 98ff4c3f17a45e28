"""Benchmark: how well `train fit` learns one's own actions from a few clips a class, on real
video of people and scenes it never trained on.

Run:  LIVE_MODELS=../shared/models python tests/benchmarks/own_classes.py [--task actions,reversed]
          [--backbone movinet_a0_stream,efficientnet_lite0] [--clips-per-class 2,5,all] [--seeds 0,1,2]
          [--heads linear,gru] [--fit-option name=value ...]

Reads ../shared/ucf11_dev (four UCF11 actions, 13 source videos a class; its README: for
development only, never copied into the project). For each seed, whole groups (source videos:
one person, one scene) are held out for testing, about 30% of each class; from the rest, N
clips a class are drawn for training. Two tasks:

- `actions`: the four actions as four classes.
- `reversed`: the same clips forwards and backwards as two classes, `forwards` and `backwards`
  (N clips of each action drawn, each in both directions; every clip, forwards too, decoded and
  written again with OpenCV into a folder under the system's temporary folder, kept between runs
  so the feature cache finds them: a classifier must not tell the classes by their encoding).

`fit()` runs on that (split folders of symlinks, each named <group>__<file> so that sessions are
source videos), with default options (`--model auto`: candidates cross-validated over the
training sessions, the best trained on every training clip). Per run: the test accuracy (mean
over all windows of a clip), the head kept and every candidate's cross-validated accuracy (every
window of the held-out sessions), the kept head's accuracy on its own training clips (every
window and by clip), the fit time, and a baseline: a logistic regression on the mean feature of
each window (scikit-learn), scored the same way. `--heads` also fits each named head alone on
the same split and gives its test accuracy. Features come from the feature cache (`train extract`
fills it: see --help's epilog), so repeated fits are cheap; Lite0 is sampled at 25 fps, the
clips' median rate, fixed so that every split reads the same cache entries.

Prints a table (mean, worst and best over the seeds) and merges its results into
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
from training.fit import fit  # noqa: E402
from training.prepare import prepare_features, resolved_features  # noqa: E402
from training.windows import clip_window_starts, window  # noqa: E402

DATA = ROOT.parent / "shared" / "ucf11_dev"
REVERSED = Path(tempfile.gettempdir()) / "live-ucf11-dev-directions"  # written clips, kept between runs
BACKBONES = ("movinet_a0_stream", "efficientnet_lite0")
FRAME_RATES = {"efficientnet_lite0": 25.0}  # the others sample at their own rate
TEST_FRACTION = 0.3
SEQ_LEN = 20
EPILOG = ("Fill the cache first, a class pair at a time (each under 5 minutes here): train extract --data "
          "UCF11_DEV --classes basketball,golf_swing --test-fraction 0 --backbone B [--frame-rate 25 for Lite0]. "
          "The reversed task's clips are written, and their features extracted, on its first run.")


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


def rewritten(clip, direction, folder=REVERSED):
    """The clip's frames decoded and written again (MPEG-4 Part 2, at the rate its container
    states), in their order or reversed; written once."""
    import cv2

    out = folder / direction / clip.label / f"{clip.path.stem}.mp4"
    if not out.exists():
        capture = cv2.VideoCapture(str(clip.path))
        fps, frames = capture.get(cv2.CAP_PROP_FPS) or 25.0, []
        while (frame := capture.read()[1]) is not None:
            frames.append(frame)
        capture.release()
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.with_name(f".{out.name}")
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                 (frames[0].shape[1], frames[0].shape[0]))
        for frame in frames if direction == "forwards" else frames[::-1]:
            writer.write(frame)
        writer.release()
        temporary.rename(out)
    return out


def directions(clips):
    """Each clip forwards and backwards, as clips of the classes `forwards` and `backwards`; the
    group stays the source video."""
    return [Clip(rewritten(clip, direction), direction, f"{direction}/{clip.group.replace('/', '_')}")
            for direction in ("forwards", "backwards") for clip in clips]


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


def fitted(train, test, backbone, seed, **options):
    """fit() on these clips; returns (its report, seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        data = link_dataset(Path(folder) / "data", train, test)
        started = time.perf_counter()
        options = {"frame_rate": FRAME_RATES.get(backbone), **options}  # --fit-option frame_rate=R overrides
        report = fit(FitConfig.from_options(data=str(data), out=str(Path(folder) / "bundle"), backbone=backbone,
                                            seed=seed, progress=False, **options))
        return report, time.perf_counter() - started


def run_one(task, clips, backbone, per_class, seed, features, heads, options):
    train, test = draw(clips, per_class, seed)
    if task == "reversed":
        train, test = directions(train), directions(test)
    report, seconds = fitted(train, test, backbone, seed, **options)
    result = {"task": task, "backbone": backbone, "clips_per_class": per_class, "seed": seed,
              "options": options, "train_clips": len(train), "test_clips": len(test),
              "auto": report["test"]["all_windows"]["accuracy"], "chosen": report["model"],
              "selection": report["selection"]["by"],
              "cross_validated": {kind: score["accuracy"] for kind, score in report["candidates"].items()},
              "training_windows": report["training"]["accuracy"],
              "training_clips": report["training"]["clip_accuracy"],
              "linear_baseline": linear_baseline(train, test, features, seed), "fit_s": round(seconds, 1)}
    for kind in heads:
        result.setdefault("heads", {})[kind] = fitted(train, test, backbone, seed, model_kind=kind,
                                                      **options)[0]["test"]["all_windows"]["accuracy"]
    return result


def spread(values, digits=3):
    """mean (worst–best) of the seeds' values."""
    return f"{np.mean(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def cross_validated(runs, kind):
    """A candidate's cross-validated accuracy over the seeds, and in how many runs it was stopped
    early (it could no longer be kept)."""
    scored = [r["cross_validated"][kind] for r in runs if r.get("cross_validated", {}).get(kind) is not None]
    stopped = sum(kind in r.get("cross_validated", {}) and r["cross_validated"][kind] is None for r in runs)
    return (spread(scored) if scored else "—") + (f", stopped in {stopped}" if stopped else "")


def table(results):
    rows = {}
    for result in results.values():
        key = (result.get("task", "actions"), result["backbone"], str(result["clips_per_class"]),
               json.dumps(result.get("options", {}), sort_keys=True))
        rows.setdefault(key, []).append(result)
    kinds = sorted({kind for result in results.values() for kind in result.get("cross_validated", {})})
    lines = ["| task | backbone | clips a class | options | seeds | test, auto (worst–best) | kept | "
             + " | ".join(f"cross-validated {kind}" for kind in kinds)
             + " | training windows (worst) | baseline | fit s (worst) |", "|---" * (len(kinds) + 10) + "|"]
    for (task, backbone, per_class, options), runs in sorted(rows.items()):
        kept = ", ".join(f"{kind} {n}" for kind in kinds if (n := sum(r["chosen"] == kind for r in runs)))
        lines.append(f"| {task} | {backbone} | {per_class} | {options if options != '{}' else ''} | {len(runs)} | "
                     f"{spread([r['auto'] for r in runs])} | {kept} | "
                     + " | ".join(cross_validated(runs, kind) for kind in kinds)
                     + f" | {np.mean([r['training_windows'] for r in runs]):.3f} "
                     f"({min(r['training_windows'] for r in runs):.3f}) | "
                     f"{np.mean([r['linear_baseline'] for r in runs]):.3f} | "
                     f"{np.mean([r['fit_s'] for r in runs]):.0f} ({max(r['fit_s'] for r in runs):.0f}) |")
    return "\n".join(lines)


def option(text):
    """A FitConfig field as name=value (a number, true/false, or text)."""
    name, value = text.split("=", 1)
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, {"true": True, "false": False}.get(value.lower(), value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=EPILOG)
    parser.add_argument("--data", type=Path, default=DATA, help="The ucf11_dev folder [default: %(default)s].")
    parser.add_argument("--task", default="actions", help="actions, reversed, or both, comma-separated.")
    parser.add_argument("--backbone", default=",".join(BACKBONES))
    parser.add_argument("--clips-per-class", default="2,5,all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--heads", default="", help="Also fit each of these heads alone (comma-separated).")
    parser.add_argument("--fit-option", action="append", type=option, default=[],
                        help="A FitConfig field for every fit, as name=value (e.g. epochs=30).")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "own_classes.json"))
    args = parser.parse_args()
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.exists() else {"results": {}}
    saved["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    options = dict(args.fit_option)
    heads = [kind for kind in args.heads.split(",") if kind]
    for task in args.task.split(","):
        for backbone in args.backbone.split(","):
            clips = all_clips(args.data)
            task_clips = directions(clips) if task == "reversed" else clips
            rate = options.get("frame_rate", FRAME_RATES.get(backbone))
            config = resolved_features(FitConfig.from_options(data=str(args.data), out="-", backbone=backbone,
                                                              frame_rate=rate).features, clips)
            features, _, _, timing = prepare_features(task_clips, config, progress=False)
            if timing["clips"]:
                print(f"warning: {timing['clips']} clips were not in the cache and were extracted "
                      f"({timing['seconds']:.0f} s)")
            for per_class in args.clips_per_class.split(","):
                for seed in map(int, args.seeds.split(",")):
                    result = run_one(task, clips, backbone, per_class, seed, features, heads, options)
                    key = "/".join([task, backbone, per_class, str(seed)]
                                   + [f"{k}={v}" for k, v in sorted(options.items())])
                    saved["results"][key] = result
                    print(json.dumps(result), flush=True)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(saved, indent=2) + "\n")  # after every fit: a part stays valid
    print(table(saved["results"]))


if __name__ == "__main__":
    main()
