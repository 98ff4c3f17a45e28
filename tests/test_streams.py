"""Several streams in one `live`: each one's results equal a run on it alone, a stream that
drops does not stop the others, and every output says which stream it belongs to."""
import json
import subprocess

import cv2
import numpy as np
import pytest

from conftest import CLIPS, ROOT, free_port, read_jsonl, run_command, serve_stream, wait_for

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

THREE = [CLIPS / "pool_cleaning.mp4", CLIPS / "eye_makeup_320x240.avi", CLIPS / "basketball.mp4"]


def by_stream(records):
    streams = {}
    for record in records:
        streams.setdefault(record["stream"], []).append(record)
    return streams


@pytest.mark.parametrize("bundle", ["lite", "kinetics600"])
@pytest.mark.slow
def test_three_streams_equal_three_single_runs(bundle, lite_bundle, tmp_path):
    # An image backbone takes each turn's frames as one batch; MoViNet runs them on a pool of
    # interpreters. Either way each stream must come out as if it ran alone. The three streams
    # go through the command line; each alone through the Python API, the same code path
    # (test_live.py::test_python_api_equals_the_command), without three more processes.
    weights = lite_bundle if bundle == "lite" else ROOT / "weights" / "kinetics600"
    common = ["--weights", weights, "--no-display", "--max-frames", 60, "--jsonl-probs"]
    together = tmp_path / "together.jsonl"
    args = [arg for clip in THREE for arg in ("--file", clip)]
    process = run_command("live", *args, *common, "--jsonl", together)
    assert process.returncode == 0, process.stderr
    streams = by_stream(read_jsonl(together))
    assert list(streams) == [str(clip) for clip in THREE]  # each record names its stream, as given
    import live

    model = live.load(weights)  # each clip alone, through the API: the command's own code path
    for clip in THREE:
        single = [result.to_dict(probs=True) for result in model.stream(clip, max_frames=60)]
        side_by_side = streams[str(clip)]
        assert [r["frame"] for r in side_by_side] == [r["frame"] for r in single] == list(range(60))
        assert [r["sampled"] for r in side_by_side] == [r["sampled"] for r in single]
        difference = np.abs(np.array([r["probs"] for r in side_by_side]) - np.array([r["probs"] for r in single]))
        assert difference.max() <= 1e-4, (clip.name, difference.max())


def test_api_reads_a_list_of_sources_side_by_side():
    import live

    model = live.load()
    clips = [CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4", CLIPS / "arm_wrestling.mp4"]
    results = list(model.stream(clips, max_frames=40))
    streams = by_stream([result.to_dict(probs=True) for result in results])
    # The same file twice is two streams, told apart by name; each has its own state.
    assert list(streams) == [str(clips[0]), str(clips[1]), f"{clips[0]}#2"]
    assert all(len(records) == 40 for records in streams.values())
    first = np.array([r["probs"] for r in streams[str(clips[0])]])
    again = np.array([r["probs"] for r in streams[f"{clips[0]}#2"]])
    assert np.abs(first - again).max() <= 1e-6
    assert streams[str(clips[0])][-1]["label"] == "arm wrestling"
    assert streams[str(clips[1])][-1]["label"] == "cleaning pool"


@pytest.mark.slow
def test_dropping_stream_beside_a_file_lets_the_file_finish(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/stream.ts"
    server = serve_stream(CLIPS / "basketball.mp4", port)
    jsonl = tmp_path / "out.jsonl"
    # --max-fps 25 replays the 300-frame file over 12 s, so it is still running when the
    # stream drops.
    process = subprocess.Popen(["live", "--file", str(CLIPS / "pool_cleaning.mp4"), "--file", url, "--no-display",
                                "--max-fps", "25", "--jsonl", str(jsonl)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def stream_records():
            return jsonl.exists() and sum(json.loads(line)["stream"] == url
                                          for line in jsonl.read_text().splitlines()[:-1]) >= 10
        assert wait_for(stream_records, 90), "the HTTP stream gave no records"
        server.kill()  # the stream drops and does not come back
        server.wait()
        file_records_at_drop = sum(json.loads(line)["stream"] == str(CLIPS / "pool_cleaning.mp4")
                                   for line in jsonl.read_text().splitlines()[:-1])
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        server.kill()
    assert process.returncode == 1, stderr  # a source failed part-way
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and url in errors[0] and "Traceback" not in stderr, stderr
    streams = by_stream(read_jsonl(jsonl))
    assert [r["frame"] for r in streams[str(CLIPS / "pool_cleaning.mp4")]] == list(range(300))  # all of it
    assert f"stream {url}:" in stderr and f"stream {CLIPS / 'pool_cleaning.mp4'}:" in stderr  # a summary each
    # The stream's reader decided its sample points, 0.2 s apart: each one was classified or
    # counted as missed in its summary.
    missed = int(stderr.split(f"stream {url}:")[1].split("sample points missed ")[1].split()[0])
    samples = [r["time"] for r in streams[url] if r["sampled"]]
    assert len(samples) >= 2 and len(samples) + missed >= (samples[-1] - samples[0]) / 0.2 - 1, (samples, missed)
    assert file_records_at_drop < 300  # the file was still running when the stream dropped, and went on


@pytest.mark.slow
def test_outputs_and_events_per_stream(tmp_path):
    clips = [CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4"]
    events = tmp_path / "events.jsonl"
    process = run_command("live", "--file", clips[0], "--file", clips[1], "--no-display", "--max-frames", 100,
                          "--output", tmp_path / "out.mp4", "--events", events)
    assert process.returncode == 0, process.stderr
    assert not (tmp_path / "out.mp4").exists()
    for number, clip in enumerate(clips, 1):
        video = tmp_path / f"out-{number}.mp4"
        assert f"stream {clip} -> {video}:" in process.stderr  # the summary says which file is whose
        capture = cv2.VideoCapture(str(video))
        source = cv2.VideoCapture(str(clip))
        assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == source.get(cv2.CAP_PROP_FRAME_WIDTH) // 2 * 2
        assert abs(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) - 100) <= 1
    assert {(e["stream"], e["label"]) for e in read_jsonl(events)} == {
        (str(clips[0]), "arm wrestling"), (str(clips[1]), "cleaning pool")}


def test_api_takes_a_list_of_frames_as_one_stream():
    import live

    capture = cv2.VideoCapture(str(CLIPS / "arm_wrestling.mp4"))
    frames = [capture.read()[1] for _ in range(30)]
    model = live.load()
    from_list = [r.to_dict(probs=True) for r in model.stream(frames, fps=30)]
    from_generator = [r.to_dict(probs=True) for r in model.stream((frame for frame in frames), fps=30)]
    assert len(from_list) == 30 and {r["stream"] for r in from_list} == {"frames"}
    assert [r["probs"] for r in from_list] == [r["probs"] for r in from_generator]
    with pytest.raises(ValueError):
        next(model.stream([CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4"], names=["one"]))
