"""training: the offline trainer. Builds on live's frame path, backbones and bundle format;
`live` never imports anything from here."""
import sys

import live  # noqa: F401  (sets the backend and quiets TensorFlow before anything imports it)


def log(message):
    """The trainer's progress line on stderr, flushed at once (a long extraction or fit is
    watched as it goes; stdout is kept for results such as `predict --json`)."""
    print(message, file=sys.stderr, flush=True)
