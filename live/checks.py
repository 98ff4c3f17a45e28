"""What `live` checks before the model loads: the bundle's manifest, the backbone weights file
(found in the model store, or downloaded, now) and the output paths. None of it needs TensorFlow, whose import is most of the seconds a run
takes to start, so a mistyped path is answered at once. (Inputs are checked by opening them,
which also happens before the model loads: see live/cli.py run.)"""
import os
from pathlib import Path

from live.backbones import check_weights_file
from live import store
from live.bundle import checked_manifest, default_bundle_path, read_manifest, stored_files
from live.errors import UserError
from live.outputs import VIDEO_EXTENSIONS


def check_before_loading(weights, backbone_weights, output, jsonl, events):
    path = weights or default_bundle_path()
    check_weights_file(backbone_weights)
    stored_backbone = stored_files(path, checked_manifest(path)).get("backbone")
    if stored_backbone and not backbone_weights:  # found, or downloaded, before TensorFlow loads
        store.locate(stored_backbone)
    read_manifest(path)
    if output:
        check_writable("--output", output, VIDEO_EXTENSIONS)
    for option, path in (("--jsonl", jsonl), ("--events", events)):
        if path and path != "-":
            check_writable(option, path)


def check_writable(option, path, extensions=None):
    """`path` can be created or replaced: its folder exists and is writable, it is not itself a
    folder, and its extension is one of `extensions` (when given)."""
    target = Path(path)
    if extensions and target.suffix.lower() not in extensions:
        raise UserError(f"{option} {path}: cannot write a video named so; end the name with "
                        f"{', '.join(extensions[:-1])} or {extensions[-1]}")
    folder = target.parent  # "out.mp4" has the folder "."
    if not folder.is_dir():
        raise UserError(f"{option} {path}: the folder {folder} does not exist; create it "
                        f"(mkdir -p {folder}) or choose another path")
    if target.is_dir():
        raise UserError(f"{option} {path} is a folder; give the path of a file in it")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UserError(f"{option} {path}: no permission to write there; choose a folder you can write to")
