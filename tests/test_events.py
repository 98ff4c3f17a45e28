"""EventTracker's hysteresis as a unit: results with chosen top labels, scores and times go in,
and the test checks when a segment opens, when it closes and with what start, end and peak.
Frames are 0.1 s apart; min_duration is 1 s and min_score 0.5 unless a test says otherwise."""
import json

import numpy as np
import pytest

from live.events import EventTracker, EventWriter
from live.pipeline import Result
from live.sources import Frame

LABELS = ["walk", "run", "jump"]
STEP = 0.1


def result(time, label, score, stream="cam"):
    """A Result whose top label is `label` with probability `score`; the other two share the rest
    unevenly, so that `label` stays on top for any score above 1/3."""
    others = [name for name in LABELS if name != label]
    rest = 1 - score
    probs = dict(zip(others, (rest * 0.6, rest * 0.4)), **{label: score})
    frame = Frame(index=round(time / STEP), timestamp=time, image=None, read_at=0.0, read_ms=0.0)
    return Result(frame, LABELS, 20, 20, np.array([probs[name] for name in LABELS]), True, stream=stream)


def run(start, seconds, label, score=0.9):
    """Results every STEP from `start` for `seconds` (end excluded), all with `label` on top."""
    return [result(round(start + i * STEP, 3), label, score) for i in range(round(seconds / STEP))]


def feed(tracker, results):
    """Every event the tracker closes, with the time of the result that closed it ('finish' for
    the end of the run)."""
    closed = [(r.frame.timestamp, event) for r in results for event in tracker.update(r)]
    return closed + [("finish", event) for event in tracker.finish()]


def spans(closed):
    return [(event["label"], event["start"], event["end"]) for _, event in closed]


def timeline(closed):
    """(when it was closed, label, start, end) of each event."""
    return [(when, event["label"], event["start"], event["end"]) for when, event in closed]


def test_a_steady_label_is_one_segment_closed_at_the_end_of_the_run():
    results = run(0, 3, "walk", 0.8)
    results[12] = result(1.2, "walk", 0.95)
    closed = feed(EventTracker("cam"), results)
    assert closed == [("finish", {"stream": "cam", "label": "walk", "start": 0.0, "end": 2.9, "peak_score": 0.95,
                                  "frames": 30})]


@pytest.mark.parametrize("seconds, opened", [(1.0, False), (1.1, True)])
def test_a_label_opens_a_segment_only_after_min_duration(seconds, opened):
    """10 frames span 0.9 s, 11 frames 1.0 s (first to last): only the latter reach min_duration.
    What follows (2 s with no confident label) is no event."""
    closed = feed(EventTracker("cam"), run(0, seconds, "run") + run(seconds, 2, "walk", 0.4))
    assert spans(closed) == ([("run", 0.0, round(seconds, 3))] if opened else [])


def test_a_label_below_min_score_is_no_event():
    results = run(0, 3, "jump", 0.45)
    assert feed(EventTracker("cam"), results) == []
    assert spans(feed(EventTracker("cam", min_score=0.4), results)) == [("jump", 0.0, 2.9)]


def test_a_label_that_loses_confidence_ends_when_it_fell_below_min_score():
    """Still on top, but under min_score from 2.0 s: the segment ends there, closed by the
    update 1 s later, not at the end of the run."""
    closed = feed(EventTracker("cam"), run(0, 2, "walk") + run(2, 2, "walk", 0.4))
    assert closed == [(3.0, {"stream": "cam", "label": "walk", "start": 0.0, "end": 2.0, "peak_score": 0.9,
                             "frames": 20})]


@pytest.mark.parametrize("blip", ["run", "unsure"])
def test_a_blip_shorter_than_min_duration_does_not_split_the_segment(blip):
    """0.5 s of another label, or of no confident label, inside 4.5 s of `walk`: one segment,
    whose frames and peak are walk's alone."""
    blip_results = run(2, 0.5, "run", 0.99) if blip == "run" else run(2, 0.5, "walk", 0.3)
    closed = feed(EventTracker("cam"), run(0, 2, "walk", 0.8) + blip_results + run(2.5, 2, "walk", 0.85))
    assert closed == [("finish", {"stream": "cam", "label": "walk", "start": 0.0, "end": 4.4, "peak_score": 0.85,
                                  "frames": 40})]


def test_a_new_label_takes_over_once_it_has_held_min_duration():
    """walk for 2 s, then run: walk's event is closed by the update at which run has held 1 s
    (3.0 s), ending when run took over (2.0 s), which is also where run's segment starts."""
    closed = feed(EventTracker("cam"), run(0, 2, "walk") + run(2, 2, "run", 0.7))
    assert timeline(closed) == [(3.0, "walk", 0.0, 2.0), ("finish", "run", 2.0, 3.9)]
    assert [event["frames"] for _, event in closed] == [20, 20]


def test_a_label_gone_for_min_duration_ends_even_if_nothing_replaces_it_steadily():
    """After walk, run and jump alternate every frame: neither holds, yet walk has been gone for
    1 s at 3.0 s and ends at 2.0 s; no event for run or jump."""
    flicker = [result(round(2 + i * STEP, 3), ("run", "jump")[i % 2], 0.9) for i in range(15)]
    closed = feed(EventTracker("cam"), run(0, 2, "walk") + flicker)
    assert timeline(closed) == [(3.0, "walk", 0.0, 2.0)]


def test_the_open_segment_is_closed_at_finish_where_its_label_left():
    """The run ends 0.5 s into a different label: the open segment ends where its label left the
    top, not at the last frame; the newcomer, too short, is no event."""
    closed = feed(EventTracker("cam"), run(0, 2, "walk") + run(2, 0.5, "jump"))
    assert closed == [("finish", {"stream": "cam", "label": "walk", "start": 0.0, "end": 2.0, "peak_score": 0.9,
                                  "frames": 20})]


def test_the_writer_writes_each_event_as_it_closes_and_the_last_at_close(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path, {"cam": EventTracker("cam"), "door": EventTracker("door")})
    for item in run(0, 2, "walk") + run(2, 1.1, "run"):
        writer.update(item)
        writer.update(result(item.frame.timestamp, "jump", 0.9, stream="door"))
    assert [json.loads(line)["label"] for line in path.read_text().splitlines()] == ["walk"]  # run took over at 3.0
    writer.close()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["stream"], e["label"], e["start"], e["end"]) for e in events] == [
        ("cam", "walk", 0.0, 2.0), ("cam", "run", 2.0, 3.0), ("door", "jump", 0.0, 3.0)]
