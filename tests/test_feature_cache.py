"""The feature cache's files are checked, never trusted: an entry's header against the index and
the backbone's feature size, an index line's fields before its key names a file."""
import json

import numpy as np
import pytest

from training.features import CacheIndex, DamagedEntry, EntryRows, open_entry


def saved(path, array, **options):
    np.save(path, array, **options)
    return path


def test_entries_are_checked_before_use(tmp_path):
    good = saved(tmp_path / "good.npy", np.arange(30, dtype=np.float16).reshape(10, 3))
    rows = EntryRows(open_entry(good, 3, frames=10))
    assert len(rows) == 10 and rows[2:5].tolist() == [[6, 7, 8], [9, 10, 11], [12, 13, 14]]
    assert np.asarray(rows, np.float64).sum() == sum(range(30))
    for name, array, options in [("pickle", np.array([{"a": 1}], dtype=object), {"allow_pickle": True}),
                                 ("wide", np.zeros((10, 4), np.float32), {}),
                                 ("cube", np.zeros((10, 3, 1), np.float32), {}),
                                 ("ints", np.zeros((10, 3), np.int64), {})]:
        with pytest.raises(DamagedEntry):
            open_entry(saved(tmp_path / f"{name}.npy", array, **options), 3)
    with pytest.raises(DamagedEntry, match="the index and the backbone say 12 x 3"):
        open_entry(good, 3, frames=12)
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(DamagedEntry):
        open_entry(truncated, 3)
    (tmp_path / "text.npy").write_text("not an array\n")
    with pytest.raises(DamagedEntry):
        open_entry(tmp_path / "text.npy", 3)


def test_index_lines_that_could_mislead_are_dropped(tmp_path):
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"frames")
    stat = clip.stat()
    good = {"path": str(clip), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "key": "a" * 40,
            "label": "x", "group": "x/clip", "split": None, "frames": {"fp": 3}, "frame_rate": 25.0}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "path": "/other", "key": "../../../etc/passwd"}),
             json.dumps({**good, "path": "/neg", "frames": {"fp": -1}}),
             json.dumps({**good, "path": "/rate", "frame_rate": float("inf")})]
    (tmp_path / "index.jsonl").write_text("\n".join(lines) + "\n")
    index = CacheIndex(tmp_path)
    assert list(index.records) == [str(clip)]
    assert index.content_key(clip) == "a" * 40  # unchanged size and time: the file is not read
    clip.write_bytes(b"other frames")  # changed: read again, and what was measured of it is dropped
    assert index.content_key(clip) != "a" * 40 and index.records[str(clip)]["frames"] == {}
    index.save()
    assert CacheIndex(tmp_path).records[str(clip)]["key"] == index.records[str(clip)]["key"]
