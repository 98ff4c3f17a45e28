"""Dataset layouts and the grouped, stratified splits."""
import pytest



import live  # noqa: F401
from live.errors import UserError
from training.datasets import clip_group, grouped_split, load_dataset


def touch_videos(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\0")


def test_reference_layout(tmp_path):
    (tmp_path / "train.csv").write_text("video_name,tag\nv_Punch_g01_c01.avi,Punch\nv_Cello_g02_c01.avi,Cello\n")
    (tmp_path / "test.csv").write_text("video_name,tag\nv_Punch_g09_c01.avi,Punch\n")
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "reference"
    assert dataset.classes == ["Cello", "Punch"]
    assert dataset.train[0].path == tmp_path / "train" / "v_Punch_g01_c01.avi"
    assert dataset.train[0].group == "Punch/g01"


def test_ucf101_layout_split_and_classes(tmp_path):
    for label in ("Punch", "TennisSwing", "Drumming"):
        touch_videos(tmp_path / "UCF-101" / label, [f"v_{label}_g0{g}_c01.avi" for g in range(1, 4)])
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    for split in (1, 2, 3):
        train = "".join(f"{label}/v_{label}_g0{g}_c01.avi 1\n" for label in ("Punch", "TennisSwing", "Drumming")
                        for g in (1, 2, 3) if g != split)
        test = "".join(f"{label}/v_{label}_g0{split}_c01.avi\n" for label in ("Punch", "TennisSwing", "Drumming"))
        (lists / f"trainlist0{split}.txt").write_text(train)
        (lists / f"testlist0{split}.txt").write_text(test)
    dataset = load_dataset(tmp_path, split=2, classes="Punch,TennisSwing")
    assert dataset.layout == "ucf101"
    assert dataset.classes == ["Punch", "TennisSwing"]
    assert {c.path.name for c in dataset.test} == {"v_Punch_g02_c01.avi", "v_TennisSwing_g02_c01.avi"}
    assert len(dataset.train) == 4


def test_split_folders_and_class_folders(tmp_path):
    for split in ("train", "test"):
        for label in ("a", "b"):
            touch_videos(tmp_path / "split" / split / label, ["x.mp4", "y.mp4"])
    assert load_dataset(tmp_path / "split").layout == "split folders"
    for label in ("a", "b"):
        touch_videos(tmp_path / "flat" / label, [f"src{n}__{k}.mp4" for n in range(6) for k in range(3)])
    dataset = load_dataset(tmp_path / "flat", test_fraction=0.3, seed=1)
    assert dataset.layout == "class folders"
    train_groups = {c.group for c in dataset.train}
    assert not train_groups & {c.group for c in dataset.test}  # no source straddles the split
    assert {c.label for c in dataset.test} == {"a", "b"}  # stratified


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(UserError, match="no dataset layout found"):
        load_dataset(tmp_path)


def test_grouped_split_is_seeded_stratified_and_grouped():
    from training.datasets import Clip

    clips = [Clip(f"v_{label}_g{g:02d}_c{c}.avi", label, clip_group(f"v_{label}_g{g:02d}_c{c}.avi", label))
             for label in ("A", "B", "C") for g in range(1, 11) for c in range(1, 5)]
    kept, held = grouped_split(clips, 0.2, seed=3)
    assert grouped_split(clips, 0.2, seed=3) == (kept, held)
    assert {c.group for c in kept}.isdisjoint({c.group for c in held})
    for label in ("A", "B", "C"):  # every class is in both parts, about 20% held out
        assert sum(c.label == label for c in held) == 8
        assert sum(c.label == label for c in kept) == 32
