"""`train demo-data`: cut a few long clips into short segments, one class per clip, in the
class-folders layout: <class>/<clip>__partN.avi. The `__` makes the clip the segments' group,
so a split keeps a clip's segments on one side whenever the class has another clip; when a
class has only the one (as in the README's examples), `train fit` shares its segments out
and warns. Segments of one clip are different moments of the same scene, so the test accuracy
of such a model says little about new videos.

Each clip is read frame by frame and written as it is read: nothing is held in memory."""
import re
import sys
from pathlib import Path

import cv2

from live.errors import UserError
from live.sources import FileSource

# The classes the clips in ../shared/clips show (file stem -> label).
SHARED_CLIP_LABELS = {
    "arm_wrestling": "arm_wrestling",
    "basketball": "playing_basketball",
    "eye_makeup_320x240": "applying_eye_makeup",
    "flipping_pancake": "flipping_pancake",
    "ntu_sample_1080p": "person_in_lab_room",
    "pool_cleaning": "cleaning_pool",
    "v_CricketShot_g04_c01_rgb": "cricket_shot",
}


def _frame_count(clip):
    """The clip's frame count: the container's, else counted by decoding (a stream without one)."""
    source = FileSource(clip)
    try:
        return source.frame_count or sum(1 for _ in source.frames())
    finally:
        source.close()


def _cut(clip, folder, segments):
    """Write `clip` as `segments` equal parts into `folder`; returns (parts written, frames, fps)."""
    count = _frame_count(clip)
    if count < segments:
        raise UserError(f"{clip} has {count} frames, too few for {segments} segments")
    length = count // segments
    source, writer, part, written = FileSource(clip), None, -1, 0
    stem = Path(clip).stem
    try:
        for frame in source.frames():
            wanted = min(frame.index // length, segments - 1)  # a count that was low: the rest go last
            if wanted != part:
                if writer:
                    writer.release()
                part = wanted
                height, width = frame.image.shape[:2]
                writer = cv2.VideoWriter(str(folder / f"{stem}__part{part}.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                                         source.fps, (width, height), frame.image.ndim == 3)
                written += 1
            writer.write(frame.image)
    finally:
        if writer:
            writer.release()
        source.close()
    early = source.stopped_early()
    if early:
        print(f"warning: {clip} stopped decoding after {early[0]} of {early[1]} frames; its last segments "
              "are short or missing", file=sys.stderr)
    return written, length, source.fps


def make_demo_data(clips, to, segments=6):
    out = Path(to)
    written = 0
    for clip in clips:
        stem = Path(clip).stem
        label = SHARED_CLIP_LABELS.get(stem) or re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
        (out / label).mkdir(parents=True, exist_ok=True)
        parts, length, fps = _cut(clip, out / label, segments)
        print(f"{clip}: {parts} segments of {length / fps:.1f} s into {out / label}", file=sys.stderr)
        written += parts
    return written
