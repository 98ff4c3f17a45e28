"""The on-screen window: one stream, or a grid of several."""
import time

from live.sinks.base import DrawingSink


class WindowSink(DrawingSink):
    """The on-screen window (one stream, or a grid of several). It is shown on the classifying
    thread, since GUI toolkits draw from one thread only; a grid is composed and shown at most
    30 times a second, whatever the streams' total rate, and a picture replaced before it is
    shown is dropped (not resized into the grid)."""

    GRID_FPS = 30

    def __init__(self, overlay=None):
        super().__init__(overlay)
        self.window = self.grid = None
        self._latest, self._shown = {}, 0.0

    def open(self, streams):
        from live.display import Window
        from live.render import GridView

        self.window = Window()
        self.grid = GridView([stream.name for stream in streams]) if len(streams) > 1 else None

    def put(self, result):
        if not self.grid:
            return self.window.show(self.overlay.picture(result))
        # Drawn now: the decoder may reuse a frame's memory once this call returns.
        self._latest[result.stream] = self.overlay.picture(result)
        now = time.perf_counter()
        if now - self._shown < 1 / self.GRID_FPS:
            return True
        self._shown = now
        for name, picture in self._latest.items():
            self.grid.put(name, picture)
        self._latest.clear()
        return self.window.show(self.grid.image)

    def close(self):
        if self.window:
            self.window.close()
