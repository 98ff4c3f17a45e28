"""What `train` checks before TensorFlow loads, as live/checks.py does for `live`: the backbone
weights file, the bundle's manifest, the dataset folder and its layout, an --out that exists or
would take the dataset's place, and the clips named. TensorFlow's import is most of the seconds
a command takes to start, so a mistyped path is answered at once. Nothing here imports Keras.

Each command's body runs the same checks when called from Python (fit, extract); the command
line runs them first and hands on what they read (the dataset, the cache's index), read once."""
import os
from pathlib import Path
from typing import NamedTuple

from live import store
from live.backbones import BACKBONES, check_weights_file, get_backbone
from live.bundle import bundle_path, read_manifest, stored_files
from live.checks import same_file
from live.choices import RAY_MISSING
from live.errors import UserError
from training.datasets import Dataset, dataset_from_index, load_dataset, recorded_test_split
from training.features import CacheIndex



class FitInput(NamedTuple):
    """What `fit` trains on, found by check_fit."""
    dataset: Dataset
    data: str  # the dataset's folder: --data, or the one the feature cache's index records
    cache_index: CacheIndex


def check_features(features):
    """A FeatureConfig's backbone is known and its weights file, when named, is there."""
    get_backbone(features.backbone)  # an unknown name is an error before the dataset is scanned
    check_weights_file(features.backbone_weights)


def check_fit(config):
    """`train fit`'s checks (config: a FitConfig); returns its FitInput."""
    check_features(config.features)
    data, out = config.dataset.data, config.out
    if data and Path(data).is_dir():
        check_out_apart(out, data)
    check_out(out, config.force)
    cache_index = CacheIndex(config.features.cache_root)
    if data:
        return FitInput(config.dataset.load(), data, cache_index)
    # From the cache alone: the clips the index records, none of them opened.
    dataset, data = dataset_from_index(cache_index.records.values(), config.dataset.classes,
                                       config.dataset.test_fraction, config.dataset.seed, config.dataset.split)
    changed = [clip.path for clip in dataset.train + dataset.test if cache_index.current(clip.path) is None]
    if changed:  # still there, but not as extracted: its entry (and recorded frame rate) may be another clip's
        others = f" and {len(changed) - 1} other clips" if len(changed) > 1 else ""
        raise UserError(f"{changed[0]}{others} changed after their features were extracted; train with "
                        "--data DIR to extract them again")
    if Path(data).is_dir():
        check_out_apart(out, data)
    return FitInput(dataset, data, cache_index)


def check_out(out, force):
    """A bundle's --out is free, or --force replaces it."""
    if Path(out).exists() and not force:
        raise UserError(f"{out} already exists; choose another --out or pass --force to replace it")


def check_out_apart(out, data):
    """--out is neither the dataset folder nor a folder that holds it: a bundle takes --out's
    place whole (with --force, deleting what was there), and the dataset with it. Compared by
    identity (live.checks.same_file), so ./data, a symbolic link or a bind mount of it count too."""
    folder = Path(os.path.realpath(data))
    for ancestor in (folder, *folder.parents):
        if same_file(out, ancestor):
            relation = "is" if ancestor == folder else "holds"
            raise UserError(f"--out {out} {relation} the dataset folder --data {data}: the bundle would take its "
                            "place and delete its clips; give --out a folder outside the dataset, e.g. weights/NAME")


def check_extract(config):
    """`train extract`'s checks (config: an ExtractConfig); returns the dataset."""
    check_features(config.features)
    if config.engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError(RAY_MISSING)
    return config.dataset.load()


def check_bundle(weights, backbone_weights=None):
    """A bundle's manifest and labels (read_manifest), its backbone file found in the model store
    (or downloaded) unless --backbone-weights names one, which must exist: live's own checks
    before the model loads. Returns (manifest, labels)."""
    check_weights_file(backbone_weights)
    manifest, labels = read_manifest(weights)
    stored_backbone = stored_files(bundle_path(weights), manifest).get("backbone")
    if stored_backbone and not backbone_weights:
        store.locate(stored_backbone)
    return manifest, labels


def check_evaluate(weights, data, backbone_weights=None, split=None, seed=None):
    """`train evaluate`'s checks; returns the dataset, its test clips the ones to score."""
    manifest, labels = check_bundle(weights, backbone_weights)
    dataset = recorded_test_split(data, manifest.get("split"), split, seed)
    if not dataset.test:
        raise UserError(f"{weights} holds out no test clips of {data} (trained with --test-fraction 0?); "
                        "give --seed to hold out a new split")
    unknown = sorted({c.label for c in dataset.test} - set(labels))
    if unknown:
        raise UserError(f"{data} has classes the model does not know: {', '.join(unknown)}")
    return dataset


def check_clips(videos):
    """Every clip named is a file: a mistyped one is bad input, not a clip to skip (a clip that is
    there but does not decode is skipped, with a warning, by the extraction)."""
    missing = [video for video in videos if not os.path.isfile(video)]
    if not missing:
        return
    first = missing[0]
    problem = f"{first} is a folder; name the video files in it" if os.path.isdir(first) else f"no such file: {first}"
    others = f" (and {len(missing) - 1} more of the clips given are not files)" if len(missing) > 1 else ""
    raise UserError(f"{problem}{others}")


def check_predict(weights, videos, backbone_weights=None):
    check_bundle(weights, backbone_weights)
    check_clips(videos)


def check_quantize(weights, data, backbone_weights=None, split=1, seed=0):
    """`train quantize`'s checks: the bundle (its backbone an image one), the dataset."""
    manifest, _ = check_bundle(weights, backbone_weights)
    check_image_backbone(weights, manifest["backbone"])
    load_dataset(data, split=split, seed=seed)


def check_image_backbone(weights, backbone):
    if BACKBONES[backbone].streaming:
        raise UserError(f"model bundle {weights} runs on {backbone}, which is already an int8 LiteRT file (with a "
                        "state from frame to frame): train quantize makes int8 copies of image backbones only. "
                        "Run this bundle as it is (live's default runtime)")
