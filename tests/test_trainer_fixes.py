"""What reading the trainer found, each checked on real files: the held-out split recorded in the
bundle and reused by `train evaluate`, the frame rate a bundle records, the cache's identity of
a video, the min-frames rule for cached clips, preprocessing in the backbone fingerprint, and the
feature cache's index: fit after extract opens no clip, trains from the cache alone, survives Ctrl-C."""
import json
import shutil

import pytest

from conftest import CLIPS, run_command

pytestmark = [pytest.mark.slow, pytest.mark.real_data]  # every test here starts live or train, or fits a model

LITE0 = ("--backbone", "efficientnet_lite0")


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    """Class folders cut from three shared clips: <class>/<clip>__partN.avi, 6 parts each."""
    data = tmp_path_factory.mktemp("class-folders")
    process = run_command("train", "demo-data", CLIPS / "arm_wrestling.mp4", CLIPS / "pool_cleaning.mp4",
                          CLIPS / "basketball.mp4", "--to", data, "--segments", 6)
    assert process.returncode == 0, process.stderr
    return data


@pytest.fixture(scope="module")
def seeded_bundle(class_folders, tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("seeded") / "bundle"
    process = run_command("train", "fit", "--data", class_folders, "--out", out, *LITE0, "--seed", 3,
                          "--epochs", 3, "--model", "gru", "--no-refit", "--quiet")
    assert process.returncode == 0, process.stderr
    return out


def test_evaluate_scores_the_models_own_test_clips(seeded_bundle, class_folders):
    """A model fit with --seed 3 is scored on the clips that seed held out, not on the split the
    default seed would make (which overlaps its training clips)."""
    manifest = json.loads((seeded_bundle / "manifest.json").read_text())
    recorded = manifest["split"]
    assert recorded["seed"] == 3 and recorded["layout"] == "class folders"
    process = run_command("train", "evaluate", "--weights", seeded_bundle, "--data", class_folders, "--json")
    assert process.returncode == 0, process.stderr
    evaluated = json.loads(process.stdout)["clips"]
    assert sorted(evaluated) == sorted(recorded["test_clips"])
    from training.datasets import dataset_relative, load_dataset

    seed3 = load_dataset(class_folders, seed=3)  # the split `train fit --seed 3` trained on
    assert not {dataset_relative(c.path, class_folders) for c in seed3.train} & set(evaluated)
    process = run_command("train", "evaluate", "--weights", seeded_bundle, "--data", class_folders, "--json",
                          "--seed", 0)
    assert process.returncode == 0, process.stderr
    resplit = json.loads(process.stdout)["clips"]
    assert sorted(resplit) != sorted(evaluated)  # seed 0 holds out other clips: the old behaviour


def test_bundle_records_the_training_clips_frame_rate(seeded_bundle):
    # The three clips run at 28, 30 and 29.97 fps: the median is recorded, and live samples at it.
    assert json.loads((seeded_bundle / "manifest.json").read_text())["frame_rate"] == pytest.approx(29.97, abs=0.01)


def test_video_identity_sees_every_byte_of_a_small_file(tmp_path):
    from training.features import video_identity

    data = bytearray(CLIPS.joinpath("pool_cleaning.mp4").read_bytes())  # 1.3 MiB
    assert (1 << 20) < len(data) < (2 << 20)
    original = tmp_path / "a.mp4"
    original.write_bytes(data)
    data[(1 << 20) + 1000] ^= 0xFF  # past the first MiB and before the last one: in neither
    changed = tmp_path / "b.mp4"
    changed.write_bytes(data)
    assert video_identity(original) != video_identity(changed)


def test_cached_clips_obey_min_frames(class_folders, tmp_path, cache_dir):
    """A clip too short to train on is skipped on the second run too, when it comes from the cache."""
    data = tmp_path / "data"
    shutil.copytree(class_folders, data)
    short = data / "arm_wrestling" / "short.avi"
    from conftest import write_clip
    import cv2

    capture = cv2.VideoCapture(str(CLIPS / "arm_wrestling.mp4"))
    write_clip(short, [capture.read()[1] for _ in range(3)], fps=28)
    reports = []
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        process = run_command("train", "fit", "--data", data, "--out", out, *LITE0, "--epochs", 2, "--model", "gru",
                              "--no-refit", "--quiet")
        assert process.returncode == 0, process.stderr
        reports.append(json.loads((out / "report.json").read_text()))
    for report in reports:
        assert [s["video"] for s in report["skipped"]] == [str(short)]
        assert "too short" in report["skipped"][0]["reason"]


def test_fingerprint_covers_the_preprocessing_layer(cache_dir):
    """Features depend on the Rescaling inside the backbone: changing it changes the fingerprint,
    and so the feature-cache key and the bundle check."""
    import live  # noqa: F401
    from live.backbones import fingerprint, load_backbone_model
    from live.quiet import keras

    model = load_backbone_model("efficientnet_lite0")
    before = fingerprint(model)
    layer = next(l for l in model._flatten_layers() if isinstance(l, keras.layers.Rescaling))
    layer.scale = layer.scale * 2
    assert fingerprint(model) != before


def private_cache(seeded_bundle, cache_dir, tmp_path):
    """A cache folder of this test's own, holding the features seeded_bundle's fit made of the
    class folders (entries are named by content, so they can be brought in by copying, as
    README's "The feature cache" says)."""
    [made] = [folder for folder in (cache_dir / "features").glob("efficientnet_lite0-*-rate29.97-pts")]
    cache = tmp_path / "cache"
    shutil.copytree(made, cache / made.name)
    return cache


def lite0_fit_config(data, out, cache, epochs=1):
    from training.config import DatasetConfig, FeatureConfig, FitConfig

    return FitConfig(out=str(out), dataset=DatasetConfig(str(data) if data else None), epochs=epochs, progress=False,
                     model_kind="gru", refit=False, features=FeatureConfig("efficientnet_lite0", cache_root=str(cache)))


def test_fit_uses_the_cache_index_and_trains_from_it_alone(seeded_bundle, class_folders, tmp_path, cache_dir):
    """After `train extract`, fit opens no clip (each is replaced by garbage of the same size and
    time, and Python's opens are counted: none); `train fit --cache` with the clips gone trains
    on the same split to the same metrics; a clip whose file changed is extracted again, alone;
    a damaged entry is an error that says so."""
    import os
    import sys
    from dataclasses import replace

    from conftest import write_clip
    from live.errors import UserError
    from training.config import DatasetConfig, ExtractConfig, FeatureConfig
    from training.datasets import load_dataset
    from training.extract import extract
    from training.features import CacheIndex, clip_key
    from training.fit import cached_features, fit, record_dataset

    data, cache = tmp_path / "data", private_cache(seeded_bundle, cache_dir, tmp_path)
    shutil.copytree(class_folders, data)
    extract(ExtractConfig(DatasetConfig(str(data)), FeatureConfig("efficientnet_lite0", cache_root=str(cache)),
                          progress=False))
    clips = sorted(data.glob("*/*.avi"))
    records = CacheIndex(cache).records
    assert all(records[clip_key(c)]["frames"] and records[clip_key(c)]["label"] == c.parent.name for c in clips)

    originals = {clip: (clip.read_bytes(), clip.stat()) for clip in clips}

    def put_back(contents):  # with the recorded size and modification time
        for clip, (content, stat) in originals.items():
            clip.write_bytes(contents(content))
            os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    put_back(lambda content: b"\0" * len(content))  # content no decoder could read
    opened, watching = [], [True]  # an audit hook stays for the worker's life: it only counts during this test
    sys.addaudithook(lambda event, args: watching and event == "open" and str(args[0]).startswith(str(data))
                     and opened.append(args[0]))
    report = fit(lite0_fit_config(data, tmp_path / "b1", cache))
    assert opened == [] and report["skipped"] == [] and report["timings"]["frames_extracted"] == 0

    data.rename(tmp_path / "moved")
    process = run_command("train", "fit", "--cache", cache, "--out", tmp_path / "b2", *LITE0, "--epochs", 1,
                          "--model", "gru", "--no-refit", "--quiet")
    assert process.returncode == 0, process.stderr
    manifests = [json.loads((tmp_path / b / "manifest.json").read_text()) for b in ("b1", "b2")]
    assert manifests[0]["split"] == manifests[1]["split"] and manifests[0]["frame_rate"] == manifests[1]["frame_rate"]
    reports = [json.loads((tmp_path / b / "report.json").read_text()) for b in ("b1", "b2")]
    for part in ("dataset", "test", "history"):
        assert reports[0][part] == reports[1][part], part

    (tmp_path / "moved").rename(data)
    put_back(lambda content: content)
    changed = clips[0]
    capture = cv2_capture(CLIPS / "arm_wrestling.mp4")
    write_clip(changed, [capture.read()[1] for _ in range(30)], fps=28)
    index, dataset = CacheIndex(cache), load_dataset(data)
    features = FeatureConfig("efficientnet_lite0", frame_rate=manifests[0]["frame_rate"], cache_root=str(cache))
    opened.clear()
    entries, skipped, _, timing = cached_features(dataset.train + dataset.test, features, index, 5, False,
                                                  from_index_only=False)
    assert set(opened) == {str(changed)} and not skipped  # the others: unchanged size and time, not read
    assert timing["frames"] == 30 and len(entries[str(changed)]) == 30
    assert index.records[clip_key(changed)]["key"] != records[clip_key(changed)]["key"]
    watching.clear()
    index.save()

    other_rate = FeatureConfig("efficientnet_lite0", frame_rate=7.0, cache_root=str(cache))
    with pytest.raises(UserError, match="holds no features of these clips for these options"):
        fit(replace(lite0_fit_config(None, tmp_path / "b4", cache), features=other_rate))
    touched = clips[2].stat()
    os.utime(clips[2], ns=(touched.st_atime_ns, touched.st_mtime_ns + 10**9))
    with pytest.raises(UserError, match="changed after their features were extracted; train with --data"):
        fit(lite0_fit_config(None, tmp_path / "b5", cache))
    os.utime(clips[2], ns=(touched.st_atime_ns, touched.st_mtime_ns))

    kept = index.records[clip_key(clips[1])]  # an entry the index points to, not the changed clip's old one
    entry = next(cache.glob(f"*/{kept['key']}.npy"))
    entry.write_bytes(entry.read_bytes()[:-100])  # truncated: the header promises more than is there
    with pytest.raises(UserError, match="damaged cache entry"):
        fit(lite0_fit_config(None, tmp_path / "b3", cache))
    assert not (tmp_path / "b3").exists()

    clips[3].unlink()  # a clip deleted: the next look at the dataset forgets it, and only it
    record_dataset(CacheIndex(cache), load_dataset(data), data)
    assert set(CacheIndex(cache).records) == {clip_key(c) for c in clips if c != clips[3]}
    assert not any((tmp_path / b).exists() for b in ("b4", "b5"))


def cv2_capture(path):
    import cv2

    return cv2.VideoCapture(str(path))


def test_ctrl_c_during_fit_leaves_cache_and_bundles_as_they_were(seeded_bundle, class_folders, tmp_path, cache_dir):
    import hashlib
    import signal
    import subprocess

    from conftest import as_a_background_job, wait_for  # SIGINT ignored, as a CI runner's jobs have it
    from training.features import CacheIndex

    cache = private_cache(seeded_bundle, cache_dir, tmp_path)
    out = tmp_path / "bundle"
    shutil.copytree(seeded_bundle, out)  # a bundle that --force would replace, had the fit finished

    def contents(folder):
        return {p.relative_to(folder): hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*")
                if p.is_file() and p.name != "index.jsonl"}

    before = contents(cache), contents(out)
    log = tmp_path / "fit.log"
    with open(log, "w") as output:
        process = subprocess.Popen(["train", "fit", "--data", str(class_folders), "--out", str(out), *LITE0, "--cache",
                                    str(cache), "--epochs", "500", "--force"], stdout=output, stderr=subprocess.STDOUT,
                                   preexec_fn=as_a_background_job)
        try:
            # Three epochs into a training: its progress bar has shown 3/500.
            assert wait_for(lambda: "3/500" in log.read_text() or process.poll() is not None, 120), log.read_text()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 130, log.read_text()
    assert "Traceback" not in log.read_text()
    assert (contents(cache), contents(out)) == before
    assert len(CacheIndex(cache).records) == 18  # written before training began, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
