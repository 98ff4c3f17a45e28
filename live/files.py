"""Writing files so that readers only ever see complete ones."""
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_atomically(path):
    """Yield a temporary path beside `path` (same suffix, so writers that look at it still
    work); when the block succeeds it is renamed to `path`, otherwise it is deleted. A cache
    entry is complete or absent, whatever stops the process: an error, Ctrl-C or SIGTERM."""
    path = Path(path)
    temporary = path.with_name(f".{os.getpid()}.tmp.{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
