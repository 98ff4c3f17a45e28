"""The frame path: the one function that turns a decoded frame into backbone input, and the
time sampler that picks which frames enter the buffer. Training imports both from here, so
what the model saw in training is exactly what it sees live."""
import cv2


def to_model_input(frame, image_size):
    """Centre square crop, resize to image_size, BGR -> RGB. Returns uint8 (S, S, 3).

    Accepts grayscale (H, W), BGR (H, W, 3) and BGRA (H, W, 4) frames of any size.
    """
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = frame[top:top + side, left:left + side]
    # INTER_AREA averages when shrinking (no aliasing); it falls back to linear when enlarging.
    interpolation = cv2.INTER_AREA if side > image_size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (image_size, image_size), interpolation=interpolation)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


class TimeSampler:
    """Decides which frames the model sees, spaced the way it was trained.

    With `frame_rate` unset, every `frame_step`-th frame is kept, counted by index. With
    `frame_rate` set, frames are kept by their timestamps on a grid `frame_step / frame_rate`
    seconds apart: of the frames around each grid time, the nearest one is kept. So a 25 fps
    file, a 30 fps camera and a 10 fps stream are sampled at the same moments, and a source
    that drops frames does not stretch the window.
    """

    def __init__(self, frame_step=1, frame_rate=None):
        if frame_step < 1:
            raise ValueError("frame_step must be at least 1")
        self.frame_step = int(frame_step)
        self.period = frame_step / frame_rate if frame_rate else None
        self._count = 0
        self._next_due = None
        self._previous = None
        self._interval = None

    def keep(self, timestamp):
        """True when the frame at `timestamp` (seconds) should enter the buffer."""
        if self.period is None:
            keep = self._count % self.frame_step == 0
            self._count += 1
            return keep
        previous, self._previous = self._previous, timestamp
        if self._next_due is None:
            self._next_due = timestamp + self.period
            return True
        # The source's frame interval, smoothed so that one early or late frame from a jittery
        # camera doesn't skew it, and capped at the period (a slow source: keep every frame).
        gap = min(max(timestamp - previous, 0.0), self.period)
        self._interval = gap if self._interval is None else 0.8 * self._interval + 0.2 * gap
        # Keep this frame unless the next one, expected one interval later, will lie nearer the
        # grid time. Deciding now, not after the next frame, adds no latency.
        if timestamp < self._next_due - self._interval / 2 - 1e-9:
            return False
        if timestamp - self._next_due > self.period:  # a long gap (a stalled source): restart the grid
            self._next_due = timestamp + self.period
        else:  # advance by whole periods, so the grid does not drift with jitter
            self._next_due += self.period
        return True
