"""How smoothing the shown label trades flicker for following: the default Kinetics-600 bundle
on real clips (../shared/ucf11_dev, and ../shared/clips), each clip run once with no smoothing;
every smoothing is then applied to the same head outputs, exactly as live/smoothing.py does per
stream. Prints, per smoothing: label changes per 10 s of video, the share of frames whose shown
label names the clip's action, and the share of clips whose last label does.

    LIVE_MODELS=../shared/models python tests/benchmarks/smoothing.py [--clips N] [--json out.json]
"""
import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
# The Kinetics-600 classes that name each ucf11_dev action (read from the 600 names).
ACCEPTED = {
    "basketball": {"shooting basketball", "playing basketball", "dribbling basketball", "dunking basketball"},
    "golf_swing": {"golf driving", "golf chipping", "golf putting"},
    "tennis_swing": {"playing tennis"},
    "walking": {"walking the dog"},
}
SMOOTHINGS = ["1", "3", "ema:0.75", "ema:0.5", "ema:0.35", "ema:0.25"]


def clips(limit):
    with open(SHARED / "ucf11_dev" / "manifest.csv") as file:
        rows = list(csv.DictReader(file))
    rows = rows[::max(1, len(rows) // limit)][:limit] if limit else rows
    return [(SHARED / "ucf11_dev" / row["class"] / row["file"], ACCEPTED[row["class"]]) for row in rows]


def measure(model, clip, accepted, smoothings):
    from live.smoothing import Smoothing

    results = list(model.stream(str(clip), smooth="1"))
    seconds = results[-1].frame.timestamp - results[0].frame.timestamp
    figures = {}
    for given in smoothings:
        smooth, shown, labels = Smoothing.parse(given).start(), None, []
        for result in results:
            if result.sampled:
                shown = smooth(result.probs)
            labels.append(model.labels[int(np.argmax(shown))])
        changes = sum(a != b for a, b in zip(labels, labels[1:]))
        figures[given] = {"changes_per_10s": 10 * changes / seconds if seconds > 0 else 0.0,
                          "right_frames": np.mean([label in accepted for label in labels]),
                          "right_last": labels[-1] in accepted}
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40, help="ucf11_dev clips, spread over the four actions (0: all)")
    parser.add_argument("--json", type=Path, help="write the table as JSON")
    options = parser.parse_args()
    import live

    model = live.load()
    per_clip = [measure(model, clip, accepted, SMOOTHINGS) for clip, accepted in clips(options.clips)]
    table = {given: {key: float(np.mean([figures[given][key] for figures in per_clip]))
                     for key in ("changes_per_10s", "right_frames", "right_last")} for given in SMOOTHINGS}
    print(f"{len(per_clip)} clips of ucf11_dev, the default bundle")
    print(f"{'smoothing':>10} {'changes/10s':>12} {'right frames':>13} {'right last':>11}")
    for given, row in table.items():
        print(f"{given:>10} {row['changes_per_10s']:>12.2f} {row['right_frames']:>13.3f} {row['right_last']:>11.3f}")
    if options.json:
        options.json.write_text(json.dumps({"clips": len(per_clip), "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
