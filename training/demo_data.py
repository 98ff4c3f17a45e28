"""`train demo-data`: cut a few long clips into short segments, one class per clip, in the
class-folders layout. This is how the shipped demonstration bundle was made from the clips
in ../shared/clips; segments of one clip are different moments of the same scene, so the
test accuracy of such a model says little about new videos."""
import re
from pathlib import Path

import cv2

from live.errors import UserError
from live.sources import FileSource

# The classes the shared clips show (file stem -> label).
SHARED_CLIP_LABELS = {
    "arm_wrestling": "arm_wrestling",
    "basketball": "playing_basketball",
    "eye_makeup_320x240": "applying_eye_makeup",
    "flipping_pancake": "flipping_pancake",
    "ntu_sample_1080p": "person_in_lab_room",
    "pool_cleaning": "cleaning_pool",
    "v_CricketShot_g04_c01_rgb": "cricket_shot",
}


def make_demo_data(clips, to, segments=6):
    out = Path(to)
    written = 0
    for clip in clips:
        stem = Path(clip).stem
        label = SHARED_CLIP_LABELS.get(stem) or re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
        source = FileSource(clip)
        frames = [frame.image for frame in source.frames()]
        source.close()
        if len(frames) < segments:
            raise UserError(f"{clip} has {len(frames)} frames, too few for {segments} segments")
        length = len(frames) // segments
        (out / label).mkdir(parents=True, exist_ok=True)
        for part in range(segments):
            path = out / label / f"{label}_part{part}.avi"
            height, width = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), source.fps, (width, height))
            for image in frames[part * length:(part + 1) * length]:
                writer.write(image)
            writer.release()
            written += 1
    return written
