"""The overlay, in process: its notes (uncertain, falling behind) as drawn on a real frame, and
its figures: the source's frame rate and the model's, never the speed frames were processed at."""
import shutil
import time

import cv2
import numpy as np
import pytest

from conftest import CLIPS, free_port, serve_stream

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

QUIET = {"source_fps": 28.0, "model_fps": 5.0, "model_ms": 12.0, "dropped_fraction": 0.0}


def first_frame():
    from live.sources import Frame

    capture = cv2.VideoCapture(str(CLIPS / "arm_wrestling.mp4"))
    return Frame(0, 0.0, capture.read()[1], 0.0, 0.1)


def result_of(frame, probs=(0.7, 0.2, 0.1)):
    from live.pipeline import Result

    return Result(frame, ["alpha", "beta", "gamma"], 20, 20, np.asarray(probs, np.float32), True, {"latency_ms": 12.0})


def pixels_of(image, colour, tolerance=40):
    return int((np.abs(image.astype(int) - colour) < tolerance).all(axis=2).sum())


def changed(first, second):
    """The pixels of `first` where it differs from `second`."""
    return first[(first != second).any(axis=2)][None]


def test_below_the_threshold_the_overlay_says_uncertain_in_amber():
    from live.render import AMBER, GREEN, OverlayRenderer

    frame = first_frame()
    image, result = frame.image, result_of(frame, [0.45, 0.35, 0.2])
    uncertain = OverlayRenderer(threshold=0.5)
    sure = OverlayRenderer(threshold=0.4)
    assert uncertain.rows(result, QUIET)[0][0] == "uncertain (alpha 45%)"
    assert sure.rows(result, QUIET)[0][0] == "alpha 45%"
    # What differs between the two pictures is the headline: amber when uncertain, else green.
    drawn_uncertain, drawn_sure = uncertain.draw(image, result, QUIET), sure.draw(image, result, QUIET)
    assert pixels_of(changed(drawn_uncertain, drawn_sure), AMBER) > 100
    assert pixels_of(changed(drawn_uncertain, drawn_sure), GREEN) == 0
    assert pixels_of(changed(drawn_sure, drawn_uncertain), GREEN) > 100


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")
def test_a_stream_read_too_slowly_says_falling_behind():
    """A 28 fps stream taken at about 8 frames a second: most frames are dropped for newer ones,
    and the overlay says so, in an extra amber line."""
    from live.render import AMBER, OverlayRenderer
    from live.sources import open_source
    from live.status import OverlayStatus

    port = free_port()
    server = serve_stream(CLIPS / "arm_wrestling.mp4", port)
    try:
        source = open_source(file=f"http://127.0.0.1:{port}/stream.ts")
        try:
            status = OverlayStatus(source)
            started = time.perf_counter()
            for frame in source.frames():
                status.update(result_of(frame))
                if time.perf_counter() - started > 3.5:
                    break
                time.sleep(0.12)  # "classifying": slower than the stream delivers
        finally:
            source.close()
    finally:
        server.kill()
    figures = status.as_dict()
    assert figures["dropped_fraction"] > 0.5, figures
    assert figures["source_fps"] == pytest.approx(28, abs=3)  # the stream's rate, drops included
    renderer = OverlayRenderer()
    rows = [text for text, *_ in renderer.rows(result_of(frame), figures)]
    assert rows[-1] == f"falling behind: dropping {figures['dropped_fraction']:.0%} of frames"
    behind = renderer.draw(frame.image, result_of(frame), figures)
    keeping_up = renderer.draw(frame.image, result_of(frame), {**figures, "dropped_fraction": 0.0})
    assert pixels_of(changed(behind, keeping_up), AMBER) > 30  # a thin line of text: 78 here


def test_overlay_shows_the_sources_rate_not_the_processing_speed(cache_dir):
    """The default bundle on a 28 fps clip, classified as fast as it goes (as a headless run
    writing --output does): the overlay says 28 fps for the source and 5 a second for the model
    (its sampling rate), whatever the speed of the machine."""
    import live
    from live.render import OverlayRenderer
    from live.sources import open_source
    from live.status import OverlayStatus

    model = live.load()
    source = open_source(file=str(CLIPS / "arm_wrestling.mp4"))
    status = OverlayStatus(source)
    started = time.perf_counter()
    try:
        for result in model.stream(source, max_frames=140):
            status.update(result)
    finally:
        source.close()
    processing_fps = 140 / (time.perf_counter() - started)
    print(f"processed at {processing_fps:.1f} fps; overlay: {status.as_dict()}")
    assert status.source_fps == pytest.approx(28.0, abs=0.05)
    assert status.model_fps == pytest.approx(5.0, abs=0.4)
    rows = [text for text, *_ in OverlayRenderer().rows(result, status.as_dict())]
    assert "source 28.0 fps" in rows
    assert any(row.startswith(f"model {status.model_fps:.1f}/s  ") and row.endswith(" ms") for row in rows), rows
