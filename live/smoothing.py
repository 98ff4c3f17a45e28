"""How the shown label follows the model: the probabilities a result shows (its label, score and
top list, on screen, on the page and in the JSONL record) are the head's outputs smoothed over
the last sample points, so the label does not flicker between two close classes; the head's own
output for the current window stays in `Result.probs`.

`--smooth` (and `Model.stream(smooth=…)`) reads `ema:ALPHA`, an exponential moving average that
weighs the newest output by ALPHA (1 shows the head as it is), or `N`, the mean of the last N
outputs. docs/decisions.md says how the default was chosen. Light: numpy only."""
from collections import deque
from dataclasses import dataclass

import numpy as np

DEFAULT = "ema:0.5"


@dataclass(frozen=True)
class Smoothing:
    window: int = 1              # the mean of the last `window` outputs, when alpha is None
    alpha: float | None = None   # exponential moving average: shown = alpha * new + (1 - alpha) * shown

    @classmethod
    def parse(cls, given):
        """A Smoothing from `N`, `ema:ALPHA`, an int, or a Smoothing; ValueError says what is accepted."""
        if isinstance(given, Smoothing):
            return given
        text = str(given).strip()
        try:
            if text.lower().startswith("ema:"):
                alpha = float(text[4:])
                if 0 < alpha <= 1:
                    return cls(alpha=alpha)
            elif int(text) >= 1:
                return cls(window=int(text))
        except ValueError:
            pass
        raise ValueError(f"'{given}' is not a smoothing: give N (the mean of the last N outputs, 1 or more) "
                         "or ema:ALPHA (0 < ALPHA <= 1; 1 is no smoothing)")

    def start(self):
        """A fresh smoother for one stream: call it with each new output, it returns what to show."""
        return _MovingAverage(self.alpha) if self.alpha is not None else _Mean(self.window)

    def __str__(self):
        return f"ema:{self.alpha:g}" if self.alpha is not None else str(self.window)


class _Mean:
    def __init__(self, window):
        self.recent = deque(maxlen=window)

    def __call__(self, probs):
        self.recent.append(probs)
        return np.mean(self.recent, axis=0) if len(self.recent) > 1 else probs


class _MovingAverage:
    def __init__(self, alpha):
        self.alpha, self.shown = alpha, None

    def __call__(self, probs):
        self.shown = probs if self.shown is None else self.alpha * probs + (1 - self.alpha) * self.shown
        return self.shown
