"""The one exception type that reaches the user, printed as a single `error: …` line."""


def first_line(exc, limit=200):
    """The first line of an exception's message, cut to `limit` characters: libraries' messages
    run to pages (a Keras config dump, an OpenCV backtrace), and we print one line."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


class UserError(Exception):
    """Something the user can fix: a bad path, a missing bundle, an unreachable stream.

    The message says what is wrong and what to do; `exit_code` is the process status.
    """

    def __init__(self, message, exit_code=2):
        super().__init__(message)
        self.exit_code = exit_code
