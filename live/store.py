"""The model store: third-party files a bundle needs but does not hold (MoViNet-A0-Stream, the
Kinetics-600 label list), each named by its content (sha256 and size), a file name and its
official source. A bundle's manifest carries these references (`stored_files`), so the
project ships only what it made, as Keras applications and torchvision do with their weights.

A reference is resolved, in order:
1. the folders in LIVE_MODELS (separated by os.pathsep), searched recursively and matched by
   content, so names and layout do not matter (`LIVE_MODELS=../shared/models` works as it is);
2. the user cache, `$XDG_CACHE_HOME/live/models` (`~/.cache/live/models`; LIVE_CACHE_DIR moves
   the whole cache);
3. a download from the source URL into the cache: resumable, checked against the sha256,
   written under a temporary name and renamed, so the cache never holds a partial file under
   the real name.
Each file's sha256 is computed once and remembered by path, size and modification time
(`hashes.json` in the cache), so a run's start pays for a stat, not a hash.
"""
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from live.errors import UserError
from live.files import cache_dir, file_sha256, flushed, written_atomically

MODELS_ENV = "LIVE_MODELS"


@dataclass(frozen=True)
class StoredFile:
    name: str    # its file name in the cache
    sha256: str
    size: int
    url: str     # the official source
    title: str   # what it is, for messages

    def reference(self):
        """The manifest's record of it."""
        return asdict(self)

    @classmethod
    def from_reference(cls, reference, where):
        """The StoredFile a manifest names, checked field by field: a manifest is not trusted."""
        fields = {"name": str, "sha256": str, "size": int, "url": str, "title": str}
        if not isinstance(reference, dict) or any(not isinstance(reference.get(key), kind)
                                                  for key, kind in fields.items()):
            raise UserError(f"{where}: a stored file's reference needs {', '.join(fields)}; the bundle is damaged")
        name, sha256 = reference["name"], reference["sha256"].lower()
        if Path(name).name != name or name.startswith(".") or not re.fullmatch(r"[0-9a-f]{64}", sha256) \
                or reference["size"] < 0:
            raise UserError(f"{where}: the stored file reference {name!r} is malformed; the bundle is damaged")
        return cls(name, sha256, reference["size"], reference["url"], reference["title"])


# The third-party files this project knows, by the key its backbones registry uses.
STORED_FILES = {
    "movinet_a0_stream_k600_int8": StoredFile(
        name="movinet_a0_stream_k600_int8.tflite",
        sha256="6125b36e2485eeb5cc1fd6206cf5e5d70235593fbc84610d1dce97fe3aa9c2ac", size=3276048,
        # TensorFlow Hub's address (now served by Kaggle Models) for
        # movinet/a0/stream/kinetics-600/classification/tflite/int8.
        url="https://tfhub.dev/tensorflow/lite-model/movinet/a0/stream/kinetics-600/classification/tflite/int8/1"
            "?lite-format=tflite",
        title="MoViNet-A0-Stream Kinetics-600, int8 LiteRT (Google, Apache-2.0)"),
    "kinetics600_labels": StoredFile(
        name="kinetics_600_labels.txt",
        sha256="8dfca4202520ea8291ce0242ef33b006d0a0772b409663c090a2876bc1978dcf", size=9209,
        url="https://raw.githubusercontent.com/tensorflow/models/master/official/projects/movinet/files/"
            "kinetics_600_labels.txt",
        title="the Kinetics-600 label list (tensorflow/models, Apache-2.0)"),
}


def known_file(sha256):
    """The registry's StoredFile with this content, or None."""
    return next((stored for stored in STORED_FILES.values() if stored.sha256 == sha256), None)


def model_folders():
    return [Path(folder) for folder in os.environ.get(MODELS_ENV, "").split(os.pathsep) if folder]


def cache_folder():
    return cache_dir() / "models"


def find(stored):
    """Where `stored` is on this machine (LIVE_MODELS, then the cache), or None. Downloads nothing."""
    hashes = _Hashes(cache_folder() / "hashes.json")
    try:
        for folder in model_folders():
            for path in _files_of_size(folder, stored.size):
                if hashes.sha256(path) == stored.sha256:
                    return path
        cached = cache_folder() / stored.name
        if cached.is_file() and cached.stat().st_size == stored.size and hashes.sha256(cached) == stored.sha256:
            return cached
        return None
    finally:
        hashes.save()


def locate(stored, download=True):
    """The path of `stored`: found (see find), or downloaded into the cache. Raises one UserError
    that says where it looked, the URL and what to do."""
    found = find(stored)
    if found is not None:
        return found
    if not download:
        raise UserError(f"{_missing(stored)}; {_advice(stored)}")
    return _download(stored)


def describe(stored):
    """One line for `live --version`: the file and where it is, or that it is not here yet."""
    found = find(stored)
    where = found if found is not None else f"not found; downloaded on first use from {stored.url}"
    return f"{stored.title}: {where}"


def _download(stored):
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    # A dotfile named by the content: a later run resumes it, and nothing looks for it by name.
    partial = folder / f".{stored.name}.{stored.sha256[:16]}.part"
    from live.fetch import FetchError, fetch

    if not partial.exists() or partial.stat().st_size < stored.size:
        try:
            fetch(stored.url, partial)
        except FetchError as exc:
            resume = " (what arrived is kept: the next run resumes it)" if partial.exists() else ""
            raise UserError(f"{_missing(stored)}, and its download from {stored.url} failed ({exc}){resume}; "
                            f"{_advice(stored)}") from None
    digest = file_sha256(partial)
    if digest != stored.sha256:
        partial.unlink(missing_ok=True)
        raise UserError(f"the download of {stored.title} from {stored.url} is not the expected file (sha256 "
                        f"{digest[:16]}…, expected {stored.sha256[:16]}…); it was removed. Run again, or "
                        f"{_advice(stored, short=True)}")
    flushed(partial)
    destination = folder / stored.name
    os.replace(partial, destination)
    hashes = _Hashes(folder / "hashes.json")
    hashes.remember(destination, digest)
    hashes.save()
    return destination


def _missing(stored):
    folders = os.pathsep.join(map(str, model_folders())) or "not set"
    return (f"{stored.title} ({stored.name}) is not on this machine: not in {MODELS_ENV} ({folders}) "
            f"nor in the cache {cache_folder()}")


def _advice(stored, short=False):
    where = f"put {stored.name} (sha256 {stored.sha256[:16]}…, any name) in a folder and name it in {MODELS_ENV}"
    return where if short else f"{where}, or run once online to download it (e.g. {MODELS_ENV}=../shared/models)"


def _files_of_size(folder, size):
    """Files under `folder` (recursively, in a stable order) whose size is `size`."""
    for root, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            path = Path(root) / name
            try:
                if path.stat().st_size == size:
                    yield path
            except OSError:  # a dangling link, a file gone meanwhile
                continue


class _Hashes:
    """sha256 of files by absolute path, valid while their size and mtime stay the same."""

    def __init__(self, path):
        self.path = path
        self.changed = False
        try:
            self.known = json.loads(path.read_text())
            if not isinstance(self.known, dict):
                self.known = {}
        except (OSError, ValueError):
            self.known = {}

    def sha256(self, path):
        path = Path(os.path.realpath(path))
        status = path.stat()
        entry = self.known.get(str(path))
        if isinstance(entry, list) and entry[:2] == [status.st_size, status.st_mtime_ns] and len(entry) == 3:
            return entry[2]
        return self.remember(path, file_sha256(path))

    def remember(self, path, digest):
        path = Path(os.path.realpath(path))
        status = path.stat()
        self.known[str(path)] = [status.st_size, status.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self):
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with written_atomically(self.path) as temporary:
                temporary.write_text(json.dumps(self.known))
        except OSError as exc:  # a read-only cache: hashes are computed again next time
            print(f"warning: cannot remember file hashes in {self.path} ({exc})", file=sys.stderr)
        self.changed = False
