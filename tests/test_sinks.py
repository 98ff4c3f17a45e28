"""Sinks through the Python API: a sink of the test's own is opened once with the streams, gets
every result the loop yields and is closed once, however the loop ends: at the end of the
clip, when the caller stops early (what Ctrl-C does to `live`'s loop), and when a stream fails
part-way. Real clips, a real bundle."""
import cv2
import numpy as np
import pytest

import live
from conftest import CLIPS
from live.errors import UserError

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)


class RecordingSink(live.Sink):
    def __init__(self, stop_after=None):
        self.streams, self.frames, self.closes, self.stop_after = None, [], 0, stop_after

    def open(self, streams):
        assert self.streams is None, "opened twice"
        self.streams = [(stream.number, stream.name, stream.fps) for stream in streams]

    def put(self, result):
        assert self.closes == 0, "a result after close"
        self.frames.append((result.stream, result.frame.index))
        return self.stop_after is None or len(self.frames) < self.stop_after

    def close(self):
        self.closes += 1


@pytest.fixture(scope="module")
def model(lite_bundle):
    return live.load(lite_bundle)


def yielded(results):
    return [(result.stream, result.frame.index) for result in results]


def test_a_sink_gets_every_result_and_one_close_and_several_sinks_the_same(model):
    first, second = RecordingSink(), RecordingSink()
    clips = [CLIPS / "eye_makeup_320x240.avi", CLIPS / "basketball.mp4"]
    seen = yielded(model.stream(clips, max_frames=20, names=["a", "b"], sinks=[first, second]))
    assert len(seen) == 40
    assert first.frames == second.frames == seen
    assert first.streams == [(1, "a", pytest.approx(cv2.VideoCapture(str(clips[0])).get(cv2.CAP_PROP_FPS))),
                             (2, "b", pytest.approx(cv2.VideoCapture(str(clips[1])).get(cv2.CAP_PROP_FPS)))]
    assert first.closes == second.closes == 1


def test_a_loop_stopped_early_closes_the_sinks_once(model):
    """`live` breaks out of its loop on Ctrl-C and closes the generator: the same here."""
    sink = RecordingSink()
    results = model.stream(CLIPS / "arm_wrestling.mp4", sinks=[sink])
    seen = yielded(result for _, result in zip(range(12), results))
    assert sink.closes == 0
    results.close()
    assert sink.frames == seen and len(seen) == 12
    assert sink.closes == 1


def test_a_sink_that_says_stop_ends_the_loop(model):
    """As the window's q or a gone stdout reader do."""
    sink, other = RecordingSink(stop_after=7), RecordingSink()
    seen = yielded(model.stream(CLIPS / "arm_wrestling.mp4", sinks=[sink, other]))
    assert len(seen) == 7 and other.frames == seen
    assert sink.closes == other.closes == 1


def test_a_stream_that_fails_part_way_still_closes_the_sinks_after_every_result(model):
    capture = cv2.VideoCapture(str(CLIPS / "eye_makeup_320x240.avi"))
    frames = [capture.read()[1] for _ in range(15)]
    frames.append(frames[-1].astype(np.float32))  # frame 15 is not a picture: the stream fails there
    sink, seen = RecordingSink(), []
    with pytest.raises(UserError, match="frame 15 is a float32 array"):
        for result in model.stream(frames, sinks=[sink]):
            seen.append((result.stream, result.frame.index))
    assert sink.frames == seen and [index for _, index in seen] == list(range(15))
    assert sink.closes == 1


def test_a_sink_that_fails_to_open_leaves_the_others_closed(model, tmp_path):
    """A video that cannot be written stops the run before any frame, and what was opened is closed."""
    from live.sinks import VideoSink

    sink = RecordingSink()
    with pytest.raises(UserError, match="cannot write --output"):
        list(model.stream(CLIPS / "arm_wrestling.mp4", sinks=[sink, VideoSink(tmp_path / "no" / "such.avi")]))
    assert sink.frames == [] and sink.closes == 1


def test_the_video_sink_takes_numpy_frames_whose_size_comes_with_the_first(model, tmp_path):
    from live.sinks import VideoSink

    capture = cv2.VideoCapture(str(CLIPS / "eye_makeup_320x240.avi"))
    frames = [capture.read()[1] for _ in range(30)]
    list(model.stream(frames, fps=25, sinks=[VideoSink(tmp_path / "out.avi")]))
    written = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert written.get(cv2.CAP_PROP_FRAME_COUNT) == 30
    assert (written.get(cv2.CAP_PROP_FRAME_WIDTH), written.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
