"""`train download`: fetch a known dataset archive with a progress bar, resuming a partial
download, then unpack it safely."""
import os
import tarfile
from pathlib import Path

from live.errors import UserError
from live.fetch import FetchError, fetch

DATASETS = {
    "ucf101-top5": "https://github.com/sayakpaul/Action-Recognition-in-TensorFlow/releases/download/v1.0.0/"
                   "ucf101_top5.tar.gz",
}


def download(name, to, url=None, progress=True):
    if name not in DATASETS and not url:
        raise UserError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    url = url or DATASETS[name]
    folder = Path(to)
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / url.rsplit("/", 1)[-1]
    partial = archive.with_name(archive.name + ".part")
    if not archive.exists():
        _fetch(url, partial, progress)
        os.replace(partial, archive)
    _extract(archive, folder)
    return folder


def _fetch(url, partial, progress):
    try:
        fetch(url, partial, progress)
    except FetchError as exc:
        if not exc.reached:
            raise UserError(f"{exc}; check the network connection, "
                            "or download the archive elsewhere and pass --url file://PATH") from None
        raise UserError(f"download of {url} failed: {exc}; run the same command again to resume") from None


def _extract(archive, folder):
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")  # refuses absolute paths, links out of the folder
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{archive} is not a readable archive ({exc}); delete it and download again") from None
