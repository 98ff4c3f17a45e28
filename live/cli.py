"""`live`: the entry point. Wiring only: parse options, open the source, the classifier and
the outputs, run the pipeline, print the summary. Exit codes: 0 done (also after SIGTERM),
1 the source failed part-way, 2 bad input or setup, 130 stopped with Ctrl-C."""
import contextlib
import json
import os
import signal
import sys

import click

from live import __version__
from live.choices import ENGINES, RUNTIMES
from live.errors import UserError, first_line
from live.quiet import leave_out_unused_imports, quiet_native_libraries
from live.config import RunConfig, default
from live.smoothing import Smoothing

EXIT_INTERRUPTED = 130


class Terminated(BaseException):
    """SIGTERM before the frame loop started: stop now, with the exit code of a SIGTERM mid-run.

    A BaseException, as KeyboardInterrupt is, so that code catching Exception lets it through.
    As an Exception it was, by all signs, caught inside TensorFlow's LiteRT conversion, which
    then failed with an AttributeError of its own (one CI run: exit 3 and "unexpected
    AttributeError" instead of a stop); make_head's fallback for a model LiteRT can't convert
    would have caught it too, and carried on loading."""


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the frame loop checks, so outputs close cleanly.
    Before the loop runs (loading a model, converting it, opening a stream) there is nothing
    to close, so the signal stops the set-up at once instead of after it. A second Ctrl-C
    falls back to the default behaviour, for a hard stop."""

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signal = None
        self.in_loop = False
        self.callbacks = []  # called on the signal: a live source waiting for frames must wake up
        # Installed whatever the process inherited: started as a background job of a script (a CI
        # runner's), SIGINT comes ignored, and Python then installs no handler of its own, so
        # Ctrl-C or `kill -INT` did nothing at all (one CI run: `train fit` trained on past it).
        for signum in signals:
            signal.signal(signum, self._handle)

    def _handle(self, signum, _frame):
        self.signal = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for callback in self.callbacks:
            callback()
        if not self.in_loop:  # caches are written atomically, so unwinding leaves none half-done
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated

    def __bool__(self):
        return self.signal is not None

    @contextlib.contextmanager
    def guard(self):
        """Around work a signal stops at once (set-up; a whole `train` command). The signal's
        exception is raised wherever Python happens to be, and inside C code that calls back into
        Python it can come out as another error of that code's: one CI run stopped during the LiteRT
        conversion got "SystemError: bad argument to internal function" and exit 3 instead of 130.
        Once a signal has come, any error is the stop it asked for."""
        try:
            yield
        except Exception as exc:
            if self.signal is None:
                raise
            raise (KeyboardInterrupt() if self.signal == signal.SIGINT else Terminated()) from exc


def run_with_errors(function, *args, **kwargs):
    """Run a command body; turn every failure into one `error: …` line and an exit code."""
    try:
        return function(*args, **kwargs)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        return EXIT_INTERRUPTED
    except Terminated:
        click.echo("stopped", err=True)
        return 0
    except Exception as exc:  # a bug or an unforeseen fault: still one line, not a traceback
        if os.environ.get("LIVE_DEBUG"):
            raise
        click.echo(f"error: unexpected {type(exc).__name__}: {first_line(exc, limit=1000)} "
                   "(rerun with LIVE_DEBUG=1 for details)", err=True)
        return 3


class OneLineUsageErrors:
    """A click command whose usage errors (an unknown option, a value not among the choices, a
    missing argument) are one `error: …` line with exit code 2, as every other mistake is,
    instead of click's usage line, hint line and `Error:` line."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        if not standalone_mode:  # click's test runner and embedding callers get click's own behaviour
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            returned = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `train` alone: the help, not an error
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            context = getattr(exc, "ctx", None)
            hint = f" (see '{context.command_path} --help')" if context else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("stopped", err=True)
            sys.exit(EXIT_INTERRUPTED)
        # --help and --version end here with their exit code; a command body exits by itself.
        sys.exit(returned if isinstance(returned, int) else 0)


class SmoothingType(click.ParamType):
    name = "smoothing"

    def convert(self, value, param, ctx):
        try:
            return Smoothing.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Command(OneLineUsageErrors, click.Command):
    pass


class Group(OneLineUsageErrors, click.Group):
    pass


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=lambda c, _, v: v and show_version(c),
              help="Show the version, and each model the shipped bundles need and where it was found.")
@click.option("--camera", "cameras", type=int, multiple=True, metavar="INDEX",
              help="Read a webcam (0 is the first). Repeat for several.")
@click.option("--file", "files", multiple=True, metavar="PATH|URL",
              help="Read a video file, or an http/rtsp stream. Repeat for several: they run side by side, "
                   "in one grid window.")
@click.option("--weights", metavar="DIR",
              help="Model bundle folder [default: the shipped weights/kinetics600, Kinetics-600 actions].")
@click.option("--runtime", type=click.Choice(RUNTIMES),
              help="How the backbone runs [default: litert; keras on backends other than TensorFlow]; "
                   "openvino-int8 runs the bundle's int8 backbone (see `train quantize`).")
@click.option("--backbone-weights", metavar="FILE",
              help="A local file of weights for the bundle's backbone [default: the bundle's own, or the "
                   "backbone's standard ones].")
@click.option("--engine", type=click.Choice(ENGINES), default=default("engine"), show_default=True,
              help="Where the streams are classified: in this process, or spread over Ray actors on this "
                   "machine or a cluster (docs/cluster.md); the outputs are written here either way.")
@click.option("--address", metavar="auto|HOST:PORT",
              help="--engine ray: join this Ray cluster ('auto': the one `ray start` made on this machine) "
                   "[default: start Ray here].")
@click.option("--workers", type=click.IntRange(1), metavar="N",
              help="--engine ray: Ray actors to spread the streams over, one CPU each [default: one per CPU "
                   "of the cluster].")
@click.option("--display/--no-display", default=default("display"), help="Show a window [default: when a screen exists].")
@click.option("--output", metavar="PATH",
              help="Write the annotated video (.mp4 or .avi; also .mov, .m4v, .mkv). With several streams, "
                   "one per stream: out.mp4 becomes out-1.mp4, out-2.mp4, … in stream order (files first, "
                   "then cameras).")
@click.option("--jsonl", metavar="PATH", help="Write one JSON object per frame; '-' for stdout.")
@click.option("--top-k", type=click.IntRange(1), default=default("top_k"), show_default=True, help="Labels listed on screen.")
@click.option("--smooth", type=SmoothingType(), default=default("smooth"), show_default=True, metavar="ema:ALPHA|N",
              help="What the shown label follows: an exponential moving average of the model's outputs that "
                   "weighs the newest by ALPHA (ema:1 is none), or the mean of the last N.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=default("threshold"), show_default=True,
              help="Below this score, show 'uncertain'.")
@click.option("--max-frames", type=click.IntRange(1), help="Stop after N frames (of each stream).")
@click.option("--loop", is_flag=True, help="Replay a file without end (kiosks, demos); Ctrl-C or --max-frames stops.")
@click.option("--max-fps", type=click.FloatRange(min=0, min_open=True),
              help="Take at most N frames a second (of each stream).")
@click.option("--events", metavar="PATH",
              help="Write one JSON object per label segment (stream, label, start, end, peak_score, frames); "
                   "'-' for stdout.")
@click.option("--event-min-duration", type=click.FloatRange(0), default=default("event_min_duration"), show_default=True,
              help="Seconds a label must hold the top to open or end a segment.")
@click.option("--event-min-score", type=click.FloatRange(0, 1), default=default("event_min_score"), show_default=True,
              help="Below this score no label counts as on top, for events.")
@click.option("--fast", is_flag=True,
              help="In a window or with --serve, classify a file as fast as the machine can instead of "
                   "playing it at its own pace (other headless runs always go as fast as they can).")
@click.option("--jsonl-probs", is_flag=True,
              help="Put every label's probability in each --jsonl record, not only the top 5 (3.5 KB "
                   "a record instead of 300 bytes with the default bundle's 600 labels).")
@click.option("--serve", metavar="[HOST:]PORT",
              help="Serve a web page of the live annotated picture, labels and events while running "
                   "(on 127.0.0.1 unless a host is given; 0 picks a free port). Off the loopback "
                   "(0.0.0.0 included) it asks for a token: see --serve-token.")
@click.option("--serve-token", metavar="TOKEN", envvar="LIVE_SERVE_TOKEN",
              help="The token --serve asks for off the loopback [default: $LIVE_SERVE_TOKEN, or one made "
                   "up and printed once at start].")
def main(**options):
    """Classify the action in a camera, file or stream, frame by frame, with an on-screen overlay.

    Ctrl-C stops cleanly with exit code 130; SIGTERM stops cleanly with exit code 0.
    """
    options["files"], options["cameras"] = tuple(options["files"]), tuple(options["cameras"])
    sys.exit(run_with_errors(run, RunConfig(**options)))


def show_version(context):
    """`live --version`: the version, then each third-party model a shipped bundle names in the
    model store (live/store.py), and where it was found, or where it would be downloaded from."""
    from live import store
    from live.backbones import SHIPPED_WEIGHTS
    from live.bundle import MANIFEST_FILE, stored_files

    click.echo(f"live, version {__version__}")
    folders = os.environ.get(store.MODELS_ENV) or "not set"
    click.echo(f"model store: {store.MODELS_ENV}={folders}; cache {store.cache_folder()}")
    for manifest_path in sorted(SHIPPED_WEIGHTS.glob(f"*/{MANIFEST_FILE}")):
        bundle = manifest_path.parent
        try:
            needs = stored_files(bundle, json.loads(manifest_path.read_text()))
        except (UserError, ValueError) as exc:
            click.echo(f"{bundle.name}: {exc}")
            continue
        click.echo(f"{bundle.name}: " + ("needs nothing from the model store" if not needs else "needs"))
        for stored in needs.values():
            click.echo(f"  {store.describe(stored)}")
    context.exit(0)


def command():
    """The `live` command: main(), then out at once. Every output is closed and flushed by
    then; what is left is the interpreter's teardown of TensorFlow and its threads, which took
    5 s on the CI machine, so that Ctrl-C, SIGTERM (a service manager's stop) or the end of a
    file would otherwise leave the process hanging on after its work is done. (main() itself
    stays a plain click command, for click's test runner.)"""
    quiet_native_libraries()
    leave_out_unused_imports()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed
            stream.flush()
    os._exit(code or 0)


def run(config):
    """A run of the `live` command: check what was typed, open the inputs, load the model (the
    Python API: one code path), stream through the sinks, print the summary; the exit code."""
    # None of these imports TensorFlow: it comes with load(), after every check below and after
    # the inputs have opened, so a mistake is reported in a fraction of a second.
    from live.api import load, unique_names
    from live.sinks import build_sinks

    address = checked(config)
    stop = StopRequest()
    names = unique_names([*config.files, *(str(camera) for camera in config.cameras)])
    sources, sinks, failures = [], [], []
    with contextlib.ExitStack() as stack:
        try:
            with stop.guard():
                if config.engine == "ray":  # the sources open on the actors, as the streams start
                    from live.cluster import open_cluster

                    model = stack.enter_context(open_cluster(config))
                    stop.callbacks.append(model.interrupt)
                    sources = model.open_sources(config)
                else:
                    for source in open_sources(config, stop):  # each kept as it opens: closed below if a later one fails
                        sources.append(source)
                    model = load(config.weights, config.runtime, config.backbone_weights)
                window = config.display is not False and not headless_because(config)
                sinks = build_sinks(config, window, address)
            stop.in_loop = True  # from here a signal is a flag: the loop ends and the sinks close
            failure = stream(model, config, sources, names, sinks, stop, failures,
                             realtime=bool(window or address) and not config.fast)
        finally:
            with contextlib.ExitStack() as closing:  # every source closes, even if one fails
                for source in sources:
                    closing.callback(source.close)
    report(model, sources, sinks)
    raise_failures(failure, failures, sources)
    return EXIT_INTERRUPTED if stop.signal == signal.SIGINT else 0


def checked(config):
    """Everything that can be checked before an input opens or TensorFlow loads; the --serve
    address, or None."""
    from live.checks import check_before_loading
    from live.display import screen_problem
    from live.sinks import parse_address

    if not config.stream_count:
        raise UserError("give an input: --camera INDEX or --file PATH_OR_URL (each may be repeated)")
    if config.engine != "ray" and (config.address or config.workers):
        raise UserError("--address and --workers are for --engine ray; add it, or leave them out")
    check_before_loading(config.weights, config.backbone_weights, config.output, config.jsonl, config.events,
                         config.files, config.stream_count, config.runtime)
    address = parse_address(config.serve) if config.serve else None
    if address:
        from live.web import check_address

        check_address(*address)
    if config.display and (problem := screen_problem(probe_window=False)):  # asked for explicitly
        raise UserError(f"--display: {problem}; run where a screen is, or without --display (headless)")
    return address


def headless_because(config):
    """Why no window is shown (said in a note), or None: the window is probed now, just before
    it is shown (live/display.py)."""
    from live.display import screen_problem

    problem = screen_problem()
    if problem and config.display:  # the screen went away while the model loaded
        raise UserError(f"--display: {problem}; run where a screen is, or without --display (headless)")
    if problem:
        click.echo(f"note: {problem}; running headless", err=True)
    return problem


def open_sources(config, stop):
    """Open each input in order (files, then cameras), each one interruptible by `stop`."""
    from live.sources import open_source

    for given in [{"file": file} for file in config.files] + [{"camera": camera} for camera in config.cameras]:
        source = open_source(**given, loop=config.loop, side_by_side=config.stream_count)
        stop.callbacks.append(source.interrupt)
        yield source


def stream(model, config, sources, names, sinks, stop, failures, realtime):
    """The Python API's own loop, the sinks doing the rest; a source that failed part-way is
    returned (what was done is kept), one that failed beside others is said at once."""
    def stream_failed(name, error):
        failures.append(error)
        if len(names) > 1:
            click.echo(f"warning: {error} (the other streams go on)", err=True)

    try:
        results = model.stream(sources, max_frames=config.max_frames, smooth=config.smooth, max_fps=config.max_fps,
                               names=names, on_failure=stream_failed, realtime=realtime, sinks=sinks,
                               every_picture=any(sink.needs_pictures for sink in sinks), event_rule=config.event_rule)
        for _ in results:
            if stop:
                break
        results.close()  # stop the streams and close the sinks now
    except UserError as exc:
        return exc
    return None


def report(model, sources, sinks):
    from live.outputs import summary_text
    from live.sinks import SummarySink, VideoSink

    summary = next(sink for sink in sinks if isinstance(sink, SummarySink))
    videos = next((sink.videos for sink in sinks if isinstance(sink, VideoSink)), {})
    click.echo(summary_text(summary.summaries, sources, videos, summary.elapsed or 0.0), err=True)
    manifest = model.manifest
    click.echo(f"model: {model.path} ({manifest['backbone']} features, "
               f"{manifest.get('model', 'sequence')} head)", err=True)


def raise_failures(failure, failures, sources):
    """Even after Ctrl-C or q, a stream that failed, or a file cut short, is not a clean run."""
    if failure:
        raise failure
    if failures:
        raise failures[0] if len(failures) == 1 else \
            UserError("; ".join(str(error) for error in failures), exit_code=1)
    truncated = [f"{source.name} stopped decoding after {early[0]} of {early[1]} frames"
                 for source in sources if (early := source.stopped_early())]
    if truncated:
        raise UserError(f"{'; '.join(truncated)}; the rest of the file is damaged or missing", exit_code=1)
