"""Clips made from real photos for a task that one frame can't solve: each pair of classes is
one change and its time reversal (fade in/out, focus in/out, saturate/desaturate, zoom
in/out). Single frames of the two look alike; only the order tells them apart."""
import os
from pathlib import Path

import cv2
import numpy as np

# The data folder's photos (tests/conftest.py resolves the same folder: LIVE_TEST_DATA, else ../shared).
PHOTOS = Path(os.environ.get("LIVE_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared") / "photos"
PAIRS = [("fade_in", "fade_out"), ("focus_in", "focus_out"), ("saturate", "desaturate"), ("zoom_in", "zoom_out")]
TWIN = {a: b for pair in PAIRS for a, b in (pair, pair[::-1])}
TEST_PHOTOS = ["baboon", "orange", "cards", "rubberwhale1"]
# Held-out photos of each fold of tests/benchmarks/temporal_eval.py's cross-validation: fold 0 is
# TEST_PHOTOS (the clips were tuned on it); the other 11 photos are dealt out so that each fold
# holds one grey photo (basketball1, box_in_scene, left01; cards is nearly grey). Saturating a grey
# photo changes nothing, so its saturate and desaturate clips are the same still picture and no
# model can tell them apart: with one per fold of 4 photos the saturation pair can reach at most
# 7/8 over all clips (5/6 in the fold of 3).
FOLDS = [
    list(TEST_PHOTOS),
    ["apple", "basketball1", "messi5", "sudoku"],
    ["WindowsLogo", "box_in_scene", "chicky_512", "pic3"],
    ["aloeL", "butterfly", "left01"],
]
SIZE, FRAMES, FPS = 176, 20, 25


def photo_names():
    return sorted(p.stem for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))


def _frame(image, kind, amount, rng_crop, zoom=(1.0, 1 / 3)):
    """`amount` runs 0 -> 1 over the 'forward' change of each pair's first class. `zoom` is
    (wide, tight): the zoomed crop's side as a share of the clip's crop at amount 0 and 1."""
    x0, y0, side = rng_crop
    if kind == "zoom":
        wide, tight = zoom
        inner = side * wide / (1 + (wide / tight - 1) * amount)  # default: 1 -> 1/3, a 3x zoom
        cx, cy = x0 + side / 2, y0 + side / 2
        crop = image[int(cy - inner / 2):int(cy + inner / 2), int(cx - inner / 2):int(cx + inner / 2)]
        return cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    frame = cv2.resize(image[y0:y0 + side, x0:x0 + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    if kind == "fade":
        return (frame * (0.05 + 0.95 * amount)).astype(np.uint8)
    if kind == "focus":
        sigma = 0.1 + 6.0 * (1 - amount)
        return cv2.GaussianBlur(frame, (0, 0), sigma)
    if kind == "saturate":
        hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 1] *= amount
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    raise ValueError(kind)


def _draw(rng, bounds):
    low, high = bounds
    return low if low == high else float(rng.uniform(low, high))  # fixed: draws nothing, as before


def write_clip(path, photo, label, rng, zoom=((1.0, 1.0), (1 / 3, 1 / 3))):
    """`zoom`: ranges the wide and the tight end of a zoom clip are drawn from (shares of the side)."""
    image = cv2.imread(str(PHOTOS / f"{photo}.png")) if (PHOTOS / f"{photo}.png").exists() else \
        cv2.imread(str(PHOTOS / f"{photo}.jpg"))
    height, width = image.shape[:2]
    side = int(min(height, width) * rng.uniform(0.6, 1.0))
    crop = (int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)), side)
    kind = label.split("_")[0] if label not in ("saturate", "desaturate") else "saturate"
    forward = label in ("fade_in", "focus_in", "saturate", "zoom_in")
    zoom = (_draw(rng, zoom[0]), _draw(rng, zoom[1])) if kind == "zoom" else None
    amounts = np.linspace(0, 1, FRAMES)
    if not forward:
        amounts = amounts[::-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIZE, SIZE))
    for amount in amounts:
        writer.write(_frame(image, kind, amount, crop, zoom))
    writer.release()


def make_dataset(root, clips_per_photo=3, test_clips_per_photo=2, seed=0, test_photos=TEST_PHOTOS,
                 zoom=((1.0, 1.0), (1 / 3, 1 / 3))):
    """root/train/<class>/<photo>__<n>.avi from most photos, root/test/... from `test_photos`.
    `zoom` gives the ranges of the wide and the tight end of zoom clips, as shares of the crop's
    side (the default, 1 -> 1/3, is the clips the tests were tuned on)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for photo in photo_names():
        split = "test" if photo in test_photos else "train"
        count = test_clips_per_photo if split == "test" else clips_per_photo
        for label in TWIN:
            for n in range(count):
                write_clip(root / split / label / f"{photo}__{n}.avi", photo, label, rng, zoom)
    return root


def split_pool(pool, split, held_out, train_clips=3, test_clips=2):
    """A split-folders dataset at `split` of links into `pool` (a make_dataset with no test
    photos): the first `test_clips` clips of each `held_out` photo under test/, the first
    `train_clips` of every other photo under train/. A clip is the same file in every split."""
    split = Path(split)
    for clip in sorted((Path(pool) / "train").glob("*/*.avi")):
        photo, n = clip.stem.split("__")
        side = "test" if photo in held_out else "train"
        if int(n) < (test_clips if side == "test" else train_clips):
            target = split / side / clip.parent.name / clip.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(clip)
    return split


def make_fold(root, fold):
    """The 3x-zoom clips of temporal_eval.py's cross-validation, split as its fold `fold`: the
    same files (3 clips per photo from seed 0) and the same split, so a fit on them with seed s
    is the benchmark's run (3x, fold, gru, s)."""
    pool = make_dataset(Path(root) / "pool", clips_per_photo=3, seed=0, test_photos=())
    return split_pool(pool, Path(root) / f"fold{fold}", FOLDS[fold])
