"""`train`: the offline trainer's commands. Wiring only; the work is in the modules."""
import json
import signal
import sys
from pathlib import Path

import click

from live import __version__
from live.choices import FEATURE_RUNTIMES, RUNTIMES
from live.cli import Group, StopRequest, run_with_errors
from live.quiet import leave_out_unused_imports, quiet_native_libraries
from training.augment import SPEED_RANGE  # numpy only: no Keras import
from training.config import (DEFAULT_ENGINE, ENGINES, RECORD_COUNTDOWN_S,  # no Keras import
                             ExtractConfig, FeatureConfig, FitConfig)
from training.model import AUTO, CANDIDATES, DEFAULT_MODEL_KIND, MODEL_KINDS  # names only: no Keras import


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="train")
def main():
    """Train, evaluate and try the sequence models that `live` runs."""


def command():
    """The `train` command: main(), without the imports no command uses (live.quiet says which).
    (main() itself stays a plain click group, for click's test runner.)"""
    quiet_native_libraries()
    leave_out_unused_imports()
    main()


def _run(function, **options):
    """Run a command body as `live` runs its own: errors as one line, Ctrl-C as exit 130 (SIGTERM
    keeps its default, ending the process at once: what it writes takes its name only once whole).
    A body that checks a StopRequest of its own (record's loop) installs it after this one, which
    it replaces: the body then decides what a signal ends, and this guard never sees one."""
    stop = StopRequest(signals=(signal.SIGINT,))

    def guarded(**given):
        with stop.guard():
            return function(**given)
    sys.exit(run_with_errors(guarded, **options))


def _ignoring_result(function):
    """Library functions return data; as a command, success is exit code 0."""
    def command(**options):
        function(**options)
        return 0
    return command


def _run_configured(function, config_type, check, **options):
    """Build the command's config once from its options (a bad combination is an `error:` line
    too), check what it names with `check` (training.checks: before TensorFlow loads, which
    `function` imports), then run `function` on the config and what the check found."""
    def run(**given):
        config = config_type.from_options(**given)
        return function(config, check(config))
    _run(_ignoring_result(run), **options)


class BackboneChoice(click.Choice):
    """The names in live.backbones.BACKBONES, the one registry that dispatch and its errors read
    too. Read when an option is parsed or its help shown, not when `train` starts: the registry
    imports Keras (seconds), which `train demo-data` or `train --help` need not wait for."""

    def __init__(self):  # click.Choice.__init__ would copy the names now
        self.case_sensitive = True

    @property
    def choices(self):
        from live.backbones import BACKBONES

        return tuple(BACKBONES)


backbone_option = click.option("--backbone", type=BackboneChoice(), default=FeatureConfig.backbone,
                               show_default=True,
                               help="Frame backbone (movinet_a0_stream: streaming, Kinetics-600, sampled at 5 fps; "
                                    "inception_v3 and efficientnet_lite0: ImageNet image models).")
backbone_weights_option = click.option("--backbone-weights", metavar="FILE",
                                       help="A local file of weights for the backbone "
                                            "[default: its standard ones].")
runtime_option = click.option("--runtime", type=click.Choice(FEATURE_RUNTIMES),
                              help="How the backbone runs [default: litert; keras on other backends].")
cache_option = click.option("--cache", "cache_root", metavar="DIR",
                            help="Feature cache folder [default: $LIVE_CACHE_DIR/features, else ~/.cache/live/features].")


def _options(*decorators):
    """Several click options as one decorator, for options that commands share."""
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


frame_options = _options(
    click.option("--frame-step", type=click.IntRange(1), default=1, show_default=True),
    click.option("--frame-rate", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Sample frames by timestamp at frame-rate/frame-step per second [default: the "
                      "backbone's own rate (movinet_a0_stream: 5), else the training clips' median rate]."))
dataset_options = _options(
    click.option("--split", type=click.IntRange(1, 3), default=1, show_default=True, help="UCF101 split."),
    click.option("--classes", help="Comma-separated subset of classes."),
    click.option("--test-fraction", type=click.FloatRange(0, 1), default=0.25, show_default=True,
                 help="Held out for testing when the dataset has no test split."))
bundle_runtime_option = click.option(
    "--runtime", type=click.Choice(RUNTIMES),
    help="How the backbone runs [default: litert; keras on other backends]; openvino-int8 runs the "
         "bundle's int8 backbone.")


@main.command()
@click.option("--data", metavar="DIR",
              help="Dataset folder (layout detected) [default: the clips the feature cache's index records, "
                   "trained from the cache alone].")
@click.option("--out", required=True, metavar="DIR", help="Bundle folder to write, e.g. weights/NAME.")
@backbone_option
@backbone_weights_option
@runtime_option
@click.option("--seq-len", type=click.IntRange(2), default=20, show_default=True)
@frame_options
@click.option("--epochs", type=click.IntRange(1), default=60, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", "model_kind", type=click.Choice((AUTO, *MODEL_KINDS)), default=DEFAULT_MODEL_KIND,
              show_default=True,
              help=f"Sequence model: gru (a GRU over the frame-to-frame changes, beside the window's "
                   f"appearance and motion summaries), linear (a linear classifier of the window's mean "
                   f"and newest features; on a backbone whose features are its own class scores, such as "
                   f"movinet_a0_stream's Kinetics-600, of the scores of the classes the actions evoke most), "
                   f"motion (the summaries alone), reference (the Keras example's GRU(16) -> GRU(8)), or "
                   f"{AUTO}: compare {' then '.join(CANDIDATES)} by cross-validation over the training "
                   f"sessions (every window of the held-out clips; a tie goes to the simpler) and keep the "
                   f"better (the manifest records every candidate's score).")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help=f"Replay training clips at random speeds ({SPEED_RANGE[0]}x-{SPEED_RANGE[1]}x).")
@click.option("--refit/--no-refit", default=True, show_default=True,
              help="Once cross-validation has chosen the head, train it on every training clip; "
                   "--no-refit keeps a validation split and the head trained without it.")
@dataset_options
@click.option("--shuffle-frames", is_flag=True, help="Ablation: shuffle frames inside each training window.")
@cache_option
@click.option("--description", help="What this model is, for its manifest.")
@click.option("--force", is_flag=True, help="Replace an existing bundle.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--verbose", is_flag=True, help="Keras's line per epoch instead of one progress bar per training.")
def fit(quiet, **options):
    """Extract features, train a sequence model, evaluate it and write a bundle.

    \b
    The default backbone, movinet_a0_stream, was trained on video (Kinetics-600): it gives
    the best accuracy from a few clips a class (README, "Teach it your own actions")."""
    from training.checks import check_fit

    def run(config, checked):
        from training.fit import fit as fit_bundle

        return fit_bundle(config, checked)

    _run_configured(run, FitConfig, check_fit, progress=not quiet, **options)


@main.command()
@click.option("--data", required=True, metavar="DIR", help="Dataset folder (layout detected).")
@backbone_option
@backbone_weights_option
@runtime_option
@frame_options
@dataset_options
@click.option("--seed", type=int, default=0, show_default=True, help="For a held-out split (the same as fit's).")
@cache_option
@click.option("--engine", type=click.Choice(list(ENGINES)), default=DEFAULT_ENGINE, show_default=True,
              help="; ".join(f"{name}: {engine.help}" for name, engine in ENGINES.items()) + ".")
@click.option("--address", metavar="ADDR",
              help="Join a running Ray cluster ('auto', or HOST:PORT); without it a local Ray is started.")
@click.option("--workers", type=click.IntRange(1), metavar="N",
              help="Ray actors, one CPU each [default: 2 locally; the cluster's CPUs with --address].")
@click.option("--quiet", is_flag=True, help="No progress output.")
def extract(quiet, **options):
    """Fill the feature cache that fit, evaluate and predict read, here or on a Ray cluster. The
    cache must be on storage every worker sees (LIVE_CACHE_DIR or --cache)."""
    from training.checks import check_extract

    def run(config, dataset):
        from training.extract import extract as extract_features

        return extract_features(config, dataset)

    _run_configured(run, ExtractConfig, check_extract, progress=not quiet, **options)


def _load(weights, runtime, backbone_weights):
    from live.pipeline import load_classifier

    return load_classifier(weights, runtime, backbone_weights)


def _frame_path(classifier):
    """The frame path a bundle's features were made with, which names them in the cache."""
    from training.features import FramePath

    return FramePath.of_bundle(classifier.bundle.manifest, classifier.embedder.numerics)


def _clip_features(classifier, videos, progress):
    from training.features import FeatureCache, extract_features

    frame_path = _frame_path(classifier)
    return extract_features(videos, classifier.embedder, frame_path, FeatureCache(frame_path), progress=progress)


@main.command()
@click.option("--weights", required=True, metavar="DIR", help="Model bundle.")
@click.option("--data", required=True, metavar="DIR", help="Dataset folder; its test split is used.")
@backbone_weights_option
@bundle_runtime_option
@click.option("--split", type=click.IntRange(1, 3), default=None,
              help="UCF101 split [default: the one the model was trained with].")
@click.option("--seed", type=int, default=None,
              help="Make a new held-out split with this seed [default: the model's own test clips, "
                   "as its manifest records them].")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(**options):
    """Accuracy, per-class precision and recall, and the confusion matrix on a test split."""
    _run(_evaluate, **options)


def _evaluate(weights, data, backbone_weights, runtime, split, seed, as_json):
    from training.checks import check_evaluate

    dataset = check_evaluate(weights, data, backbone_weights, split, seed)  # before TensorFlow loads
    from training.datasets import dataset_relative
    from training.fit import evaluate_clips
    from training.report import metrics_text

    classifier = _load(weights, runtime, backbone_weights)
    labels = classifier.bundle.labels
    features, skipped, _ = _clip_features(classifier, [str(c.path) for c in dataset.test], not as_json)
    clips = [c for c in dataset.test if str(c.path) in features]
    metrics = evaluate_clips(classifier.head, clips, features, labels, classifier.bundle.seq_len)
    metrics["skipped"] = skipped
    metrics["clips"] = [dataset_relative(c.path, data) for c in clips]
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        click.echo(metrics_text(metrics["all_windows"], "mean over all windows"))
        click.echo(f"first window only: accuracy {metrics['first_window']['accuracy']:.1%}")
    return 0


@main.command()
@click.option("--weights", required=True, metavar="DIR", help="Model bundle.")
@click.argument("videos", nargs=-1, required=True)
@backbone_weights_option
@bundle_runtime_option
@click.option("--top-k", type=click.IntRange(1), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per clip.")
def predict(**options):
    """Top labels for each clip: for its first window, and for the mean over all its windows."""
    _run(_predict, **options)


def _predict(weights, videos, backbone_weights, runtime, top_k, as_json):
    import numpy as np

    from training.checks import check_predict

    check_predict(weights, videos, backbone_weights)  # before TensorFlow loads
    from training.features import sampled_frame_indices
    from training.windows import predict_clip, predict_every_window

    classifier = _load(weights, runtime, backbone_weights)
    labels, seq_len = classifier.bundle.labels, classifier.bundle.seq_len
    videos = list(dict.fromkeys(videos))  # a clip named twice is predicted once
    features, skipped, _ = _clip_features(classifier, videos, progress=False)
    for video in videos:
        if video in skipped:  # extraction has warned, once
            continue
        first, mean = predict_clip(classifier.head, features[video], seq_len)
        if as_json:
            # Every window live holds on this clip, keyed by the source frame that completes it,
            # so that a live run's record for that frame can be checked against it.
            every = predict_every_window(classifier.head, features[video], seq_len)
            ends = sampled_frame_indices(video, _frame_path(classifier), len(every))
            click.echo(json.dumps({"video": video, **{
                name: {"label": labels[int(np.argmax(p))], "probs": [float(v) for v in p]}
                for name, p in (("first_window", first), ("all_windows", mean))},
                "windows": [{"end_frame": end, "filled": min(i + 1, seq_len), "probs": [float(v) for v in p]}
                            for i, (end, p) in enumerate(zip(ends, every))]}))
        else:
            click.echo(Path(video).name)
            for name, probs in (("first window", first), ("all windows", mean)):
                top = np.argsort(probs)[::-1][:top_k]
                click.echo(f"  {name}: " + ", ".join(f"{labels[i]} {probs[i]:.1%}" for i in top))
    return 1 if skipped else 0


@main.command()
@click.option("--weights", required=True, metavar="DIR", help="Model bundle to add the int8 backbone to.")
@click.option("--data", required=True, metavar="DIR",
              help="Dataset: training clips calibrate, test clips check the drift.")
@backbone_weights_option
@click.option("--frames", type=click.IntRange(8), default=128, show_default=True, help="Calibration frames.")
@click.option("--min-cosine", type=click.FloatRange(0, 1), default=0.98, show_default=True,
              help="Refuse an int8 backbone whose features fall below this cosine similarity to fp32.")
@click.option("--split", type=click.IntRange(1, 3), default=1, show_default=True, help="UCF101 split.")
@click.option("--seed", type=int, default=0, show_default=True)
def quantize(**options):
    """Add an int8 backbone to a bundle, for `live --runtime openvino-int8` (about 2.5x faster
    with InceptionV3 on AVX2 CPUs), after checking its features against fp32."""
    from training.checks import check_quantize

    def run(weights, data, backbone_weights, split, seed, **rest):
        check_quantize(weights, data, backbone_weights, split, seed)  # before TensorFlow loads
        from training.quantize import quantize as quantize_bundle

        quantize_bundle(weights, data, backbone_weights, split=split, seed=seed, **rest)
        return 0

    _run(run, **options)


@main.command()
@click.option("--backbone", type=BackboneChoice(), default="movinet_a0_stream", show_default=True,
              help="A backbone with a classifier of its own.")
@click.option("--labels", required=True, metavar="FILE", help="Its class names, one a line, in output order.")
@click.option("--out", required=True, metavar="DIR", help="Bundle folder to write, e.g. weights/kinetics600.")
@backbone_weights_option
@click.option("--force", is_flag=True, help="Replace an existing bundle.")
def pretrained(**options):
    """Write a bundle that runs a backbone's own classifier (nothing trained): MoViNet-A0-Stream's
    Kinetics-600 actions."""
    from training.pretrained import make_pretrained_bundle

    _run(_ignoring_result(make_pretrained_bundle), **options)


@main.command()
@click.argument("data", required=False)
@click.option("--label", metavar="NAME", help="The action the clips show: its class folder, DATA/NAME.")
@click.option("--clips", type=click.IntRange(1), default=5, show_default=True, help="Clips to record.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True),
              help="Length of each clip [default: what one window of --backbone needs (--seq-len frames at "
                   "its frame rate, or at the source's), plus 1 s].")
@click.option("--countdown", type=click.FloatRange(0),
              help=f"Seconds to get ready before each clip [default: {RECORD_COUNTDOWN_S:g} from a camera or stream, "
                   "0 from a file].")
@click.option("--camera", type=int, metavar="INDEX", help="Record a webcam (0 is the first) [default: camera 0].")
@click.option("--file", metavar="PATH|URL", help="Record from a video file, or an http/rtsp stream, instead.")
@click.option("--session", metavar="NAME",
              help="Name the clips' group: a grouped split keeps one session's clips on one side "
                   "[default: the start time, YYYYMMDD-HHMMSS]. Give the same name to add to a session.")
@click.option("--backbone", type=BackboneChoice(), default=FeatureConfig.backbone, show_default=True,
              help="The backbone the clips will be fitted with: it sets the default --seconds.")
@click.option("--seq-len", type=click.IntRange(2), default=FitConfig.seq_len, show_default=True,
              help="Frames in the window `train fit --seq-len` will use: it sets the default --seconds.")
@click.option("--display/--no-display", "--window/--no-window", "display", default=None,
              help="Show the picture, the countdown and the progress in a window [default: when a screen "
                   "exists]; progress lines go to stderr either way.")
def record(**options):
    """Record labelled clips from a camera, file or stream into DATA/LABEL/, for `train fit --data DATA`.

    From a camera or stream each clip is preceded by a countdown; from a file the clips follow
    one another from its first frame. Each is named SESSION__N.mp4: the session is the
    clips' group, so a split never tests on a session it trained on. Record each action in a few
    sessions (other people, rooms, lighting) for a model that carries over to new ones.
    q or Esc in the window stops early, keeping every finished clip; so does Ctrl-C (exit code
    130). A clip is written under a temporary name and renamed once complete, so an unfinished
    clip never stays, and a clip already there is never replaced.
    """
    from training.record import record as record_clips

    _run(lambda **given: record_clips(**given, stop=StopRequest()), **options)


@main.command("demo-data")
@click.argument("clips", nargs=-1, required=True)
@click.option("--to", required=True, metavar="DIR", help="Folder to write <class>/<clip>__partN.avi into.")
@click.option("--segments", type=click.IntRange(2), default=6, show_default=True, help="Segments per clip.")
def demo_data(**options):
    """Cut long clips into segments, one class per clip, for a demonstration dataset."""
    from training.demo_data import make_demo_data

    _run(_ignoring_result(make_demo_data), **options)


@main.command()
@click.argument("name")
@click.option("--to", required=True, metavar="DIR", help="Folder to download and unpack into.")
@click.option("--url", help="Another address for the archive (a mirror, or file://).")
def download(**options):
    """Fetch a dataset (ucf101-top5: the reference's data), resuming, then unpack it."""
    from training.download import download as fetch

    _run(_ignoring_result(fetch), **options)
