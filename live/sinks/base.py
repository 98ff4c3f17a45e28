"""What every sink shares: the Sink interface, what a sink knows of a stream before its first
result, and the annotated picture (drawn once per result for every sink that shows it)."""
import time
from dataclasses import dataclass


@dataclass
class StreamInfo:
    """What a sink knows of a stream before its first result."""
    number: int        # 1, 2, … in stream order, as --output numbers its files
    name: str          # the results' `stream`
    fps: float         # the source's frame rate
    size: tuple | None  # (width, height), None until a stream of numpy frames has shown one
    source: object      # the opened source (frames read, dropped, for the overlay's figures)


class Sink:
    # Whether put() looks at every frame's picture. A sink of your own may, so it is assumed;
    # when no sink of a run does, the frames the model skips are never converted (live.sources).
    needs_pictures = True

    def wants_pictures(self, stream):
        """Whether put() looks at `stream`'s pictures now (the web view: while someone watches
        it); a run whose frames are made elsewhere (--engine ray) sends them only then."""
        return self.needs_pictures

    def open(self, streams):
        """Called once before the first result, with a StreamInfo per stream."""

    def put(self, result):
        """Called for each result, on the classifying thread: keep it short. The result carries
        its overlay figures (`result.status`) and the label events it opened or closed
        (`result.events`)."""

    def finish(self, events):
        """Called once when the streams end, however they end, with the label events that the
        end closes (each stream's open segment), before close()."""

    def close(self):
        """Called once at the end, whatever ended the run."""


class Overlay:
    """The annotated picture, drawn once per result however many sinks show it (the window and
    the video share one Overlay when the command line builds them)."""

    def __init__(self, top_k=3, threshold=0.0, min_height=0):
        from live.render import OverlayRenderer

        self.renderer = OverlayRenderer(top_k=top_k, threshold=threshold, min_height=min_height)
        self._drawn = (None, None)  # (result, its picture): the last one drawn

    def picture(self, result):
        if self._drawn[0] is not result:
            started = time.perf_counter()
            picture = self.renderer.draw(result.frame.image, result, result.status)
            result.timings["draw"] = (time.perf_counter() - started) * 1000
            self._drawn = (result, picture)
        return self._drawn[1]


class DrawingSink(Sink):
    """A sink that shows the annotated picture: the run's shared Overlay, or one of its own
    (a user's `VideoSink("out.mp4")`)."""

    def __init__(self, overlay=None):
        self.overlay = overlay or Overlay()


def close_all(closers):
    """Close every one, even if one fails (the first failure is raised after)."""
    import contextlib

    with contextlib.ExitStack() as stack:
        for item in closers:
            stack.callback(item.close)
