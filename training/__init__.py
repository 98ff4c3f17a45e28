"""training: the offline trainer. Builds on live's frame path, backbones and bundle format;
`live` never imports anything from here."""
import ctypes
import sys

import live  # noqa: F401  (sets the backend and quiets TensorFlow before anything imports it)

# Bytes glibc's malloc keeps at the top of a heap when memory is freed (M_TOP_PAD; setting it
# also fixes the mmap threshold where it starts, instead of letting glibc raise it: mallopt(3)).
# A training step makes and frees tensors of megabytes (a batch of windows, then TensorFlow's
# copies and activations of it); with glibc's defaults the freed pages went back to the kernel
# and came back zeroed, one page fault each. It must be set before TensorFlow starts (here, on
# the trainer's first import): set once fit began, it changed nothing (docs/decisions.md).
ALLOCATOR_TOP_PAD = 256 * 2**20


def _keep_freed_memory(pad=ALLOCATOR_TOP_PAD):
    """Ask glibc's malloc to keep `pad` freed bytes for reuse. Elsewhere (macOS, musl) there is
    no such call, and nothing is done."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-2, pad)  # M_TOP_PAD, from glibc's malloc.h


_keep_freed_memory()


def log(message):
    """The trainer's progress line on stderr, flushed at once (a long extraction or fit is
    watched as it goes; stdout is kept for results such as `predict --json`)."""
    print(message, file=sys.stderr, flush=True)
