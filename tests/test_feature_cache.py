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


def test_a_worker_record_keeps_what_the_driver_knows(tmp_path):
    """`train extract --engine ray`: the driver folds in a worker's record of a clip (file fields and
    frame counts) and keeps its own label, group and frame rate while the content is the same."""
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"frames")
    stat = clip.stat()
    index = CacheIndex(tmp_path)
    index.update(clip, size=stat.st_size, mtime_ns=stat.st_mtime_ns, key="a" * 40, label="x", group="x/clip",
                 frames={"fp1": 3}, frame_rate=25.0)
    worker = {"path": str(clip), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "key": "a" * 40,
              "frames": {"fp2": 7}, "frame_rate": None}
    index.merge(worker)
    assert index.records[str(clip)] == {**worker, "label": "x", "group": "x/clip", "frames": {"fp1": 3, "fp2": 7},
                                        "frame_rate": 25.0}
    index.merge({**worker, "key": "b" * 40})  # other content: nothing known of the old one holds
    assert index.records[str(clip)] == {**worker, "key": "b" * 40}


def test_a_read_only_cache_still_serves(tmp_path, capfd, monkeypatch):
    """An index that can't be written (a cache on a read-only mount) is a warning, not a failure.
    The suite runs as root, which no permission stops, so the mount's error is raised where the
    index would be written."""
    import errno
    from contextlib import contextmanager

    import training.features

    @contextmanager
    def read_only_mount(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
        yield

    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"frames")
    index = CacheIndex(tmp_path)
    index.content_key(clip)
    monkeypatch.setattr(training.features, "written_atomically", read_only_mount)
    index.save()
    assert "warning: cannot update the feature cache's index" in capfd.readouterr().err
    assert not (tmp_path / "index.jsonl").exists() and index.changed


def test_an_entry_gone_while_training_is_one_error(tmp_path):
    """An entry that vanishes while fit streams its windows stops it with the trainer's own
    error, not the backend's wrapping of it."""
    from live.errors import UserError
    from training.features import ClipFeatures
    from training.fit import train_model
    from training.model import build_sequence_model
    from training.windows import WindowBatches

    rng = np.random.default_rng(0)
    files = {f"clip{i}": saved(tmp_path / f"{i}.npy", rng.standard_normal((30, 8)).astype(np.float32))
             for i in range(4)}
    features = ClipFeatures(files, 8)
    model = build_sequence_model("gru", 20, 8, 2)
    train = WindowBatches(features, ["clip0", "clip1"], [0, 1], 20, 8, 4, rng, 0)
    validation = WindowBatches(features, ["clip2", "clip3"], [0, 1], 20, 4, 4, rng, 0, redraw=False)
    files["clip1"].unlink()
    with pytest.raises(UserError, match="could not be read while training"):
        train_model(model, train, validation, epochs=2, progress=False)
