"""The Python API: the same pipeline the `live` command runs, as a generator of results.

    import live
    model = live.load()                                  # the default bundle (Kinetics-600)
    for result in model.stream("clip.mp4", max_frames=60):
        print(result.label, result.score, result.top(3))
        record = result.to_dict()                        # exactly the `--jsonl` record
"""
import os
from collections.abc import Iterable

import numpy as np

from live.bundle import default_bundle_path
from live.pipeline import classify, load_classifier, warm_up
from live.sources import ArraySource, open_source, paced


def open_any(source, fps=None):
    """(opened source, whether we opened it) for a path or URL, a camera index, any iterable of
    BGR numpy frames, or a source already opened with `live.sources.open_source`."""
    if hasattr(source, "frames") and hasattr(source, "close"):
        return source, False
    return _open(source, fps), True


def _open(source, fps):
    if isinstance(source, (str, os.PathLike)):
        return open_source(file=os.fspath(source))
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return open_source(camera=int(source))
    if isinstance(source, np.ndarray) and source.ndim < 4:
        raise TypeError("one image is not a stream: give a list or generator of frames")
    if isinstance(source, Iterable):
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        return ArraySource(source, fps=fps)
    raise TypeError(f"cannot read frames from {type(source).__name__}: give a path, a URL, a camera index "
                    "or an iterable of numpy frames")


class Model:
    """A loaded bundle: its labels, manifest and classifier, ready for any number of streams."""

    def __init__(self, classifier):
        self.classifier = classifier
        warm_up(classifier)

    @property
    def labels(self):
        return self.classifier.bundle.labels

    @property
    def manifest(self):
        return self.classifier.bundle.manifest

    def stream(self, source, max_frames=None, smooth=1, fps=None, max_fps=None):
        """Yield one Result per frame of `source`; `fps` gives numpy frames their timestamps
        (25 if not given); `max_fps` caps the rate frames are taken at. A source opened here is
        closed when the loop ends, however it ends."""
        opened, owned = open_any(source, fps)
        frames = paced(opened.frames(), max_fps) if max_fps else opened.frames()
        try:
            for count, result in enumerate(classify(self.classifier, frames, smooth=smooth), 1):
                yield result
                if max_frames and count >= max_frames:
                    break
        finally:
            if owned:  # a source the caller opened is the caller's to close
                opened.close()


def load(weights=None, runtime=None, backbone_weights=None):
    """Load a bundle (default: weights/kinetics600, or $LIVE_WEIGHTS) for `Model.stream`."""
    return Model(load_classifier(weights or default_bundle_path(), runtime, backbone_weights))
