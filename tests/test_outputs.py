"""What a run leaves behind, in process: the JSONL record's size and content, the summary's
latency and step figures, and the annotated video's cap on a frozen gap."""
import json

import cv2
import numpy as np
import pytest

from conftest import MODELS



def frame(index=0, timestamp=0.0, image=None):
    from live.sources import Frame

    return Frame(index, timestamp, np.zeros((8, 8, 3), np.uint8) if image is None else image, 0.0, 0.1)


def result(probs, labels, sampled=True, timings=None, stream="frames"):
    from live.pipeline import Result

    return Result(frame(), labels, 20, 20, np.asarray(probs, np.float32), sampled,
                  {"latency_ms": 1.0, **(timings or {})}, stream)


@pytest.mark.real_data
def test_jsonl_record_holds_the_top_5_under_1_kb_with_600_labels(tmp_path):
    """The worst case of the default bundle: its five longest labels on top, a long stream name."""
    from live.outputs import JsonlWriter

    KINETICS_LABELS = (MODELS / "movinet_a0_stream_k600" / "labels.txt").read_text().splitlines()
    longest = sorted(range(600), key=lambda i: len(KINETICS_LABELS[i]))[-5:][::-1]
    probs = np.random.default_rng(0).dirichlet(np.ones(600)).astype(np.float32) * 0.5
    probs[longest] = [0.3, 0.1, 0.05, 0.03, 0.02]
    probs /= probs.sum()
    stream = "rtsp://camera.example.org:8554/" + "x" * 60
    for with_probs in (False, True):
        path = tmp_path / f"{with_probs}.jsonl"
        writer = JsonlWriter(path, probs=with_probs)
        writer.write(result(probs, KINETICS_LABELS, stream=stream))
        writer.close()
        line = path.read_bytes()
        record = json.loads(line)
        assert [label for label, _ in record["top"]] == [KINETICS_LABELS[i] for i in longest]
        assert [score for _, score in record["top"]] == [round(float(probs[i]), 4) for i in longest]
        assert record["label"] == KINETICS_LABELS[longest[0]] and record["score"] == round(float(probs[longest[0]]), 4)
        if with_probs:  # --jsonl-probs: every probability, in label order, to 1e-6
            assert len(record["probs"]) == 600
            np.testing.assert_allclose(record["probs"], probs, atol=5e-7, rtol=0)
        else:
            assert "probs" not in record
            assert len(line) <= 1024, len(line)


def test_summary_gives_the_models_latency_beside_every_frames_and_draw_over_every_frame():
    """One frame in five goes through the model (20 ms); the others take 1 ms. Drawing takes
    3 ms on a sampled frame and 1 ms on the others: its median is over every drawn frame."""
    from live.outputs import RunSummary

    summary = RunSummary()
    for index in range(100):
        sampled = index % 5 == 0
        summary.add(result([0.7, 0.2, 0.1], ["a", "b", "c"], sampled,
                           {"latency_ms": 20.0 if sampled else 1.0, "read": 0.5, "embed": 15.0 if sampled else 0.0,
                            "draw": 3.0 if sampled else 1.0}))
    text = summary.text(100, 2.0)
    print(text)
    lines = text.splitlines()
    assert lines[0] == "frames read 100, classified 100, 50.0 fps"

    def median_p95(line):
        return [float(part.split()[-2]) for part in line.split(",")]

    assert lines[1].startswith("all frames: latency") and median_p95(lines[1]) == pytest.approx([1.0, 20.0], rel=0.01)
    assert lines[2].startswith("20 frames through the model: latency")
    assert median_p95(lines[2]) == pytest.approx([20.0, 20.0], rel=0.01)
    steps = dict(part.split(" (")[0].split(" ")[:2] for part in lines[3].split(": ", 1)[1].split(", "))
    assert float(steps["draw"]) == pytest.approx(1.0, rel=0.01)  # not 3 ms: every drawn frame counts
    assert float(steps["embed"]) == pytest.approx(15.0, rel=0.01)  # the model's steps: sampled frames only
    assert "draw 1.0 ms (every drawn frame)" in lines[3]


@pytest.mark.parametrize("extension", [".avi", ".mp4"])
def test_video_holds_a_gap_only_up_to_the_cap(extension, tmp_path):
    """A 25 fps stream that stalls for 20 s: the video shows the last picture for MAX_GAP_S (5 s,
    125 frames), not for 20 s, and goes on from there. Read back frame by frame."""
    from live.outputs import VideoOutput

    red, blue = np.zeros((64, 96, 3), np.uint8), np.zeros((64, 96, 3), np.uint8)
    red[..., 2], blue[..., 0] = 200, 200
    path = tmp_path / f"out{extension}"
    video = VideoOutput(path, (96, 64), 25.0)
    for timestamp, image in [(0.0, red), (0.04, red), (20.04, blue), (20.08, blue)]:
        video.write(image, timestamp)
    video.close()
    capacity = int(VideoOutput.MAX_GAP_S * 25)
    capture = cv2.VideoCapture(str(path))
    colours = []
    while (read := capture.read())[0]:
        colours.append("red" if read[1][..., 2].mean() > read[1][..., 0].mean() else "blue")
    assert colours == ["red"] * (2 + capacity) + ["blue"] * 2, (len(colours), colours.count("red"))
