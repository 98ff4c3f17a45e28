"""What `live` checks before the model loads: the bundle's manifest, the backbone weights file
(found in the model store, or downloaded, now) and the output paths. None of it needs TensorFlow, whose import is most of the seconds a run
takes to start, so a mistyped path is answered at once. (Inputs are checked by opening them,
which also happens before the model loads: see live/cli.py run.)"""
import os
from pathlib import Path

from live.backbones import BACKBONES, check_weights_file
from live.choices import BUNDLE_RUNTIMES, bundle_runtimes
from live import store
from live.bundle import checked_manifest, default_bundle_path, read_manifest, stored_files
from live.errors import UserError
from live.outputs import VIDEO_EXTENSIONS, numbered_paths


def check_before_loading(weights, backbone_weights, output, jsonl, events, files=(), streams=1, runtime=None):
    path = weights or default_bundle_path()
    check_weights_file(backbone_weights)
    manifest = checked_manifest(path)
    check_runtime(path, manifest, runtime)
    stored_backbone = stored_files(path, manifest).get("backbone")
    if stored_backbone and not backbone_weights:  # found, or downloaded, before TensorFlow loads
        store.locate(stored_backbone)
    read_manifest(path)
    if output:
        check_writable("--output", output, VIDEO_EXTENSIONS)
    for option, path in (("--jsonl", jsonl), ("--events", events)):
        if path and path != "-":
            check_writable(option, path)
    videos = numbered_paths(output, streams) if output else []
    check_distinct([("--file", file) for file in files],
                   [*(("--output", video) for video in videos), ("--jsonl", jsonl), ("--events", events)])


def check_runtime(path, manifest, runtime):
    """`runtime` is one the bundle can use; else the error names those it can, and for
    openvino-int8 on an image backbone, the command that adds what it needs."""
    backbone = BACKBONES[manifest["backbone"]]
    usable = bundle_runtimes(manifest, backbone.streaming)
    if runtime is None or runtime in usable:
        return
    if runtime in BUNDLE_RUNTIMES and not backbone.streaming:
        raise UserError(f"model bundle {path} has no int8 backbone for --runtime {runtime}; make one with "
                        f"`train quantize --weights {path} --data DIR`, or choose --runtime {' or '.join(usable)}")
    raise UserError(f"model bundle {path} ({backbone.name}) cannot run with --runtime {runtime}; it runs with "
                    f"{' or '.join(usable)} (or leave --runtime out)")


def check_distinct(inputs, outputs):
    """No output is an input or another output: `live --file a.mp4 --jsonl a.mp4` would replace
    the video with JSON, and two writers of one file interleave into a corrupt one. Compared by
    identity, so `./a.mp4`, a symbolic link and a hard link are the same file too. `inputs` and
    `outputs` are (option, path) pairs; URLs, `-` (stdout) and absent options are left out."""
    seen = []
    for role, pairs in (("input", inputs), ("output", outputs)):
        for option, path in pairs:
            if not path or path == "-" or "://" in str(path):
                continue
            for other_option, other_path, other_role in seen:
                if role == "output" and same_file(path, other_path):
                    what = "destroy the input" if other_role == "input" else "mix two outputs in one file"
                    raise UserError(f"{option} {path} is the same file as {other_option} {other_path}: writing it "
                                    f"would {what}; choose another path for {option}")
            seen.append((option, path, role))


def same_file(first, second):
    """Whether two paths name one file: the same inode when both exist, else the same resolved path."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them is not there yet
        return os.path.realpath(first) == os.path.realpath(second)


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
