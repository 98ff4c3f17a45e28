"""`train download`: fetch a known dataset archive with a progress bar, resuming a partial
download, then unpack it safely."""
import os
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from live.errors import UserError

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
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already whole
            return
        raise UserError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach {url} ({reason}); check the network connection, "
                        "or download the archive elsewhere and pass --url file://PATH") from None
    with response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"
        length = int(response.headers.get("Content-Length") or 0)
        total = (have if resumed else 0) + length if length else None
        with open(partial, mode) as f, tqdm(total=total, initial=have if resumed else 0, unit="B",
                                             unit_scale=True, desc=partial.name[:-5], file=sys.stderr,
                                             disable=not progress) as bar:
            try:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
            except OSError as exc:
                raise UserError(f"download of {url} broke off ({exc}); run the same command again to resume") \
                    from None
        if total and partial.stat().st_size < total:
            raise UserError(f"download of {url} ended early; run the same command again to resume")


def _extract(archive, folder):
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")  # refuses absolute paths, links out of the folder
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{archive} is not a readable archive ({exc}); delete it and download again") from None
