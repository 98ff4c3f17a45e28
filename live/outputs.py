"""What a run leaves behind: the JSONL log, the annotated video and the closing summary.
Each output is valid at every moment: JSONL is flushed line by line, the video is closed
(and so playable) on every way out."""
import json
import os
import sys
import time
from fractions import Fraction

import cv2
import numpy as np
from collections_extended import bag

from live.choices import plausible_fps
from live.errors import UserError
from live.sources import DEFAULT_FPS


class JsonLines:
    """One JSON object a line, flushed as written; `-` is stdout. When stdout's reader goes away
    (`live --jsonl - | head -n 1`), writing stops quietly and `reader_gone` is set."""

    def __init__(self, path, option):
        self._own = path != "-"
        self.reader_gone = False
        try:
            self._file = open(path, "w", encoding="utf-8") if self._own else sys.stdout
        except OSError as exc:
            raise UserError(f"cannot write {option} {path}: {exc.strerror}") from None

    def write(self, record):
        if self.reader_gone:
            return
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except BrokenPipeError:
            if self._own:
                raise
            # The reader has what it wanted: stop quietly, as `yes | head` does. Point stdout at
            # /dev/null so Python's own flush at exit does not complain about the pipe again.
            self.reader_gone = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    def close(self):
        if self._own:
            self._file.close()
        elif not self.reader_gone:
            self._file.flush()


class JsonlWriter(JsonLines):
    """The per-frame log: one record per classified frame (Result.to_dict()), with every
    probability only when asked (`probs`: --jsonl-probs)."""

    def __init__(self, path, probs=False):
        super().__init__(path, "--jsonl")
        self.probs = probs

    def write(self, result):
        super().write(result.to_dict(probs=self.probs))


class _H264Writer:
    """H.264 in MP4 through PyAV (its wheels carry FFmpeg with libx264; OpenCV's can't encode
    H.264), so the video plays in browsers. The MP4 is fragmented: a run cut short by a crash
    still leaves a playable file up to the last keyframe."""

    def __init__(self, path, size, fps):
        import av

        self._av = av
        self._container = av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "23"}

    def write(self, image):
        for packet in self._stream.encode(self._av.VideoFrame.from_ndarray(image, format="bgr24")):
            self._container.mux(packet)

    def release(self):
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


class VideoOutput:
    """The annotated video at the source's size and frame rate. Each frame is placed at its
    timestamp: when a live source's frames were dropped, the last picture is held over the gap,
    so the video plays in real time instead of too fast. .mp4 is H.264 (see _H264Writer), .avi
    MJPG through OpenCV."""

    MAX_GAP_S = 5.0  # a stalled source is shown frozen for at most this long, not for hours

    def __init__(self, path, size, fps):
        self.path = path
        self.fps = fps if plausible_fps(fps) else DEFAULT_FPS
        # yuv420p halves the chroma resolution, so H.264 needs even sizes.
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2) if _is_mp4(path) else size
        self.written = 0      # frames in the file so far: the next one's slot
        self._origin = None   # the slot of the first frame's timestamp
        self._previous = None  # the last picture written: it fills a gap
        try:
            self._writer = _H264Writer(path, self.size, self.fps) if _is_mp4(path) else \
                cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, self.size)
        except (OSError, ValueError) as exc:  # PyAV's errors are OSError subclasses
            raise UserError(f"cannot write --output {path}: {exc}") from None
        if isinstance(self._writer, cv2.VideoWriter) and not self._writer.isOpened():
            raise UserError(f"cannot write --output {path}: check the folder exists and the extension "
                            "is .mp4 or .avi")

    def write(self, image, timestamp):
        slot = round(timestamp * self.fps)
        if self._origin is None:
            self._origin = slot  # the first frame opens the video, whatever its timestamp
        slot -= self._origin
        if slot < self.written:
            return  # two frames in one slot of the output's rate: the first one stands
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        gap = min(slot - self.written, int(self.MAX_GAP_S * self.fps))
        self._origin += slot - self.written - gap  # a capped gap shifts the clock, once
        for _ in range(gap):  # until this frame's time, the screen still showed the previous one
            self._writer.write(self._previous)
        self._writer.write(image)
        self._previous = image
        self.written += gap + 1

    def close(self):
        self._writer.release()


# The --output containers we write: H.264 through PyAV, MJPG through OpenCV (other names give
# OpenCV's writer an unplayable file or none, so the command line refuses them up front).
H264_EXTENSIONS, MJPG_EXTENSIONS = (".mp4", ".mov", ".m4v"), (".avi", ".mkv")
VIDEO_EXTENSIONS = H264_EXTENSIONS + MJPG_EXTENSIONS


def _is_mp4(path):
    return str(path).lower().endswith(H264_EXTENSIONS)


class LatencyHistogram:
    """Streaming quantiles in fixed memory: counts in log-spaced bins from 1 µs to 1000 s, 1%
    wide, so a median or p95 is within 1% of the exact one however long the run (a camera
    left on for a day), where keeping every value would grow without bound."""

    LOW_MS, HIGH_MS, GROWTH = 1e-3, 1e6, 1.01

    def __init__(self):
        self._bins = int(np.ceil(np.log(self.HIGH_MS / self.LOW_MS) / np.log(self.GROWTH))) + 1
        self.counts = np.zeros(self._bins, np.int64)
        self.count = 0

    def add(self, ms):
        ratio = max(ms, self.LOW_MS) / self.LOW_MS
        self.counts[min(int(np.log(ratio) / np.log(self.GROWTH)), self._bins - 1)] += 1
        self.count += 1

    def quantile(self, q):
        """The value below which a share `q` of the values lie (the middle of its bin)."""
        if not self.count:
            return float("nan")
        index = int(np.searchsorted(np.cumsum(self.counts), q * self.count, side="left"))
        return float(self.LOW_MS * self.GROWTH ** (index + 0.5))


class RunSummary:
    """Counts for the summary printed at the end of a run, in memory that does not grow.
    Latency is given twice: over every frame (most only pass the sampler and are drawn) and
    over the frames that went through the model. Each step's time is over the frames it ran
    on: reading and drawing every frame, the model's steps the sampled ones."""

    EVERY_FRAME_STEPS = {"read": "every frame", "draw": "every drawn frame"}  # what each one's time is over

    def __init__(self):
        self.classified = 0
        self.latency = LatencyHistogram()
        self.model_latency = LatencyHistogram()
        self.step_ms = {}
        self.top_labels = bag()
        self.started = self.last_at = None  # perf_counter times: the run's start, this stream's last result
        self.label_changes, self.last_label, self.span = 0, None, [None, None]  # flicker, over stream time

    def add(self, result, came=None):
        """Count `result`, which came at `came` (time.perf_counter(); now by default)."""
        self.last_at = came if came is not None else time.perf_counter()
        self.classified += 1
        if self.last_label is not None and result.label != self.last_label:
            self.label_changes += 1
        self.last_label = result.label
        self.span = [result.frame.timestamp if self.span[0] is None else self.span[0], result.frame.timestamp]
        self.latency.add(result.timings["latency_ms"])
        if result.sampled:
            self.model_latency.add(result.timings["latency_ms"])
        for step, ms in result.timings.items():
            if step != "latency_ms" and (result.sampled or step in self.EVERY_FRAME_STEPS):
                self.step_ms.setdefault(step, LatencyHistogram()).add(ms)
        self.top_labels.add(result.label)

    def text(self, frames_read, elapsed_s, missed=None):
        """`missed`: a live source's sample points dropped (None for a file, which drops nothing).
        The rate is over this stream's own time, from the run's start to its last result: a file
        read beside a live stream ends long before the run does."""
        if self.started is not None and self.last_at is not None:
            elapsed_s = self.last_at - self.started
        fps = self.classified / elapsed_s if elapsed_s > 0 else 0.0
        lines = [f"frames read {frames_read}, classified {self.classified}, {fps:.1f} fps"
                 + (f", sample points missed {missed}" if missed is not None else "")]
        if self.classified:
            lines.append(f"all frames: latency {_median_p95(self.latency)}")
            if self.model_latency.count:
                lines.append(f"{self.model_latency.count} frames through the model: latency "
                             f"{_median_p95(self.model_latency)}")

            def step(name):
                return f"{name} {self.step_ms[name].quantile(0.5):.1f} ms"

            every = [f"{step(name)} ({scope})" for name, scope in self.EVERY_FRAME_STEPS.items() if name in self.step_ms]
            model = [step(name) for name in self.step_ms if name not in self.EVERY_FRAME_STEPS]
            lines.append("median per step: " + ", ".join(every + [", ".join(model) + " (frames through the model)"] * bool(model)))
            ranked = sorted(self.top_labels.unique_elements(), key=self.top_labels.count, reverse=True)
            lines.append("top label: " + ", ".join(f"{label} {self.top_labels.count(label)}" for label in ranked))
            seconds = self.span[1] - self.span[0]
            if seconds > 0:
                lines.append(f"label changes: {self.label_changes} ({10 * self.label_changes / seconds:.1f} per 10 s "
                             "of the stream)")
        return "\n".join(lines)


def missed_samples(source):
    return source.missed if source.live else None


def _median_p95(histogram):
    return f"median {histogram.quantile(0.5):.1f} ms, p95 {histogram.quantile(0.95):.1f} ms"


def numbered_paths(path, count):
    """Where --output writes each stream's video: PATH itself for one stream; for several,
    out.mp4 becomes out-1.mp4, out-2.mp4, … in stream order."""
    if count == 1:
        return [path]
    root, extension = os.path.splitext(path)
    return [f"{root}-{number}{extension}" for number in range(1, count + 1)]


def summary_text(summaries, sources, videos, elapsed_s):
    """The closing summary: as is for one stream; for several, a block per stream (with the
    video it wrote) and a line for all of them together."""
    if len(summaries) == 1:
        (summary,), (source,) = summaries.values(), sources
        return summary.text(source.frames_read, elapsed_s, missed_samples(source))
    blocks = []
    for (name, summary), source in zip(summaries.items(), sources):
        written = f" -> {videos[name].path}" if name in videos else ""
        lines = summary.text(source.frames_read, elapsed_s, missed_samples(source)).splitlines()
        blocks.append(f"stream {name}{written}:\n" + "\n".join("  " + line for line in lines))
    classified = sum(summary.classified for summary in summaries.values())
    fps = classified / elapsed_s if elapsed_s > 0 else 0.0
    blocks.append(f"all {len(summaries)} streams: frames read {sum(s.frames_read for s in sources)}, "
                  f"classified {classified}, {fps:.1f} fps")
    return "\n".join(blocks)
