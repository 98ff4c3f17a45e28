"""Finding clips and labels in a dataset folder, whatever its layout, and splitting them.

Layouts, detected in this order:
- reference: train.csv and test.csv (columns video_name, tag) beside train/ and test/;
- ucf101: UCF-101/<Class>/v_*.avi beside ucfTrainTestlist/ (split 1..3);
- split folders: train/<class>/* and test/<class>/*;
- class folders: <class>/*, with a stratified, grouped test split held out.

A clip's group is the source it was cut from: UCF101's gNN, else the part of the file name
before a double underscore (`train demo-data` names segments <clip>__partN), else the file
itself. Clips of one group never straddle a split, except in a class that has no other group:
segments of a single video can only be shared out, and `train fit` warns when it does that.
"""
import csv
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from live.errors import UserError

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
UCF_GROUP = re.compile(r"_(g\d+)_c\d+", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    group: str


@dataclass
class Dataset:
    layout: str
    classes: list
    train: list
    test: list


def clip_group(path, label):
    stem = Path(path).stem
    match = UCF_GROUP.search(stem)
    if match:
        return f"{label}/{match.group(1).lower()}"
    if "__" in stem:
        return f"{label}/{stem.split('__')[0]}"
    return f"{label}/{stem}"


def _clip(path, label):
    return Clip(Path(path), label, clip_group(path, label))


def videos_in(folder):
    """The folder's videos. Hidden files are not clips: a clip still being written (`train record`
    writes to a dotfile, then renames it) or macOS's ._ metadata files beside copied videos."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))


def _class_folders(folder):
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".") and videos_in(p))


def _read_reference_csv(root, split):
    clips = []
    with open(root / f"{split}.csv", newline="") as f:
        for row in csv.DictReader(f):
            if "video_name" not in row or "tag" not in row:
                raise UserError(f"{root / f'{split}.csv'} needs the columns video_name and tag")
            clips.append(_clip(root / split / row["video_name"], row["tag"]))
    return clips


def _read_ucf101(root, split, classes):
    videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
    if not 1 <= split <= 3:
        raise UserError("--split must be 1, 2 or 3 for UCF101")

    def read(name):
        clips = []
        for line in (lists / f"{name}list0{split}.txt").read_text().split("\n"):
            if line.strip():
                relative = line.split()[0]
                label = relative.split("/")[0]
                if not classes or label in classes:
                    clips.append(_clip(videos / relative, label))
        return clips

    return read("train"), read("test")


def load_dataset(data_dir, split=1, classes=None, test_fraction=0.25, seed=0):
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {data_dir}")
    classes = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else classes
    if (root / "train.csv").is_file() and (root / "test.csv").is_file():
        layout, train, test = "reference", _read_reference_csv(root, "train"), _read_reference_csv(root, "test")
    elif (root / "UCF-101").is_dir() and (root / "ucfTrainTestlist").is_dir():
        layout, (train, test) = "ucf101", _read_ucf101(root, split, classes)
    elif (root / "train").is_dir() and (root / "test").is_dir() and _class_folders(root / "train"):
        layout = "split folders"
        train = [_clip(v, c.name) for c in _class_folders(root / "train") for v in videos_in(c)]
        test = [_clip(v, c.name) for c in _class_folders(root / "test") for v in videos_in(c)]
    elif _class_folders(root):
        layout = "class folders"
        clips = [_clip(v, c.name) for c in _class_folders(root) for v in videos_in(c)]
        train, test = grouped_split(clips, test_fraction, seed)
    else:
        raise UserError(
            f"no dataset layout found in {data_dir}: expected train.csv + test.csv with train/ and test/, "
            "UCF-101/ with ucfTrainTestlist/, train/<class>/ and test/<class>/ folders, or <class>/ folders "
            "of videos")
    return _checked(Dataset(layout, [], train, test), data_dir, classes)


def dataset_from_index(records, classes=None, test_fraction=0.25, seed=0, ucf_split=1):
    """The dataset the feature cache's index records (`train fit --cache DIR` without --data):
    each clip's label and group as `extract` or `fit` found them, and its test split: the
    recorded one, or for class folders the one load_dataset would hold out with this seed (the
    same clips in the same order: sorted by path). Returns (dataset, its folder)."""
    records = [r for r in records if r.get("label") and r.get("group") and r.get("dataset")]
    if not records:
        raise UserError("the feature cache's index records no labelled clips; fill it with "
                        "`train extract --data DIR` (or a `train fit --data DIR`) first")
    roots = sorted({r["dataset"] for r in records})
    if len(roots) > 1:
        raise UserError(f"the feature cache's index records clips of {len(roots)} datasets ({', '.join(roots[:3])}); "
                        "train on one with --data DIR, or keep one dataset per cache folder")
    records = sorted(records, key=lambda r: r["path"])
    layout = records[0].get("layout") or "class folders"
    recorded_splits = sorted({r.get("ucf_split") or 1 for r in records}) if layout == "ucf101" else [ucf_split]
    if recorded_splits != [ucf_split]:  # the index holds the train/test membership of one split only
        raise UserError(f"the feature cache's index records UCF101 split {recorded_splits[-1]}, not {ucf_split}; "
                        f"pass --split {recorded_splits[-1]}, or --data DIR to train on split {ucf_split}")
    clips = {split: [Clip(Path(r["path"]), r["label"], r["group"]) for r in records if r.get("split") == split]
             for split in ("train", "test", None)}
    train, test = grouped_split(clips[None], test_fraction, seed) if clips[None] else (clips["train"], clips["test"])
    return _checked(Dataset(layout, [], train, test), roots[0], classes), roots[0]


def _checked(dataset, data_dir, classes):
    """`dataset` cut to `classes` (if given), with its class names, after the checks any dataset
    must pass: two classes at least, and no test class without training clips."""
    classes = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else classes
    if classes:
        dataset.train = [c for c in dataset.train if c.label in classes]
        dataset.test = [c for c in dataset.test if c.label in classes]
    dataset.classes = sorted({c.label for c in dataset.train})
    if len(dataset.classes) < 2:
        raise UserError(f"{data_dir}: training needs at least two classes, found {len(dataset.classes)}")
    missing = [c for c in dataset.test if c.label not in dataset.classes]
    if missing:
        raise UserError(f"{data_dir}: test class {missing[0].label} has no training clips")
    return dataset


def grouped_split(clips, fraction, seed):
    """Split clips into (kept, held out), stratified by class and grouped by source: about
    `fraction` of each class's clips are held out, whole groups at a time, and at least one
    group of each class is kept; a fraction of 0 holds out nothing. A class whose clips all
    come from one source (see single_source_classes) can't be split by source: its clips are
    split one by one. Seeded."""
    rng = random.Random(seed)
    kept, held = [], []
    by_class = defaultdict(lambda: defaultdict(list))
    for clip in clips:
        by_class[clip.label][clip.group].append(clip)
    for label in sorted(by_class):
        by_group = by_class[label]
        if len(by_group) == 1:
            by_group = {str(clip.path): [clip] for clip in next(iter(by_group.values()))}
        groups = sorted(by_group)
        rng.shuffle(groups)
        total = sum(len(by_group[g]) for g in groups)
        target = max(1, round(total * fraction)) if fraction > 0 else 0
        taken = 0
        for number, group in enumerate(groups):
            members = by_group[group]
            if taken < target and number < len(groups) - 1:
                held.extend(members)
                taken += len(members)
            else:
                kept.extend(members)
    return kept, held


def single_source_classes(clips):
    """The classes with several clips that all come from one source (one group): segments
    of one video, which a split can only share out between its sides."""
    groups, counts = defaultdict(set), defaultdict(int)
    for clip in clips:
        groups[clip.label].add(clip.group)
        counts[clip.label] += 1
    return sorted(label for label in groups if len(groups[label]) == 1 and counts[label] > 1)


def dataset_relative(path, data_dir):
    """A clip's path as the manifest records it: relative to the dataset folder when inside it."""
    path, root = Path(path).absolute(), Path(data_dir).absolute()  # not resolve(): symlinked clips keep their names
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def split_record(dataset, data_dir, split, classes, test_fraction, seed):
    """How the held-out test split was made, for the bundle's manifest, so that `train evaluate`
    scores a model on the very clips it never trained on."""
    return {"layout": dataset.layout, "seed": seed, "test_fraction": test_fraction, "ucf_split": split,
            "classes": [c.strip() for c in classes.split(",")] if isinstance(classes, str) else classes,
            "test_clips": sorted(dataset_relative(c.path, data_dir) for c in dataset.test)}


def recorded_test_split(data_dir, record, split=None, seed=None):
    """The test clips of `data_dir` as a bundle's manifest records them (see split_record).
    An explicit `seed` (or, for UCF101, `split`) makes a new split; what is not given still comes
    from the record (classes, test fraction)."""
    record = record or {}
    fresh = seed is not None or (split is not None and split != record.get("ucf_split", split))
    dataset = load_dataset(data_dir, split=split or record.get("ucf_split") or 1, classes=record.get("classes"),
                           test_fraction=record.get("test_fraction", 0.25),
                           seed=seed if seed is not None else record.get("seed", 0))
    if fresh or "test_clips" not in record:
        return dataset
    if dataset.layout != record.get("layout"):
        raise UserError(f"{data_dir} is laid out as {dataset.layout}, but the model was trained on a "
                        f"{record.get('layout')} dataset; give the dataset it was trained on, or --seed to split anew")
    wanted = set(record["test_clips"])
    clips = {dataset_relative(c.path, data_dir): c for c in dataset.train + dataset.test}
    missing = sorted(wanted - set(clips))
    if missing:
        raise UserError(f"{data_dir} lacks {len(missing)} of the model's test clips (first: {missing[0]}); "
                        "give the dataset it was trained on, or --seed to split anew")
    dataset.test = [clips[name] for name in sorted(wanted)]
    return dataset
