"""Downloading one file over HTTP(S) into a partial file that a later run resumes (a Range
request from where the last one stopped), with a progress bar on a terminal. The model store
(live/store.py) and `train download` both fetch through here; each turns a FetchError into
its own one-line advice."""
import sys
import urllib.error
import urllib.parse
import urllib.request

from tqdm import tqdm

TIMEOUT = 30  # seconds without a byte before a connection counts as lost


class FetchError(Exception):
    """A download that did not complete. `reached` is False when the server was never
    reached (offline, a wrong host): the words then say so, and nothing was written."""

    def __init__(self, message, reached=True):
        super().__init__(message)
        self.reached = reached


def fetch(url, partial, progress=None):
    """Append `url`'s bytes to `partial` (resuming from its size when the server honours Range,
    otherwise starting it again), until the server's length is reached. `progress`: a bar on
    stderr; by default only when stderr is a terminal."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already whole
            return
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        host = urllib.parse.urlsplit(url).netloc or url
        raise FetchError(f"cannot reach {host} ({getattr(exc, 'reason', exc)})", reached=False) from None
    with response:
        resumed = response.status == 206
        length = int(response.headers.get("Content-Length") or 0)
        total = (have if resumed else 0) + length if length else None
        show = sys.stderr.isatty() if progress is None else progress
        with open(partial, "ab" if resumed else "wb") as file, \
                tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                     desc=partial.name.split(".part")[0].lstrip("."), file=sys.stderr, disable=not show) as bar:
            try:
                while chunk := response.read(1 << 16):
                    file.write(chunk)
                    bar.update(len(chunk))
            except OSError as exc:
                raise FetchError(f"the connection broke off ({exc})") from None
    if total and partial.stat().st_size < total:
        raise FetchError(f"the connection broke off after {partial.stat().st_size} of {total} bytes")
