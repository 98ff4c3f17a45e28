"""Frame sources: one class per kind of input, behind `open_source`.

- FileSource: every frame, in order, nothing dropped, so a replay is deterministic; each
  frame carries its presentation time from the container.
- CameraSource and StreamSource: a reader thread keeps only the newest frame, so the picture
  never lags behind reality when the machine can't keep up; dropped frames are counted. Both
  reopen a source that stops delivering, with backoff, before giving up.

Decode only what is used: once the pipeline hands a source its stream's TimeSampler (`plan`),
the source decides at each frame whether the model samples it, and converts to BGR only the
frames that are sampled or shown. A skipped frame is still decoded (H.264 needs its references:
grab()) but not converted (retrieve()); it comes with `image` None, unless every picture is
wanted (a window, an --output video, a web viewer: every frame is drawn). The pixels of a
converted frame are the same either way: grab() then retrieve() is what read() does. A live
source then drops frames the sampler skips before any it samples, and counts the sample points
it had to drop (`missed`).
"""
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from live.choices import plausible_fps
from live.cpus import usable_cpus
from live.errors import UserError

ENDED = object()  # what a live source's take() gives once it has ended
DEFAULT_FPS = 25.0  # assumed when a file does not say its frame rate, or says nonsense
URL_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://", "srt://")


@dataclass
class Frame:
    index: int          # 0-based index of the frame in the source
    timestamp: float    # seconds, from the container for files, from the clock for live sources
    image: np.ndarray   # as decoded (BGR, or grayscale); None for a frame the sampler skipped and nobody draws
    read_at: float      # time.perf_counter() when it was read: latency is measured from here
    read_ms: float      # how long reading it took
    sampled: bool | None = None  # decided by a planned source (see `plan`); None: by the pipeline


@runtime_checkable
class Source(Protocol):
    """What every kind of source offers the pipeline (FileSource, CameraSource, StreamSource,
    FrameIterable, ArraySource; a new kind of input is one more class with these members).

    A source that is not `live` hands out every frame in order through frames(); a live one
    keeps the newest (take(), ready(): see _LatestFrameSource). `plan` hands it the stream's
    sampler, so it can decide per frame what is converted (a source that cannot decide ignores
    it: the pipeline's sampler then decides)."""

    name: str
    live: bool             # frames come at the source's own pace, newest first
    fps: float             # the declared frame rate (0: unknown)
    frames_read: int
    dropped: int           # frames replaced by a newer one before they were used
    missed: int            # of those, frames the sampler took: sample points lost

    def frames(self) -> Iterator[Frame]: ...

    def plan(self, sampler, every_picture) -> None: ...

    def stopped_early(self) -> tuple[int, int] | None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class FileSource:
    """A video file: all frames in order. Notes when decoding stops before the end."""

    live = False

    def __init__(self, path, loop=False):
        self.name = str(path)
        self.loop = loop  # replay without end (kiosks, demos); timestamps keep rising
        file = Path(path)
        if not file.exists():
            raise UserError(f"no such file: {path}")
        if file.is_dir():
            raise UserError(f"{path} is a directory; give a video file")
        if file.stat().st_size == 0:
            raise UserError(f"{path} is empty (0 bytes); give a video file")
        self._capture = cv2.VideoCapture(str(file))
        first = self._capture.read()[1] if self._capture.isOpened() else None
        if first is None:
            self._capture.release()
            raise UserError(f"{path} is not a video OpenCV can decode; give an mp4, avi, mkv, gif or similar")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 0.0
        if not plausible_fps(self.fps):
            self.fps = DEFAULT_FPS
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.size = (first.shape[1], first.shape[0])
        self._first = first
        self._first_time = self._container_time()
        self.frames_read = 0
        self.dropped = 0
        self.missed = 0  # a file is read whole: no sample point is ever missed
        self.decoded_to_end = False
        self.last_frame_end = 0.0  # when the last frame read stops showing (its time plus its interval)
        self._sampler, self._every_picture = None, True

    def plan(self, sampler, every_picture):
        """Decide, with this stream's `sampler`, which frames the model takes, and convert only
        those (all of them with `every_picture`). Call before frames() starts."""
        self._sampler, self._every_picture = sampler, every_picture

    def _container_time(self):
        """The presentation time, in seconds, of the frame just read.

        OpenCV's CAP_PROP_POS_MSEC, read after a frame, is that frame's PTS less the stream's
        start: checked against ffprobe's pts_time, to 1 µs, for mp4, mkv, webm, avi, ts and gif
        with OpenCV 5.0, variable-rate files included. Decoding with PyAV would give the same
        times but not OpenCV's pixels, which live's other sources and every feature cache use.
        It is 0 for a frame without a time (every frame of a raw .h264 stream, the frames an
        AVI's decoder flushes at its end): see frames()."""
        return self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000

    def frames(self):
        """Yield Frames with their presentation times (from the first frame's, and rising across
        --loop passes) and their own read time attached."""
        started = None  # when reading this frame began (the first was read at open)
        image, index, timestamp = self._first, 0, 0.0
        origin, offset = self._first_time, 0.0  # this pass's first container time, and where it starts
        interval = 1 / self.fps
        pass_start = 0
        while True:
            sampled = self._sampler.keep(timestamp) if self._sampler else None
            if image is None and (sampled or self._every_picture):
                ok, image = self._capture.retrieve()
                if not ok or image is None:
                    break
            read_ms = (time.perf_counter() - started) * 1000 if started else 0.0
            self.frames_read += 1
            yield Frame(index, timestamp, image, time.perf_counter() - read_ms / 1000, read_ms, sampled)
            started, image = time.perf_counter(), None
            ok = self._capture.grab()  # decoded; converted above only if it is used
            index += 1
            if not ok and self.loop and index > pass_start:  # reopen: seeking is unreliable in some formats
                self._capture.release()
                self._capture = cv2.VideoCapture(self.name)
                ok = self._capture.grab()
                pass_start = index
                origin, offset = self._container_time(), timestamp + interval
            if not ok:
                break
            # A frame without a time of its own (see _container_time) comes one frame interval
            # after the previous one, as every frame did before containers' times were read.
            following = offset + self._container_time() - origin
            following = following if following > timestamp else timestamp + 1 / self.fps
            interval, timestamp = following - timestamp, following
        self.last_frame_end = timestamp + interval
        self.decoded_to_end = True

    def stopped_early(self):
        """(frames read, frames expected) when decoding stopped well before the container's count."""
        if self.loop or not self.decoded_to_end:  # stopped by us (--max-frames, Ctrl-C), not by the file
            return None
        expected = self.frame_count
        if expected <= 0 or self.frames_read >= expected - max(2, expected // 50):
            return None
        # OpenCV's count is the container's duration times its nominal rate, an estimate that a
        # variable-rate file (30 fps joined to 10 fps) does not meet: the frames' own times say
        # whether decoding reached the end of that duration.
        duration = expected / self.fps
        if self.last_frame_end >= duration - max(2 / self.fps, duration / 50):
            return None
        return self.frames_read, expected

    def interrupt(self):
        """Nothing to do: the frame loop checks for a stop after every frame of a file."""

    def close(self):
        self._capture.release()


class FrameIterable:
    """Frame objects already made (a benchmark's looped replay, a tool's own reader), as a
    source: handed on in order, as a file's are."""

    live = False
    fps = 0.0  # unknown: the frames carry their own times
    missed = 0  # handed on in order: no sample point is ever missed

    def __init__(self, frames, name="frames"):
        self.name = name
        self._frames = frames
        self.frames_read = 0
        self.dropped = 0

    def frames(self):
        for frame in self._frames:
            self.frames_read += 1
            yield frame

    def plan(self, sampler, every_picture):
        """Nothing to decide: the frames are made already, so the pipeline's sampler decides."""

    def interrupt(self):
        """Nothing to do: the frame loop checks for a stop after every frame."""

    def stopped_early(self):
        return None

    def close(self):
        pass


class ArraySource(FrameIterable):
    """Frames handed over by a program (any iterable of BGR or grayscale numpy arrays), timed
    as a file at `fps` would be: frame i at i / fps seconds."""

    def __init__(self, frames, fps=None):
        super().__init__(iter(frames))
        self.fps = fps or DEFAULT_FPS
        self.size = None  # known once the first frame is seen

    def frames(self):
        for index, image in enumerate(self._frames):
            image = np.asarray(image)
            if image.ndim not in (2, 3) or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
                raise UserError(f"frame {index} is a {image.dtype} array of shape {image.shape}; give uint8 "
                                "BGR (H, W, 3) or grayscale (H, W) frames")
            self.size = self.size or (image.shape[1], image.shape[0])
            self.frames_read += 1
            now = time.perf_counter()
            yield Frame(index, index / self.fps, image, now, 0.0)


class _LatestFrameSource:
    """Base for live sources: a thread reads as fast as the source delivers and keeps the
    newest frame only. `frames()` hands out each new frame once, waiting for the next.

    Planned (see `plan`), it keeps every frame the sampler takes until it is handed out, and
    the newest frame after them: a slow consumer loses the frames the model would skip first.
    Only past HELD_SAMPLES waiting sample points is the oldest dropped, and counted in `missed`,
    so a consumer that cannot keep up at all falls no further behind than that."""

    live = True
    reconnect_attempts = 3
    reconnect_backoff_s = 0.5  # the first wait before reopening; it doubles at each try, up to 8 times this
    arrived = None  # an Event set on each new frame, so one loop can wait on several sources
    HELD_SAMPLES = 3  # sample points held for a consumer that is behind: 0.6 s at the default 5 fps

    def __init__(self, name):
        self.name = name
        self._capture = self._open()
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise UserError(self._unavailable_message())
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if plausible_fps(fps) else 0.0  # 0: unknown (a driver's 90000 is a time base, not a rate)
        self.frame_count = 0
        self.size = (first.shape[1], first.shape[0])
        self.frames_read = 1      # frames taken from the source, this first one included
        self.dropped = 0          # frames replaced by a newer one before they were used
        self.missed = 0           # of those, frames the sampler took: sample points lost
        self._started = time.perf_counter()
        self._pending = deque([Frame(0, 0.0, first, self._started, 0.0)])  # oldest first; see _hold
        self._sampler, self._every_picture = None, True
        self._condition = threading.Condition()
        self._failure = None
        self._closing = threading.Event()
        self._interrupted = False
        self._thread = threading.Thread(target=self._read_loop, name=f"reader:{name}", daemon=True)
        self._thread.start()

    def _open(self):
        raise NotImplementedError

    def plan(self, sampler, every_picture):
        """From now on, decide with this stream's `sampler` which frames the model takes (on the
        reader thread, as each frame is decoded), and convert only those to BGR, or all of them
        with `every_picture`. The frame waiting now is decided at once, so the sampler sees
        every frame's time once, in order."""
        with self._condition:
            for frame in self._pending:
                frame.sampled = sampler.keep(frame.timestamp)
            self._sampler, self._every_picture = sampler, every_picture

    def _decide(self, timestamp):
        with self._condition:  # plan() may hand over the sampler at any moment
            return self._sampler.keep(timestamp) if self._sampler else None

    def _hold(self, frame):
        """Queue a new frame (under the lock): a frame not sampled waiting last is replaced by
        it; past HELD_SAMPLES sample points the oldest goes, a sample point missed."""
        if frame.sampled is None and self._sampler:  # read while plan() ran: its picture was converted
            frame.sampled = self._sampler.keep(frame.timestamp)
        if self._pending and not self._pending[-1].sampled:
            self._pending.pop()
            self.dropped += 1
        self._pending.append(frame)
        if len(self._pending) > self.HELD_SAMPLES + 1:
            self._pending.popleft()
            self.dropped += 1
            self.missed += 1

    def ready(self):
        """Whether take() has something to say now (a frame, a failure, the end), without waiting
        or locking: a loop over many sources asks before taking."""
        return bool(self._pending) or self._failure is not None or self._closing.is_set() or self._interrupted

    def _unavailable_message(self):
        raise NotImplementedError

    def _reconnect(self):
        """Try to reopen after a failed read; True when frames flow again. Says on stderr that
        the source dropped and that it is back. close() cuts the backoff short, and a capture
        opened after close() is released, not leaked."""
        warn(f"{self.title} stopped delivering frames; reopening it (up to {self.reconnect_attempts} tries)")
        dropped = time.perf_counter()
        for attempt in range(self.reconnect_attempts):
            if self._closing.wait(self.reconnect_backoff_s * min(2 ** attempt, 8)):
                return False
            self._capture.release()
            self._capture = self._open()
            if self._closing.is_set():
                return False
            if self._capture.isOpened() and self._capture.grab():
                warn(f"{self.title} is back after {time.perf_counter() - dropped:.1f} s")
                return True
        return False

    def _read_loop(self):
        """The reader thread. It alone touches the capture, and releases it on the way out, so
        close() never releases a capture that is inside read()."""
        try:
            self._read_frames()
        except Exception as exc:  # a decoder fault must end frames(), not leave it waiting for ever
            with self._condition:
                self._failure = f"{self.name}: reading failed ({type(exc).__name__}: {exc})"
                self._condition.notify_all()
        finally:
            self._capture.release()
            self._wake()  # an ended reader is news too: the loop must see the failure or end

    def _wake(self):
        if self.arrived is not None:
            self.arrived.set()

    def _read_frames(self):
        index = 1
        while not self._closing.is_set():
            # grab() waits for the next frame, retrieve() decodes it (a camera's MJPEG or YUYV)
            # or converts it to BGR (a stream's, decoded in FFmpeg's own threads during the
            # grab). So `read` is the cost of reading, not the wait for the source's next frame
            # (33 ms at 30 fps). time.thread_time() around read() would miss FFmpeg's decoding
            # threads: measured, 0.2 ms of thread time for a 1080p H.264 frame whose grab takes 24 ms.
            image = None
            ok = self._capture.grab()
            grabbed = time.perf_counter()
            sampled = self._decide(grabbed - self._started) if ok else None
            if ok and (sampled is not False or self._every_picture):
                ok, image = self._capture.retrieve()
                ok = ok and image is not None
            if not ok:
                if self._closing.is_set():
                    break
                if self._reconnect():
                    continue
                if self._closing.is_set():
                    break
                with self._condition:
                    self._failure = self._lost_message()
                    self._condition.notify_all()
                self._wake()
                return
            frame = Frame(index, grabbed - self._started, image, grabbed, (time.perf_counter() - grabbed) * 1000,
                          sampled)
            with self._condition:
                self._hold(frame)
                self.frames_read += 1
                self._condition.notify_all()
            self._wake()
            index += 1

    def take(self, timeout=0.0):
        """The next frame not handed out yet (the newest, unless sample points wait before it),
        waiting up to `timeout` seconds for one: None if none came, ENDED once the source was
        closed or interrupted. Raises UserError when it failed (after handing out the frames it got)."""
        with self._condition:
            if not self._pending and self._failure is None and not self._closing.is_set() \
                    and not self._interrupted and timeout > 0:
                self._condition.wait(timeout=timeout)
            if not self._pending:
                if self._failure:
                    raise UserError(self._failure, exit_code=1)
                return ENDED if self._closing.is_set() or self._interrupted else None
            return self._pending.popleft()

    def frames(self):
        while (frame := self.take(timeout=0.5)) is not ENDED:
            if frame is not None:
                yield frame

    def stopped_early(self):
        return None

    def interrupt(self):
        """Called from a signal handler, so it only sets a flag (an Event would take a lock the
        interrupted code may hold): frames() ends at its next wake-up, within 0.5 s, take()
        at its next call, and the close() that follows cuts a reconnect backoff short."""
        self._interrupted = True

    def close(self):
        self._closing.set()
        with self._condition:
            self._condition.notify_all()
        # The reader releases the capture itself once its read returns (a stream read times out
        # after 5 s); the thread is a daemon, so a stuck driver cannot hold the exit.
        self._thread.join(timeout=6.0)


class CameraSource(_LatestFrameSource):
    """A camera by index. A USB glitch or a driver timeout ends a read; the camera is reopened
    with the stream's backoff, and only a camera that stays away ends the run."""

    # What opens a camera index: tests put a device's test double here, as there is no camera.
    open_capture = staticmethod(cv2.VideoCapture)

    def __init__(self, index):
        self.index = index
        self.title = f"camera {index}"
        super().__init__(f"camera {index}")

    def _open(self):
        return self.open_capture(self.index)

    def _unavailable_message(self):
        return (f"camera {self.index} is not available: it does not exist or another program is using "
                "it; check the index (0 is the first camera) and close other camera apps")

    def _lost_message(self):
        return (f"camera {self.index} stopped delivering frames and did not come back after "
                f"{self.reconnect_attempts} reconnect attempts; check it is plugged in and no other program uses it")


class StreamSource(_LatestFrameSource):
    """A network stream (http, rtsp, …). Reconnects with backoff when it drops.

    `decoder_threads`: FFmpeg's own decoding threads (0: its choice, a thread per core). With
    as many streams as cores or more, one each: measured on a 640x480 H.264 clip, a frame cost
    0.86 ms of CPU on one thread and 1.03 ms on two (frame threading's hand-overs), and the
    streams keep every core busy already."""

    def __init__(self, url, decoder_threads=0):
        self.url = url
        self.title = f"stream {url}"
        self.decoder_threads = decoder_threads
        super().__init__(url)

    def _open(self):
        # Time out instead of hanging forever on a server that accepts and then says nothing.
        threads = [cv2.CAP_PROP_N_THREADS, self.decoder_threads] if self.decoder_threads else []
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000, *threads])

    def _unavailable_message(self):
        return f"cannot open stream {self.url}: no answer or not a video stream; check the URL and the server"

    def _lost_message(self):
        return (f"stream {self.url} dropped and did not come back after "
                f"{self.reconnect_attempts} reconnect attempts")


def warn(message):
    """A `warning:` line on stderr, from whichever thread notices."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class Feed:
    """One source as one stream of a loop that reads several in turn. `poll()` never waits on
    a live source (a stalled camera must not hold up a file beside it), and spaces frames
    `1 / max_fps` apart: a file is replayed at that rate, a live source drops what comes in
    between. With `realtime`, a file's frames come when their timestamps say, as a player
    shows them, instead of as fast as they are taken. A source that fails ends its own stream
    only; the failure is kept for the end."""

    # A paced file that fell further behind its clock than this (a stall: a window being
    # dragged, a suspended laptop) restarts the clock rather than rush through the backlog.
    MAX_LAG_S = 1.0

    def __init__(self, source, name, max_fps=None, max_frames=None, realtime=False):
        self.source = source
        self.name = name
        self.max_frames = max_frames
        self.taken = 0
        self.ended = False
        self.failure = None
        self.failure_reported = False
        self._period = 1.0 / max_fps if max_fps else 0.0
        self.due = time.perf_counter()
        self._frames = None if source.live else iter(source.frames())
        self._realtime = realtime and not source.live  # a live source comes at its own pace already
        self._clock = None   # for a paced file: wall time (perf_counter) less the frames' timestamps
        self._held = None    # for a paced file: the next frame, decoded before it is due
        # The stream's TimeSampler (plan): every frame this feed hands out is then decided. A feed
        # that no model reads (train record's) has none, and decides nothing.
        self.sampler = None

    def plan(self, sampler, every_picture):
        """Let the source decide, with this stream's sampler, which frames are sampled, and
        convert only those unless `every_picture` (see the module's docstring). A live source is
        planned only when its sampler thins frames by time, and --max-fps (if given) takes them
        at least as often: a sampler that keeps every frame (or every n-th) would make its
        held sample points a queue that lags, and a sparser --max-fps would miss them by design.
        Unplanned, it keeps the newest frame, and the sampler picks among the frames taken
        (poll decides them: whichever decides, each frame is decided once, here or at the source)."""
        self.sampler = sampler
        if not self.source.live or (sampler.period is not None and self._period <= sampler.period):
            self.source.plan(sampler, every_picture)

    def poll(self, now):
        """The next frame, or None when none is ready yet (or the stream has ended)."""
        if self.ended or now < self.due or (self.source.live and not self.source.ready()):
            return None
        try:
            frame = self._held if self._held is not None else \
                self.source.take() if self.source.live else next(self._frames, ENDED)
        except UserError as exc:
            self.failure, self.ended = exc, True
            return None
        if frame is ENDED:
            self.ended = True
            return None
        if frame is None or (self._realtime and not self._on_time(frame, now)):
            return None
        self.taken += 1
        if self.max_frames and self.taken >= self.max_frames:
            self.ended = True
        if self._period:  # no burst to catch up after a stall
            self.due = max(self.due + self._period, time.perf_counter() - self._period)
        if frame.sampled is None and self.sampler is not None:  # the source was not planned, or cannot decide
            frame.sampled = self.sampler.keep(frame.timestamp)
        return frame

    def _on_time(self, frame, now):
        """Whether a paced file's frame is due: its timestamp against one wall clock for the
        whole replay, so waits do not add up to a drift. A frame not yet due is held, and
        `due` says when to come back."""
        if self._clock is None or now - (self._clock + frame.timestamp) > self.MAX_LAG_S:
            self._clock = now - frame.timestamp
        due = self._clock + frame.timestamp
        if now < due:
            self._held, self.due = frame, due
            return False
        self._held = None
        frame.read_at = max(frame.read_at, due)  # latency counts from when it is shown, not decoded
        return True

    def close(self):
        """End the stream; a file's decoding generator is closed now, not whenever it is collected."""
        self.ended = True
        if self._frames is not None:
            self._frames.close()


def is_url(text):
    return str(text).lower().startswith(URL_SCHEMES)


def open_source(camera=None, file=None, loop=False, side_by_side=1):
    """The one way to open an input: a camera index, or a file path or URL (`loop` replays a
    file). `side_by_side`: how many inputs the run reads at once; a stream's decoder gets its
    share of the cores."""
    if (camera is None) == (file is None):
        raise UserError("give exactly one input: --camera INDEX or --file PATH_OR_URL")
    if camera is not None:
        return CameraSource(int(camera))
    if is_url(file):
        return StreamSource(file, max(1, usable_cpus() // side_by_side) if side_by_side > 1 else 0)
    return FileSource(os.fspath(file), loop=loop)
