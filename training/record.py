"""`train record`: labelled clips from a camera, a file or a stream (any source `live` reads),
into a dataset folder in the class-folders layout that `train fit --data` reads:

    DATA/<label>/<session>__<n>.mp4

The `__` makes the session (by default the time the recording started) the clips' group, so
a grouped split keeps one session's clips on one side: clips of one person in one room taken
moments apart are near copies, and testing on a session the model trained on would flatter it.

Time is the source's: the countdown and the clips run on the frames' timestamps (a camera's
clock, a file's presentation times), so a file is cut at the same frames however fast it is
read. Each clip is written at the rate its frames really came at, measured from their
timestamps, and each frame is placed by its timestamp (VideoOutput), so a camera that delivers
fewer frames than it claims still gives clips that play in real time. A clip is written under
a temporary name and renamed once complete: whatever stops the recording (q, Esc, Ctrl-C, the
source ending) keeps the finished clips and leaves no partial one.
"""
import contextlib
import math
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from live.checks import same_file
from live.choices import plausible_fps
from live.errors import UserError
from live.files import written_atomically
from live.render import AMBER, GREEN, GREY, RED, WHITE, OverlayRenderer
from live.sources import DEFAULT_FPS, Feed, open_source
from training.datasets import videos_in

EXIT_INTERRUPTED = 130  # as `live`: stopped with Ctrl-C
MARGIN_S = 1.0  # beyond the window: room for the sampler's grid to fall anywhere, and for time shifts
SUFFIX = ".mp4"  # H.264 (VideoOutput): small, and plays everywhere
# A class or session name is a folder or file name on every system: letters, digits, _ - and
# inner dots; no separators, no leading dot (hidden), no trailing dot (Windows drops it).
NAME = re.compile(r"\w([\w.-]*\w)?")
MAX_NAME = 100


def check_name(name, option):
    """`name` if it can name a class folder or a session, else a UserError saying why."""
    if len(name) > MAX_NAME or not NAME.fullmatch(name):
        raise UserError(f"{option} {name!r} cannot name a folder: use up to {MAX_NAME} letters, digits, "
                        "_ and -, with dots only inside (e.g. waving or hand_wave)")
    return name


def window_seconds(backbone, seq_len, source_fps):
    """Seconds of video that one window of `seq_len` frames of `backbone` spans: at the
    backbone's own rate when it has one (MoViNet: 5 fps), else at the source's, which `train
    fit` takes as the clips' rate."""
    from live.backbones import get_backbone

    rate = get_backbone(backbone).frame_rate or (source_fps if plausible_fps(source_fps) else DEFAULT_FPS)
    return seq_len / rate


def default_seconds(backbone, seq_len, source_fps):
    """The default clip length: a window and MARGIN_S, up to the next half second."""
    return math.ceil((window_seconds(backbone, seq_len, source_fps) + MARGIN_S) * 2) / 2


def next_number(folder, session):
    """The next free clip number of `session` in `folder`: a session recorded again (the same
    --session) continues its numbers, and never replaces a clip."""
    taken = [int(match.group(1)) for path in folder.iterdir()
             if (match := re.fullmatch(rf"{re.escape(session)}__(\d+)", path.stem))]
    return max(taken, default=0) + 1


def clip_path(folder, session, source=None):
    """Where the session's next clip goes: its next number (next_number), past any name that is
    taken and past `source`, the file being recorded from. A clip is renamed into place, which
    would replace a file there, so this asks the file system (on a case-insensitive one,
    S__01.MP4 takes s__01.mp4) and compares by identity (live.checks.same_file: a link to the
    source counts as the source)."""
    number = next_number(folder, session)
    while True:
        path = folder / f"{session}__{number:02d}{SUFFIX}"
        if not os.path.lexists(path) and not (source and same_file(path, source)):
            return path
        number += 1


def check_folder(folder):
    """Refuse a class folder that cannot be made or written, before a source is opened."""
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                raise UserError(f"{path} is a file, not a folder; give a dataset folder")
            if not os.access(path, os.W_OK | os.X_OK):
                raise UserError(f"cannot write into {path}: permission denied; give a folder you can write")
            return


class MeasuredRate:
    """Frames per second, from the median interval between the last timestamps seen: a
    camera's real delivery rate, not the one its driver claims; a variable-rate file's own.
    For a live source, never above the rate it claims, when it claims one: a stream's first
    frames come in a burst (what the decoder buffered while it opened), faster than its rate."""

    def __init__(self, claimed, live, keep=64):
        self.claimed = claimed if plausible_fps(claimed) else None
        self.ceiling = self.claimed if live else None
        self._times = deque(maxlen=keep + 1)

    def add(self, timestamp):
        self._times.append(timestamp)

    def fps(self):
        intervals = np.diff(self._times)
        intervals = intervals[intervals > 0]
        measured = 1 / float(np.median(intervals)) if len(intervals) >= 4 else None  # fewer: too few to tell
        if not plausible_fps(measured):
            return self.claimed or DEFAULT_FPS
        return round(min(measured, self.ceiling or measured), 3)


class ClipWriter:
    """One clip being written: to a temporary name, renamed on `keep`, deleted on `discard`."""

    def __init__(self, path, size, fps, frames):
        from live.outputs import VideoOutput

        self.path, self.frames = path, frames  # frames: the clip's length in frames at `fps`
        self._stack = contextlib.ExitStack()
        temporary = self._stack.enter_context(written_atomically(path))
        self.output = VideoOutput(temporary, size, fps)
        self._stack.callback(self.output.close)  # closed before the rename (or the deletion)
        self.start = None

    def write(self, frame):
        """Write a frame; False once it lies past the clip's end (it is not written). Frames are
        placed in the slots of the clip's rate by timestamp, as VideoOutput places them; when
        the frame past the end skips the last slots (a jittery camera), the last picture holds
        them, as it holds any gap, so the clip is always its full length."""
        fps = self.output.fps
        if self.start is None:
            self.start = frame.timestamp
        if round(frame.timestamp * fps) - round(self.start * fps) >= self.frames:
            if not self.full:
                self.output.write(self._last, (round(self.start * fps) + self.frames - 1) / fps)
            return False
        self.output.write(frame.image, frame.timestamp)
        self._last = frame.image
        return True

    @property
    def full(self):
        return self.output.written >= self.frames

    def keep(self):
        self._stack.close()

    def discard(self):
        self._stack.__exit__(_Discarded, _Discarded(), None)


class _Discarded(Exception):
    """Unwinds a clip's temporary file (see ClipWriter.discard)."""


class Recorder:
    """The recording, driven by frames: a countdown, then a clip, then the next countdown,
    until `clips` clips are written. Each frame returns the lines to show over it; what
    happens (a countdown, a clip started, a clip saved) is also said on stderr."""

    def __init__(self, folder, label, session, clips, seconds, countdown, rate, say, source_file=None):
        self.folder, self.label, self.session = folder, label, session
        self.source_file = source_file  # the file recorded from, which no clip may replace (clip_path)
        self.clips, self.seconds, self.countdown = clips, seconds, countdown
        self.rate = rate
        self.say = say
        self.saved = []  # (path, frames, fps) of each finished clip
        self.writer = None
        self._countdown_from = None  # when the running countdown started (source time)

    @property
    def done(self):
        return len(self.saved) >= self.clips

    @property
    def number(self):
        return len(self.saved) + 1

    def title(self):
        return f"{self.number}/{self.clips} ({self.label})"

    def take(self, frame):
        """Advance by one frame; returns the overlay's rows (see OverlayRenderer.rows)."""
        if self.done:
            return [(f"recorded {len(self.saved)} clips of {self.label}", GREEN, 1.0, None)]
        self.rate.add(frame.timestamp)
        if self.writer is None:
            if self._countdown_from is None:  # the first frame
                self._countdown_from = frame.timestamp
                self._announce_countdown()
            left = self.countdown - (frame.timestamp - self._countdown_from)
            if left > 1e-6:
                return [(f"clip {self.title()} in {math.ceil(left - 1e-6)}", AMBER, 1.0, None), QUIT_HINT]
            self._start(frame)
        if not self.writer.write(frame):  # a frame late enough to end the clip without filling it
            self._finish()
            return self.take(frame)
        elapsed = self.writer.output.written / self.writer.output.fps
        rows = [(f"recording {self.title()}", RED, 1.0, None),
                (f"{max(self.seconds - elapsed, 0):.1f} s left", WHITE, 0.7, min(elapsed / self.seconds, 1.0)),
                QUIT_HINT]
        if self.writer.full:
            self._finish()
        return rows

    def _start(self, frame):
        fps = self.rate.fps()
        path = clip_path(self.folder, self.session, self.source_file)
        self.writer = ClipWriter(path, (frame.image.shape[1], frame.image.shape[0]), fps,
                                 max(1, round(self.seconds * fps)))
        self.say(f"clip {self.title()}: recording {self.seconds:g} s")

    def _finish(self):
        writer, self.writer = self.writer, None
        writer.keep()
        self.say(f"clip {self.title()}: saved {writer.path} ({writer.output.written / writer.output.fps:.1f} s, "
                 f"{writer.output.written} frames at {writer.output.fps:g} fps)")
        self.saved.append((writer.path, writer.output.written, writer.output.fps))
        self._countdown_from = writer.start + self.seconds
        if not self.done:
            self._announce_countdown()

    def _announce_countdown(self):
        if self.countdown:
            self.say(f"clip {self.title()}: starting in {self.countdown:g} s")

    def end(self):
        """Stop here: the clip being written, unfinished (a finished one is saved at once), is
        deleted. Returns its number, or None when none was being written."""
        if self.writer is None:
            return None
        self.writer.discard()
        self.writer = None
        return self.number

    def summary(self):
        seconds = sum(frames / fps for _, frames, fps in self.saved)
        held = len(videos_in(self.folder))
        if not self.saved:
            return f"recorded no clips of {self.label}; {self.folder} holds {held}"
        return (f"recorded {len(self.saved)} clip{'s' * (len(self.saved) != 1)} of {self.label} "
                f"({seconds:.1f} s in all) into {self.folder}, session {self.session}; the folder holds {held}")


QUIT_HINT = ("q or Esc: stop (finished clips are kept)", GREY, 0.6, None)


def say(message):
    print(message, file=sys.stderr, flush=True)


def record(data, label, clips=5, seconds=None, countdown=None, camera=None, file=None, session=None,
           backbone=None, seq_len=None, display=None, stop=None):
    """Record `clips` clips of `label` into `data`/`label`/; returns the exit code (0: all
    recorded, or stopped with q; 1: the source ended or failed first; 130: Ctrl-C). `countdown`:
    seconds before each clip [default: RECORD_COUNTDOWN_S from a camera or stream, 0 from a
    file]. `stop`, when given, is checked after every frame (a StopRequest: true after SIGINT or
    SIGTERM)."""
    from training.config import RECORD_COUNTDOWN_S, FeatureConfig, FitConfig

    if not data:
        raise UserError("give the dataset folder to record into: train record DATA --label NAME")
    if label is None:
        raise UserError("give --label NAME: the action the clips show, e.g. --label waving")
    label = check_name(label, "--label")
    session = check_name(session, "--session") if session is not None else time.strftime("%Y%m%d-%H%M%S")
    if "__" in session:
        raise UserError(f"--session {session!r} cannot hold '__': it ends the session's part of a clip's name")
    folder = Path(data) / label
    check_folder(folder)
    source = open_source(camera=0 if camera is None and file is None else camera, file=file)
    recorder = None
    try:
        if stop is not None:
            stop.callbacks.append(source.interrupt)
        if countdown is None:  # someone steps in front of a camera or stream; a file has no one to wait for
            countdown = RECORD_COUNTDOWN_S if source.live else 0.0
        seconds = seconds or default_seconds(backbone or FeatureConfig.backbone, seq_len or FitConfig.seq_len,
                                             source.fps)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot make {folder}: {exc.strerror}") from None
        window = _open_window(display)
        recorder = Recorder(folder, label, session, clips, seconds, countdown,
                            MeasuredRate(source.fps, source.live), say, source_file=None if source.live else file)
        say(f"recording {clips} clip{'s' * (clips != 1)} of {seconds:g} s of {label} from {source.name} "
            f"into {folder}" + (" (q or Esc in the window stops)" if window else ""))
        if stop is not None:
            stop.in_loop = True  # from here a signal is a flag: the partial clip is deleted, the rest kept
        failure, quit_key = _run(recorder, source, window, stop)
    finally:
        source.close()
        # However the loop ended (a second Ctrl-C, a fault, included), no partial clip stays.
        discarded = recorder.end() if recorder else None
    say(recorder.summary())
    if discarded:
        say(f"clip {discarded}/{clips} was cut short and deleted")
    if failure:
        raise failure
    if stop and stop.signal == signal.SIGINT:
        return EXIT_INTERRUPTED
    if not recorder.done and not quit_key and not stop:
        raise UserError(f"{source.name} ended after {len(recorder.saved)} of the {clips} clips; give a longer "
                        "source, or fewer or shorter clips (--clips, --seconds)", exit_code=1)
    return 0


def _open_window(display):
    """A Window when one is wanted and can be shown, else None (with a note why not)."""
    if display is False:
        return None
    from live.display import Window, screen_problem

    problem = screen_problem()
    if problem:
        say(f"note: {problem}; progress goes to stderr")
        return None
    return Window()


def _run(recorder, source, window, stop):
    """Feed frames to the recorder until it is done, the source ends, or the user stops;
    returns (the source's failure or None, whether the window was quit)."""
    # In a window a file plays at its own pace, as in `live`; headless it is read as fast as it decodes.
    feed = Feed(source, source.name, realtime=window is not None)
    arrived = threading.Event()
    if source.live:
        source.arrived = arrived
    renderer = OverlayRenderer(min_height=480)
    try:
        while not recorder.done and not feed.ended and not stop:
            arrived.clear()  # before polling: a frame that comes after the poll sets it again
            now = time.perf_counter()
            frame = feed.poll(now)
            if frame is None:
                if source.live:
                    arrived.wait(0.05)
                elif feed.due > now:
                    time.sleep(min(feed.due - now, 0.05))
                continue
            rows = recorder.take(frame)
            if window is not None and not window.show(renderer.draw_rows(frame.image, rows)):
                return feed.failure, True
        return feed.failure, False
    finally:
        feed.close()
        if window is not None:
            window.close()
