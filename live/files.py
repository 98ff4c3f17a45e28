"""Writing files so that readers only ever see complete ones."""
import hashlib
import os
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path


def file_sha256(path):
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def written_atomically(path):
    """Yield a temporary path beside `path` (same suffix, so writers that look at it still
    work); when the block succeeds it is renamed to `path`, otherwise it is deleted. A cache
    entry is complete or absent, whatever stops the process: an error, Ctrl-C or SIGTERM.

    The temporary name holds the host, the process and a random token: on a cache shared by
    many machines, two workers may write the same entry at once, and processes on different
    hosts can have the same pid. The last rename wins; both wrote the same content. The data
    is flushed to storage before the rename, so a crashed machine leaves no renamed file
    whose content never arrived."""
    path = Path(path)
    temporary = path.with_name(f".{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp.{path.name}")
    try:
        yield temporary
        if temporary.is_file():
            descriptor = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
