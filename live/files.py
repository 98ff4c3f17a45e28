"""Where the cache lives, and writing files so that readers only ever see complete ones."""
import hashlib
import os
import secrets
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path


def cache_dir():
    """Where converted weights and runtime models are cached (LIVE_CACHE_DIR overrides)."""
    root = os.environ.get("LIVE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "live")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path):
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temporary_beside(path):
    """A name for `path`'s temporary, in its folder (a rename is atomic within one file system):
    a dotfile that holds the host, the process and a random token, then `.tmp.` and the name
    (the same suffix, so writers that look at it still work). On a cache shared by many
    machines two workers may write the same entry at once, and processes on different hosts
    can have the same pid; FeatureCache.sweep_temporaries finds killed writers' leftovers by
    the `.tmp.`."""
    path = Path(path)
    return path.with_name(f".{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp.{path.name}")


def flushed(path):
    """Flush a file's data, or a folder's entries, to storage."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def written_atomically(path):
    """Yield a temporary path beside `path` (temporary_beside); when the block succeeds it is
    renamed to `path`, otherwise it is deleted. A cache entry is complete or absent, whatever
    stops the process: an error, Ctrl-C or SIGTERM. Two writers of one entry: the last rename
    wins; both wrote the same content. The data is flushed to storage before the rename, so a
    crashed machine leaves no renamed file whose content never arrived. (The rename itself is
    not flushed: after a crash a cache entry may be missing, and is made again.)"""
    path = Path(path)
    temporary = temporary_beside(path)
    try:
        yield temporary
        if temporary.is_file():
            flushed(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def folder_written_atomically(path):
    """Yield a new, empty folder beside `path` to fill; when the block succeeds it takes
    `path`'s place, otherwise it is deleted. The folder version of written_atomically, with
    its temporary names and its flush before the rename. It differs where a folder must: an
    existing folder (a bundle being replaced) is swapped with the new one in a single rename
    (os.replace cannot put a folder over a non-empty one), so `path` is never missing; and
    the rename is flushed too, as a bundle is made once, not again like a cache entry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_beside(path)
    staging.mkdir()  # with the umask's permissions: a bundle is an ordinary folder
    try:
        yield staging
        for item in staging.iterdir():
            if item.is_file():
                flushed(item)
        flushed(staging)
        if not path.exists():
            os.replace(staging, path)
        elif not _exchange(staging, path):  # no renameat2 here: a brief gap, never a mixed folder
            retired = temporary_beside(path)
            os.replace(path, retired)
            try:
                os.replace(staging, path)
            except OSError:
                os.replace(retired, path)  # put the old folder back
                raise
            shutil.rmtree(retired, ignore_errors=True)
        flushed(path.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap, this is the old folder


def _exchange(first, second):
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0
