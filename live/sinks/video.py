"""The annotated video (--output), one file per stream."""
from live.sinks.base import DrawingSink, close_all


class VideoSink(DrawingSink):
    """The annotated video, one file per stream (--output): every frame, none dropped."""

    def __init__(self, path, overlay=None):
        super().__init__(overlay)
        self.path = path
        self.videos = {}  # stream name: VideoOutput

    def open(self, streams):
        from live.outputs import numbered_paths

        self.streams = {stream.name: (stream, path) for stream, path in zip(streams, numbered_paths(self.path, len(streams)))}
        for stream in streams:
            if stream.size:  # numpy frames show their size with the first one
                self._open_video(stream.name, stream.size)

    def _open_video(self, name, size):
        from live.outputs import VideoOutput

        stream, path = self.streams[name]
        self.videos[name] = VideoOutput(path, size, stream.fps)

    def put(self, result):
        picture = self.overlay.picture(result)
        if result.stream not in self.videos:
            self._open_video(result.stream, (result.frame.image.shape[1], result.frame.image.shape[0]))
        self.videos[result.stream].write(picture, result.frame.timestamp)

    def close(self):
        close_all(self.videos.values())
