"""The Python API: the same pipeline the `live` command runs, as a generator of results.

    import live
    model = live.load()                                  # the default bundle (Kinetics-600)
    for result in model.stream("clip.mp4", max_frames=60):
        print(result.label, result.score, result.top(3))
        record = result.to_dict()                        # exactly the `--jsonl` record

`model.stream([a, b, 0])` reads several sources side by side, as `live --file a --file b
--camera 0` does; each result's `stream` names its source.
"""
import contextlib
import os
import threading
from collections.abc import Iterable

import numpy as np

from live.bundle import default_bundle_path
from live.errors import UserError
from live.config import DEFAULTS
from live.sources import ArraySource, Feed, Source, open_source


def open_any(source, fps=None, side_by_side=1):
    """(opened source, whether we opened it) for a path or URL, a camera index, any iterable of
    BGR numpy frames, or a source already opened with `live.sources.open_source`."""
    if isinstance(source, Source):
        return source, False
    return _open(source, fps, side_by_side), True


def _open(source, fps, side_by_side):
    if isinstance(source, (str, os.PathLike)):
        return open_source(file=os.fspath(source), side_by_side=side_by_side)
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
    """A loaded bundle: its labels, manifest and classifier, ready for any number of streams,
    side by side in one `stream()` call or in several threads at once, each iterating its own.

    Each stream keeps its own state (sampler, buffer, MoViNet state, smoothing); the runtimes
    are shared and lend each thread's call an interpreter of its own (made on first need, then
    reused), so threads run in parallel and each stream's results equal a run on it alone. One
    `stream()` generator is one thread's at a time, as any Python generator is."""

    def __init__(self, classifier):
        from live.pipeline import warm_up

        self.classifier = classifier
        warm_up(classifier)

    @property
    def labels(self):
        return self.classifier.bundle.labels

    @property
    def manifest(self):
        return self.classifier.bundle.manifest

    @property
    def path(self):
        return self.classifier.bundle.path

    def stream(self, source, max_frames=None, smooth=DEFAULTS.smooth, fps=None, max_fps=None, names=None,
               on_failure=None, realtime=False, sinks=(), every_picture=True, event_rule=DEFAULTS.event_rule):
        """Yield one Result per frame of `source`, or of each of a list of sources read side by
        side (each result's `stream` says whose). `max_frames` and `max_fps` hold per stream;
        `fps` gives numpy frames their timestamps (25 if not given); `names` overrides the
        streams' names. `realtime` replays files (and numpy frames) at their own pace, frame
        timestamps against the wall clock, as a player does; by default they go as fast as
        they are classified. Sources opened here are closed when the loop ends, however it ends. A
        source that fails part-way ends its own stream and the others go on. The failure is
        raised once they are done, or, given `on_failure(name, error)`, handed to it at once.

        `sinks` (live.Sink objects: a video, a web view, your own) are opened with the streams,
        receive every result before it is yielded, and are closed once, after the sources,
        however the loop ends (a generator closed early included); one whose `put` returns
        False ends the loop. Each result carries its overlay figures (`status`) and the label
        events it opened or closed (`events`, by `event_rule`: (min_duration, min_score), see
        live/events.py); the events the end closes go to each sink's `finish`.

        `every_picture=False` is for runs that look at no picture but the model's: the frames
        the sampler skips are decoded but not converted, and come with `frame.image` None
        (`live` does this headless, without --output or --serve; see live.sources)."""
        sources = list(source) if is_source_list(source) else [source]
        if not sources:
            raise ValueError("no source given")
        if names is not None and len(names) != len(sources):
            raise ValueError(f"{len(names)} names for {len(sources)} sources")
        from live.pipeline import classify_streams
        from live.sinks import StreamInfo

        opened, feeds, arrived = [], [], threading.Event()
        with contextlib.ExitStack() as closing:
            run = SinkRun(list(sinks), closing)
            try:
                for item in sources:
                    opened.append(open_any(item, fps, len(sources)))
                names = list(names) if names else unique_names(stream_name(item) for item in sources)
                feeds += [Feed(source, name, max_fps, max_frames, realtime) for (source, _), name in zip(opened, names)]
                for source, _ in opened:
                    if source.live:
                        source.arrived = arrived
                run.open([StreamInfo(number, name, source.fps, source.size, source)
                          for number, ((source, _), name) in enumerate(zip(opened, names), start=1)],
                         max_fps, event_rule)
                with contextlib.closing(classify_streams(self.classifier, feeds, smooth, arrived, on_failure,
                                                       every_picture)) as results:
                    for result in results:
                        wanted = run.handle(result)
                        yield result
                        if not wanted:
                            break
                failures = [feed.failure for feed in feeds if feed.failure and not on_failure]
                if len(failures) == 1:
                    raise failures[0]
                if failures:
                    raise UserError("; ".join(str(failure) for failure in failures), exit_code=1)
            finally:
                for feed in feeds:
                    feed.close()
                for source, owned in opened:
                    if owned:  # a source the caller opened is the caller's to close
                        source.close()


class SinkRun:
    """The sinks' side of a run, for every engine (Model.stream here, ClusterModel.stream in
    live/cluster.py): the sinks are opened with the streams, each result is annotated once
    (live/status.py) and handed to every sink, and at the end, registered on `closing` so that
    it comes after whatever is registered later (the sources), the events the end closes go to
    each sink's `finish` and every sink is closed once."""

    def __init__(self, sinks, closing):
        self.sinks, self.tracking = sinks, {}
        from live.sinks import close_sinks, finish_sinks

        closing.callback(close_sinks, sinks)  # runs last: after the sources, every sink, once
        closing.callback(lambda: finish_sinks(sinks, [event for stream in self.tracking.values()
                                                      for event in stream.finish()]))

    def open(self, streams, max_fps, event_rule):
        from live.status import StreamTracking

        self.tracking.update((info.name, StreamTracking(info.name, info.source, max_fps, event_rule))
                             for info in streams)
        for sink in self.sinks:
            sink.open(streams)

    def handle(self, result):
        """Annotate `result` and hand it to every sink; False when one asks for the run to end."""
        from live.sinks import deliver

        self.tracking[result.stream].annotate(result)
        return deliver(result, self.sinks)


def is_source_list(source):
    """A list or tuple of sources (paths, URLs, camera indexes, opened sources), as opposed to
    one source that is a list of numpy frames."""
    return isinstance(source, (list, tuple)) and bool(source) and all(
        isinstance(item, (str, os.PathLike, int, np.integer, Source)) for item in source)


def stream_name(source):
    """A stream's name in results and events: the source as given (a path, a URL, a camera index),
    an opened source's own name, or "frames" for numpy frames."""
    if isinstance(source, (str, os.PathLike, int, np.integer)):
        return os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    return source.name if isinstance(source, Source) else "frames"


def unique_names(names):
    """The same source given twice is two streams: the second is NAME#2, and so on."""
    seen, unique = {}, []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def load(weights=None, runtime=None, backbone_weights=None):
    """Load a bundle (default: weights/kinetics600, or $LIVE_WEIGHTS) for `Model.stream`."""
    # TensorFlow comes with the pipeline, here and not when live.api is imported: the command
    # line checks its inputs before paying for it.
    from live.pipeline import load_classifier

    return Model(load_classifier(weights or default_bundle_path(), runtime, backbone_weights))
