"""The trainer's edges, each on real clips: what `--test-fraction 0` holds out, how `train
demo-data` cuts and names segments, truncated clips in extraction, the `--backbone` check,
one warning per bad file in `train predict`, the short-clip warning, and the README's offline
training example run as written."""
import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from conftest import CLIPS, DATA, ROOT, frame_count

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

KINETICS = ROOT / "weights" / "kinetics600"
THREE_CLIPS = [CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4", CLIPS / "basketball.mp4"]


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """The three clips cut into three segments each by `train demo-data`'s function."""
    from training.demo_data import make_demo_data

    folder = tmp_path_factory.mktemp("segments")
    assert make_demo_data([str(clip) for clip in THREE_CLIPS], folder, segments=3) == 9
    return folder


@pytest.fixture
def two_sources_in_one_class(segments, tmp_path):
    """Class `mixed` holds the segments of two clips (arm wrestling and pool cleaning); class
    `basketball` those of one."""
    for label, folders in (("mixed", ("arm_wrestling", "cleaning_pool")), ("basketball", ("playing_basketball",))):
        (tmp_path / label).mkdir()
        for folder in folders:
            for clip in (segments / folder).iterdir():
                (tmp_path / label / clip.name).symlink_to(clip)
    return tmp_path


def test_demo_data_names_segments_by_clip_and_cuts_every_frame(segments):
    for folder, source in (("arm_wrestling", "arm_wrestling.mp4"), ("cleaning_pool", "pool_cleaning.mp4"),
                           ("playing_basketball", "basketball.mp4")):
        stem = Path(source).stem
        parts = sorted((segments / folder).iterdir())
        assert [p.name for p in parts] == [f"{stem}__part{n}.avi" for n in range(3)]
        counts = [frame_count(p) for p in parts]
        assert sum(counts) == frame_count(CLIPS / source)  # nothing lost or repeated at the cuts
        assert max(counts) - min(counts) <= 2, counts


def test_demo_data_streams_a_clip_instead_of_holding_it(tmp_path):
    """Peak Python memory while cutting the 280-frame clip stays below ten of its frames
    (340x256x3 bytes each); holding the clip whole took 73 MB."""
    from training.demo_data import make_demo_data

    tracemalloc.start()
    try:
        make_demo_data([str(CLIPS / "arm_wrestling.mp4")], tmp_path, segments=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 340 * 256 * 3, peak


def test_segments_of_one_clip_stay_on_one_side_of_the_split(two_sources_in_one_class):
    from training.datasets import load_dataset, single_source_classes

    data = two_sources_in_one_class
    for seed in range(5):
        dataset = load_dataset(data, test_fraction=0.25, seed=seed)
        sources = {side: {c.path.name.split("__")[0] for c in clips if c.label == "mixed"}
                   for side, clips in (("train", dataset.train), ("test", dataset.test))}
        assert len(sources["train"]) == len(sources["test"]) == 1 and sources["train"] != sources["test"], sources
        # The class cut from one clip can only share its segments out: some on each side.
        assert {c.label for c in dataset.test} == {"mixed", "basketball"}
        assert single_source_classes(dataset.train + dataset.test) == ["basketball"]


def test_test_fraction_zero_holds_out_nothing(two_sources_in_one_class):
    from training.datasets import load_dataset

    dataset = load_dataset(two_sources_in_one_class, test_fraction=0)
    assert dataset.test == [] and len(dataset.train) == 9
    assert len(load_dataset(two_sources_in_one_class, test_fraction=0.01).test) > 0  # any fraction above 0 holds out


def half_a_clip(tmp_path):
    """The eye make-up clip as MJPEG AVI (164 frames), whole and cut to its first half of bytes."""
    source = cv2.VideoCapture(str(CLIPS / "eye_makeup_320x240.avi"))
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    while (frame := source.read()[1]) is not None:
        writer.write(frame)
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return full, cut


def test_a_clip_that_stops_decoding_is_skipped_and_listed(tmp_path, capsys):
    from training.config import FeatureConfig
    from training.datasets import Clip
    from training.fit import prepare_features

    full, cut = half_a_clip(tmp_path)
    clips = [Clip(full, "a", "a/full"), Clip(cut, "a", "a/cut")]
    cache = tmp_path / "cache"
    features, skipped, _, _ = prepare_features(clips, FeatureConfig("movinet_a0_stream", frame_rate=5.0, cache_root=cache),
                                           progress=False)
    assert list(features) == [str(full)] and len(features[str(full)]) >= 30
    assert list(skipped) == [str(cut)]
    decoded = int(re.search(r"stopped decoding after (\d+) of 164 frames", skipped[str(cut)]).group(1))
    assert 40 < decoded < 130
    assert len(list(cache.rglob("*.npy"))) == 1  # features of half a clip are not cached as the clip's
    assert capsys.readouterr().err.count(f"warning: skipping {cut}") == 1


def test_unknown_backbone_is_refused_before_the_dataset_is_read(tmp_path):
    from live.backbones import BACKBONES
    from live.errors import UserError
    from training.cli import main
    from training.config import ExtractConfig, FitConfig
    from training.extract import extract
    from training.fit import fit

    for command in ("fit", "extract"):
        options = ["--data", str(tmp_path / "no-such-data"), "--backbone", "resnet50"]
        result = CliRunner().invoke(main, [command, *options] + (["--out", str(tmp_path / "out")]
                                                                 if command == "fit" else []))
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--backbone'" in result.stderr and "dataset" not in result.stderr
        assert all(name in result.stderr for name in BACKBONES)
    with pytest.raises(UserError, match="unknown backbone 'resnet50'"):
        fit(FitConfig.from_options(data=tmp_path / "no-such-data", out=tmp_path / "out", backbone="resnet50"))
    with pytest.raises(UserError, match="unknown backbone 'resnet50'"):
        extract(ExtractConfig.from_options(data=tmp_path / "no-such-data", backbone="resnet50"))


def test_train_starts_without_keras():
    """The backbone names are read only when --backbone is parsed: `train` itself, `--help` and
    `demo-data` do not wait seconds for Keras."""
    process = subprocess.run([sys.executable, "-c", "import sys, training.cli; print('keras' in sys.modules)"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert process.stdout.strip() == "False", process.stderr


def test_predict_warns_once_per_bad_file(tmp_path, cache_dir):
    """Files that are there but hold no video are skipped, each with one warning, and the run
    exits 1; a file that is not there at all is bad input (tests/test_train_checks.py)."""
    from training.cli import main

    garbage, empty = tmp_path / "garbage.mp4", tmp_path / "empty.avi"
    garbage.write_text("not a video\n" * 50)
    empty.write_bytes(b"")
    good = CLIPS / "v_CricketShot_g04_c01_rgb.gif"
    videos = [str(path) for path in (garbage, empty, good)]
    result = CliRunner().invoke(main, ["predict", "--weights", str(KINETICS), *videos])
    assert result.exit_code == 1, result.output
    for bad in (garbage, empty):
        assert result.stderr.count(f"warning: skipping {bad}") == 1, result.stderr
    assert "playing cricket" in result.stdout


@pytest.mark.slow
def test_fit_warns_of_clips_shorter_than_the_window(tmp_path, cache_dir, capsys):
    """The issue's case: 10 s clips cut into 1.25 s segments, trained on MoViNet (a 20-frame
    window at 5 fps is 4 s). With --test-fraction 0 nothing is held out, and evaluate says so."""
    from training.cli import main
    from training.config import FitConfig
    from training.demo_data import make_demo_data
    from training.fit import fit

    make_demo_data([str(CLIPS / "arm_wrestling.mp4"), str(CLIPS / "pool_cleaning.mp4")], tmp_path / "data", 8)
    fit(FitConfig.from_options(data=tmp_path / "data", out=tmp_path / "bundle", backbone="movinet_a0_stream",
                               epochs=1, test_fraction=0, model_kind="gru", refit=False, progress=False))
    log = capsys.readouterr().err
    assert "warning: 16 of 16 clips are shorter than the model's window (20 sampled frames, 4.0 s at 5 per second;" \
        in log, log
    assert "every clip of arm_wrestling, cleaning_pool comes from one source video" in log
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["split"]["test_clips"] == [] and manifest["trained_on"]["clips"] == 16
    result = CliRunner().invoke(main, ["evaluate", "--weights", str(tmp_path / "bundle"), "--data",
                                       str(tmp_path / "data")])
    assert result.exit_code == 2 and "holds out no test clips" in result.stderr, result.output


def readme_offline_example():
    """The commands of the README's offline training example, one a line, as written."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### A first model, offline", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_offline_training_example(tmp_path, cache_dir):
    """Run from a folder with the data folder beside it as ../shared, as a clone has it (so that
    what it writes, data/ and weights/actions, lands in the test's folder), without a screen."""
    (tmp_path / "shared").symlink_to(DATA)
    (tmp_path / "main").mkdir()
    tmp_path = tmp_path / "main"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    commands = readme_offline_example()
    assert [c.split()[:2] for c in commands] == [["train", "demo-data"], ["train", "fit"], ["train", "evaluate"],
                                                 ["train", "predict"], ["live", "--file"]]
    results = []
    for command in commands:
        process = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=600)
        assert process.returncode == 0, (command, process.stderr)
        results.append(process)
    _, fitted, evaluated, predicted, live = results
    bundle = tmp_path / "weights" / "actions"
    manifest = json.loads((bundle / "manifest.json").read_text())
    labels = (bundle / "labels.txt").read_text().split()
    assert manifest["backbone"] == "movinet_a0_stream" and labels == ["arm_wrestling", "cleaning_pool",
                                                                      "playing_basketball"]
    assert "shorter than the model's window" not in fitted.stderr  # as the README says: every window is full
    assert re.search(r"^mean over all windows: accuracy \d+\.\d%", evaluated.stdout, re.MULTILINE), evaluated.stdout
    pool = predicted.stdout.split("pool_cleaning.mp4\n", 1)[1]
    assert re.match(r"  first window: \w+ [\d.]+%.*\n  all windows: cleaning_pool ", pool), predicted.stdout
    assert "flipping_pancake.mkv\n  first window: " in predicted.stdout
    assert "top label: playing_basketball" in live.stderr, live.stderr
