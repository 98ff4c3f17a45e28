"""The model bundle: `weights/<name>/` with model.keras, labels.txt and manifest.json (labels and a
streaming backbone's file may instead be named in the model store: live/store.py).

Loading checks every part against the others and refuses a bundle that does not add up,
so a user never gets silent nonsense. Writing is atomic: a complete bundle or none.
"""
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from live import store
from live.backbones import BACKBONES, SHIPPED_WEIGHTS
from live.errors import UserError, first_line
from live.files import file_sha256, folder_written_atomically

FORMAT_VERSION = 1
MODEL_FILE, LABELS_FILE, MANIFEST_FILE = "model.keras", "labels.txt", "manifest.json"
# Kinetics-600 actions, out of the box: MoViNet-A0-Stream's own classifier (nothing trained here).
DEFAULT_BUNDLE = SHIPPED_WEIGHTS / "kinetics600"
REQUIRED_KEYS = ("format_version", "backbone", "image_size", "feature_size", "backbone_fingerprint",
                 "seq_len", "frame_step", "frame_rate")


@dataclass
class Bundle:
    path: Path
    model: object
    labels: list
    manifest: dict
    fingerprint: str = ""  # hash of model.keras: names caches derived from this model

    @property
    def seq_len(self):
        return self.manifest["seq_len"]


def default_bundle_path():
    return Path(os.environ.get("LIVE_WEIGHTS") or DEFAULT_BUNDLE)


def shipped_bundles():
    """The names of the bundles that ship with live (weights/, installed as live.weights)."""
    return sorted(path.parent.name for path in SHIPPED_WEIGHTS.glob(f"*/{MANIFEST_FILE}"))


def bundle_path(given):
    """The folder `given` names: a folder that exists, else a shipped bundle by its name
    (`kinetics600`, or `weights/kinetics600` as the README writes it), so that both work from
    any folder and from an installed wheel."""
    path = Path(given)
    if path.is_dir():
        return path
    if path.name in shipped_bundles() and path.parent in (Path("."), Path("weights")):
        return SHIPPED_WEIGHTS / path.name
    return path


def read_manifest(path):
    """Read and check a bundle's manifest and labels, without loading the model."""
    path = bundle_path(path)
    manifest = checked_manifest(path)
    stored = stored_files(path, manifest)
    labels_path = store.locate(stored["labels"]) if "labels" in stored else path / LABELS_FILE
    if not labels_path.is_file():
        raise UserError(f"model bundle {path} is incomplete (missing {LABELS_FILE}); "
                        "retrain it or pass another --weights DIR")
    labels = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not labels:
        raise UserError(f"model bundle {path} has an empty {labels_path.name}")
    return manifest, labels


def checked_manifest(path):
    """A bundle's manifest, checked against this live's backbones (labels not read)."""
    path = bundle_path(path)
    if not path.is_dir():
        raise UserError(f"no model bundle at {path}: pass --weights with a bundle folder or a shipped bundle's "
                        f"name ({', '.join(shipped_bundles())}), or train one with `train fit --data DIR --out {path}`")
    missing = [name for name in (MODEL_FILE, MANIFEST_FILE) if not (path / name).is_file()]
    if missing:
        raise UserError(f"model bundle {path} is incomplete (missing {', '.join(missing)}); "
                        "retrain it or pass another --weights DIR")
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"model bundle {path} has an unreadable manifest.json ({exc}); retrain it") from None
    absent = [key for key in REQUIRED_KEYS if key not in manifest]
    if absent:
        raise UserError(f"model bundle {path}: manifest.json lacks {', '.join(absent)}; retrain it")
    if manifest["format_version"] != FORMAT_VERSION:
        raise UserError(f"model bundle {path} has format version {manifest['format_version']}, "
                        f"this live reads version {FORMAT_VERSION}; retrain it or update live")
    backbone = BACKBONES.get(manifest["backbone"])
    if backbone is None:
        raise UserError(f"model bundle {path} needs backbone '{manifest['backbone']}', "
                        f"which this live lacks (it has {', '.join(BACKBONES)})")
    if (manifest["feature_size"], manifest["image_size"]) != (backbone.feature_size, backbone.image_size):
        raise UserError(f"model bundle {path} expects {manifest['feature_size']} features at "
                        f"{manifest['image_size']}px, but {backbone.name} gives {backbone.feature_size} "
                        f"at {backbone.image_size}px; the bundle is mismatched")
    carried = manifest.get("backbone_file")
    if carried and (Path(carried).name != carried or not (path / carried).is_file()):
        raise UserError(f"model bundle {path} is incomplete (missing its backbone file {carried}); "
                        "copy the whole bundle folder, or retrain it")
    return manifest


def stored_files(path, manifest):
    """{role: StoredFile} for the files the bundle names in the model store ("backbone", "labels")."""
    references = manifest.get("stored_files", {})
    if not isinstance(references, dict):
        raise UserError(f"model bundle {path}: manifest.json's stored_files is not a mapping; the bundle is damaged")
    return {role: store.StoredFile.from_reference(reference, f"model bundle {path}")
            for role, reference in references.items()}


def backbone_file(bundle):
    """The path of the backbone file a bundle names, or None (an image backbone's weights come
    from its registry): from the model store, or carried in the bundle's own folder."""
    stored = stored_files(bundle.path, bundle.manifest).get("backbone")
    if stored is not None:
        return store.locate(stored)
    carried = bundle.manifest.get("backbone_file")
    return bundle.path / carried if carried else None


def load_bundle(path):
    path = bundle_path(path)
    manifest, labels = read_manifest(path)
    import live.sequence_layers  # noqa: F401  registers the custom layers for safe loading
    from live.quiet import keras

    try:
        model = keras.saving.load_model(path / MODEL_FILE, safe_mode=True, compile=False)
    except Exception as exc:
        raise UserError(f"model bundle {path}: model.keras does not load ({type(exc).__name__}: "
                        f"{first_line(exc)}); retrain it") from None
    if len(model.inputs) != 2:
        raise UserError(f"model bundle {path}: model.keras takes {len(model.inputs)} input(s), where a bundle's "
                        "sequence model takes 2 (the window's features and its mask); retrain it with `train fit`")
    features_shape, mask_shape = (tuple(i.shape) for i in model.inputs)
    if features_shape[1:] != (manifest["seq_len"], manifest["feature_size"]):
        raise UserError(f"model bundle {path}: the model takes windows of {features_shape[1:]}, the "
                        f"manifest says ({manifest['seq_len']}, {manifest['feature_size']}); it is mismatched")
    outputs = model.outputs[0].shape[-1]
    if outputs != len(labels):
        raise UserError(f"model bundle {path}: the model has {outputs} outputs but labels.txt has "
                        f"{len(labels)} labels; it is mismatched")
    model_hash = file_sha256(path / MODEL_FILE)[:16]
    return Bundle(path, model, labels, manifest, model_hash)


def check_fingerprint(bundle, weights_fingerprint):
    expected = bundle.manifest["backbone_fingerprint"]
    if weights_fingerprint != expected:
        raise UserError(
            f"model bundle {bundle.path} was trained on {bundle.manifest['backbone']} weights with "
            f"fingerprint {expected}, but the loaded weights have fingerprint {weights_fingerprint}; "
            "its features would not match. Load the same backbone weights (--backbone-weights) "
            "or retrain the bundle")


def backbone_entries(backbone_model):
    """(manifest entries, {name: bytes}) that tie a bundle to its streaming backbone's file: a
    reference into the model store when the store knows the file (it is not copied: the project
    and its users' bundles hold only what they made), otherwise the file itself, carried in the
    bundle, so that it runs the very file it was made with."""
    path = getattr(backbone_model, "path", None)
    if path is None:
        return {}, {}
    known = store.known_file(backbone_model.sha256)
    if known is not None:
        return {"stored_files": {"backbone": known.reference()}}, {}
    carried = f"backbone{Path(path).suffix}"
    return {"backbone_file": carried}, {carried: Path(path).read_bytes()}


def write_bundle(path, model, labels, manifest, force=False, extra_files=None):
    """Write the bundle (and `extra_files`, {name: bytes}, such as a report) to a temporary
    folder beside `path`, then rename it into place."""
    path = Path(path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; choose another --out or pass --force to replace it")

    with folder_written_atomically(path) as staging:
        model.save(staging / MODEL_FILE)
        if "labels" not in manifest.get("stored_files", {}):  # else they are named in the model store
            (staging / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels))
        _write_manifest(staging, manifest)
        for name, data in (extra_files or {}).items():
            (staging / name).write_bytes(data)
    return path


def add_to_bundle(path, files, manifest_entries):
    """Add `files` ({name: source path}) and `manifest_entries` to an existing bundle, atomically:
    the bundle is copied, extended and renamed into place, so a crash leaves the old one whole."""
    path = Path(path)
    manifest = {**json.loads((path / MANIFEST_FILE).read_text()), **manifest_entries}

    with folder_written_atomically(path) as staging:
        for item in path.iterdir():
            if item.is_file() and item.name != MANIFEST_FILE:
                shutil.copy2(item, staging / item.name)
        for name, source in files.items():
            shutil.copy2(source, staging / name)
        _write_manifest(staging, manifest)
    return path


def _write_manifest(folder, manifest):
    (folder / MANIFEST_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION, **manifest}, indent=2) + "\n")
