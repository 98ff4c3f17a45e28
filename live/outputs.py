"""What a run leaves behind: the JSONL log, the annotated video and the closing summary.
Each output is valid at every moment: JSONL is flushed line by line, the video is closed
(and so playable) on every way out."""
import json
import sys

import cv2
import numpy as np
from collections_extended import bag

from live.errors import UserError


class JsonlWriter:
    """One JSON object per classified frame; `-` writes to stdout."""

    def __init__(self, path):
        self._own = path != "-"
        try:
            self._file = open(path, "w", encoding="utf-8") if self._own else sys.stdout
        except OSError as exc:
            raise UserError(f"cannot write --jsonl {path}: {exc.strerror}") from None

    def write(self, result):
        record = {
            "frame": result.frame.index,
            "time": round(result.frame.timestamp, 4),
            "filled": result.filled,
            "sampled": result.sampled,
            "label": result.label,
            "score": round(result.score, 6),
            "probs": [float(p) for p in result.probs],
            "latency_ms": round(result.timings["latency_ms"], 3),
        }
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self):
        if self._own:
            self._file.close()
        else:
            self._file.flush()


class VideoOutput:
    """The annotated video at the source's size and frame rate."""

    def __init__(self, path, size, fps):
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if str(path).lower().endswith((".mp4", ".mov", ".m4v"))
                                          else "MJPG"))
        self.size = size
        self._writer = cv2.VideoWriter(str(path), fourcc, fps or 25.0, size)
        if not self._writer.isOpened():
            raise UserError(f"cannot write --output {path}: check the folder exists and the extension "
                            "is .mp4 or .avi")

    def write(self, image):
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)

    def close(self):
        self._writer.release()


class RunSummary:
    """Counts for the summary printed at the end of a run."""

    def __init__(self):
        self.classified = 0
        self.latencies = []
        self.step_ms = {}
        self.top_labels = bag()

    def add(self, result):
        self.classified += 1
        self.latencies.append(result.timings["latency_ms"])
        for step, ms in result.timings.items():
            if step != "latency_ms" and (result.sampled or step == "read"):
                self.step_ms.setdefault(step, []).append(ms)
        self.top_labels.add(result.label)

    def text(self, frames_read, elapsed_s):
        fps = self.classified / elapsed_s if elapsed_s > 0 else 0.0
        lines = [f"frames read {frames_read}, classified {self.classified}, {fps:.1f} fps"]
        if self.latencies:
            lines.append(f"latency median {np.median(self.latencies):.1f} ms, "
                         f"p95 {np.percentile(self.latencies, 95):.1f} ms")
            lines.append("per frame: " + ", ".join(f"{step} {np.median(ms):.1f} ms"
                                                  for step, ms in self.step_ms.items()))
            ranked = sorted(self.top_labels.unique_elements(), key=self.top_labels.count, reverse=True)
            lines.append("top label: " + ", ".join(f"{label} {self.top_labels.count(label)}" for label in ranked))
        return "\n".join(lines)
