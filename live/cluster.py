"""`live --engine ray`: one run's streams spread over Ray actors, on this machine or a cluster.

The driver (this process) starts Ray, or joins a cluster with `--address`, and starts
`--workers` actors (live/cluster_worker.py). Each loads the run's bundle once (its files are
sent from here; the third-party models it names come from each node's model store) and
runs the local pipeline on its share of the streams, so a stream's records are a local
run's. Streams are placed by measured cost: each actor times its own sample point, and a
stream costs its sample points a second. The driver runs the sinks: one JSONL, one events
file, one summary, one video per stream, one web page, as a local run does.

An actor that dies loses only what was in flight: its streams are reopened on the others, a
file from its start with the records already delivered skipped (the same records as if
nothing had happened), a live source from now (a gap in its records), with a `warning:` line.
Ctrl-C, SIGTERM and the end of the run stop every actor; actors are owned by this process,
so Ray ends them if it dies.
"""
import contextlib
import signal
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from live.choices import RAY_MISSING
from live.bundle import bundle_path, default_bundle_path, read_manifest
from live.cluster_worker import RunOptions, StreamSpec
from live.config import DEFAULTS
from live.errors import UserError, first_line
from live.sources import Frame, warn


def note(message):
    """A `note:` line on stderr: news, not a fault."""
    import sys

    print(f"note: {message}", file=sys.stderr, flush=True)

TAKE_WAIT_S = 0.2
BALANCE_EVERY_S = 5.0  # how often the driver looks for an actor that falls behind
ROOM = 0.8  # an actor takes a stream while its measured load stays under this share of its CPU


@contextlib.contextmanager
def ray_session(address=None, workers=None):
    """Ray, joined at `address` ("auto": the cluster `ray start` made on this machine) or
    started here with `workers` CPUs; shut down (this driver's part of it) on leaving."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    # Ray replaces the SIGTERM handler with one that exits at once (exit 15, outputs not closed);
    # the command's own handlers (live/cli.py StopRequest) are put back.
    if address:
        check_reachable(address)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(num_cpus=workers or 2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot start or join Ray at {address or 'a new local instance'}: "
                        f"{first_line(exc)}") from None
    finally:
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
    keep_stdout_ours(ray)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address, timeout_s=5.0):
    """A HOST:PORT that nothing answers on is said in a line now: Ray itself retries for minutes,
    printing its own warnings."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start one there "
                        "with `ray start --head`, or give its address as --address HOST:PORT") from None


def keep_stdout_ours(ray):
    """Ray's driver prints the cluster's error messages (a worker that died: ten lines of
    advice) on stdout, where `--jsonl -` writes its records; the run says what happened in its
    own `warning:` line instead. Ray looks its printer up by name for each message, so this
    replaces it for this process; its messages of other kinds still go to stderr."""
    worker_module = ray._private.worker
    printer = worker_module.print_to_stdstream
    if getattr(printer, "keeps_stdout", False):
        return

    def to_stderr_only(data, ignore_prefix):
        if data.get("pid") != "raylet":
            printer({**data, "is_err": True}, ignore_prefix)

    to_stderr_only.keeps_stdout = True
    worker_module.print_to_stdstream = to_stderr_only


def user_error_in(exc):
    """The `UserError` message inside a Ray exception, without Ray's traceback."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, UserError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {first_line(cause, limit=300)}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "UserError: " in line:
            return line.split("UserError: ", 1)[1]
    return lines[-1][:300] if lines else type(exc).__name__  # the error itself, after Ray's traceback


class RemoteSource:
    """The driver's view of a source opened on an actor: what the overlay, the summary and the
    sinks read of a source, as the actor last reported it."""

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.live, self.fps, self.size = False, 0.0, None
        self.frames_read = self.dropped = self.missed = 0
        self.early = None
        self.ended = False
        self.delivered = -1     # the last frame index handed to the sinks
        self.delivered_count = 0  # results handed to the sinks (a live source's frame indexes skip drops)
        self.run = 0            # times it moved (StreamSpec.run)
        self.missed_seen = 0    # `missed` when the actors' balance was last checked
        self.left = set()       # actors it was moved away from (never moved back to one)
        self.last_time, self.last_wall = 0.0, None  # its timestamp, and when it came
        self.last_probs = self.last_shown = None
        # A live source reopened elsewhere counts its frames and time from 0 again: its records
        # go on from where they were (the time in between is the gap).
        self.index_offset, self.time_offset = 0, 0.0

    def reopened(self):
        """Moved: opened again elsewhere, from where it was."""
        self.run += 1
        self.missed = self.missed_seen = 0
        if self.live:
            self.index_offset = self.delivered + 1
            self.time_offset = self.last_time + (time.time() - self.last_wall if self.last_wall else 0.0)

    def opened(self, info):
        self.live, self.fps, self.size = info["live"], info["fps"], info["size"]

    def update(self, figures):
        self.frames_read, self.dropped, self.missed = figures["frames_read"], figures["dropped"], figures["missed"]
        self.early = figures["stopped_early"]

    def points_per_second(self, manifest):
        """The sample points a second this stream asks of an actor: the bundle's sampling rate,
        or every `frame_step`-th frame of the source's rate."""
        fps = self.fps or 25.0
        return min(fps, manifest.get("frame_rate") or fps) / manifest["frame_step"]

    def stopped_early(self):
        return tuple(self.early) if self.early else None

    def interrupt(self):
        """Nothing here: the driver stops the actors."""

    def close(self):
        """Nothing here: the actor that reads it closes it."""


def specs_of(config):
    """Each input of a run as a StreamSpec, files then cameras, as a local run orders them."""
    from live.api import unique_names

    given = [{"file": file} for file in config.files] + [{"camera": camera} for camera in config.cameras]
    names = unique_names([*config.files, *(str(camera) for camera in config.cameras)])
    return [StreamSpec(name, **inputs) for name, inputs in zip(names, given)]


def place(costs, actors_ms, loads=None):
    """Which actor takes each stream: the one that would be least busy after taking it, by
    its measured milliseconds per sample point, the streams taken costliest first.
    `costs`: sample points a second, per stream; `loads`: milliseconds a second each actor
    has already. Returns an actor index per stream."""
    loads = list(loads or [0.0] * len(actors_ms))
    chosen = [0] * len(costs)
    for stream in sorted(range(len(costs)), key=lambda i: -costs[i]):
        best = min(range(len(actors_ms)), key=lambda a: (loads[a] + costs[stream] * actors_ms[a], a))
        loads[best] += costs[stream] * actors_ms[best]
        chosen[stream] = best
    return chosen


@dataclass
class ActorLoad:
    """What the driver knows of an actor when it checks the balance."""
    actor: object
    ms_per_point: float
    streams: list  # [(RemoteSource, its sample points a second, sample points it missed since the last check)]

    @property
    def busy_ms(self):  # milliseconds of work a second, by the measured cost
        return sum(points for _, points, _ in self.streams) * self.ms_per_point

    @property
    def missed(self):
        return sum(missed for _, _, missed in self.streams)


def stream_to_shed(loads, room=ROOM):
    """(from, stream, to, its sample points missed) to move, or None: the live stream that missed the most sample points
    on an actor that falls behind (missed some since the last check), to the actor with the
    most room that missed none, would stay under `room` of its CPU with it, and is not one the
    stream already left. One move per check: the next check sees its effect."""
    fine = sorted((load for load in loads if not load.missed), key=lambda load: load.busy_ms)
    for behind in sorted((load for load in loads if load.missed), key=lambda load: -load.missed):
        for source, points, missed in sorted(behind.streams, key=lambda stream: -stream[2]):
            if not source.live or not missed:
                continue
            for target in fine:
                if target.actor not in source.left and \
                        target.busy_ms + points * target.ms_per_point <= room * 1000:
                    return behind.actor, source, target.actor, missed
    return None


class ClusterModel:
    """The Ray engine behind the same calls the `live` command makes of a local Model:
    `stream(sources, …)` yields Results, and `manifest` and `path` describe the bundle."""

    def __init__(self, ray, weights=None, runtime=None, backbone_weights=None, workers=None):
        from live.cluster_worker import StreamWorker

        self.ray = ray
        self.path = bundle_path(weights) if weights else default_bundle_path()
        self.manifest, self.labels = read_manifest(self.path)
        files = {file.name: file.read_bytes() for file in Path(self.path).iterdir()
                 if file.is_file() and not file.name.startswith(".")}
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # One CPU per actor, and its threads to match: more would fight the other actors.
        worker = ray.remote(num_cpus=1, runtime_env={"env_vars": {"LIVE_CPUS": "1"}})(StreamWorker)
        self.start_actor = lambda: worker.remote(files, runtime, backbone_weights)
        self.actors = [self.start_actor() for _ in range(count)]
        self.ms = {}
        try:
            ray.get([actor.__ray_ready__.remote() for actor in self.actors])  # every one loaded
            for actor in self.actors:
                self.measure(actor)
        except ray.exceptions.RayError as exc:
            raise UserError(f"a Ray worker could not load the model: {user_error_in(exc)}") from None
        self.held = {actor: [] for actor in self.actors}  # actor: the RemoteSources it reads
        self.options = RunOptions()
        self.loop = False
        self.interrupted = False
        self.sinks = []
        self.balanced = time.monotonic()

    def interrupt(self):
        """Ctrl-C or SIGTERM: the results loop ends within a second, even with no result coming."""
        self.interrupted = True

    def measure(self, actor):
        """An actor's milliseconds per sample point, measured on it, one actor at a time."""
        self.ms[actor] = self.ray.get(actor.measure.remote())["ms_per_point"]

    @property
    def seq_len(self):
        return self.manifest["seq_len"]

    def open_sources(self, config):
        """The run's inputs, to be opened on the actors when the streams start."""
        self.loop = config.loop
        return [RemoteSource(spec) for spec in specs_of(config)]

    def stream(self, sources, max_frames=None, smooth=DEFAULTS.smooth, max_fps=None, names=None, on_failure=None,
               realtime=False, sinks=(), every_picture=True, event_rule=DEFAULTS.event_rule):
        """Model.stream's contract over the actors: yields each stream's Results in order and
        hands them to `sinks`; a failed stream goes to `on_failure` and the others go on."""
        from live.api import SinkRun
        from live.sinks import StreamInfo

        self.options = RunOptions(max_frames, max_fps, smooth, self.loop, realtime,
                                  any(sink.needs_pictures for sink in sinks))
        self.sinks = list(sinks)
        with contextlib.ExitStack() as closing:
            run = SinkRun(self.sinks, closing)
            closing.callback(self.stop)
            self.start_streams(sources, list(self.actors))
            run.open([StreamInfo(number, source.name, source.fps, source.size, source)
                      for number, source in enumerate(sources, start=1)], max_fps, event_rule)
            for result in self.results(sources, on_failure):
                wanted = run.handle(result)
                yield result
                if not wanted:
                    break

    def start_streams(self, sources, actors, loads=None):
        """Place `sources` over `actors` by cost and start them there, every actor at once (an
        actor already decoding its streams while the next opens its own slows the opening); a
        source that does not open fails the run, as it does locally."""
        costs = [source.points_per_second(self.manifest) for source in sources]
        chosen = place(costs, [self.ms[actor] for actor in actors], loads)
        started = []
        for index, actor in enumerate(actors):
            share = [source for source, at in zip(sources, chosen) if at == index]
            if not share:
                continue
            specs = [StreamSpec(s.spec.name, s.spec.file, s.spec.camera, -1 if s.live else s.delivered, s.run)
                     for s in share]
            options = replace(self.options, side_by_side=len(share))
            shown = [s.name for s in share if any(sink.wants_pictures(s.name) for sink in self.sinks)]
            started.append((actor, share, actor.start.remote(specs, options, shown)))
        lost = []
        for actor, share, opening in started:
            try:
                infos = self.ray.get(opening)
            except self.ray.exceptions.RayActorError as exc:  # it died too (a lost node takes several)
                lost.append((actor, share, exc))
                continue
            except self.ray.exceptions.RayTaskError as exc:
                raise UserError(user_error_in(exc)) from None
            for source, info in zip(share, infos):
                source.opened(info)
            self.held[actor] += share
        for actor, share, exc in lost:
            self.held.setdefault(actor, []).extend(share)
            self.move_streams_of(actor, exc)

    def results(self, sources, on_failure):
        """The Results of every stream, as the actors send them, until every stream has ended
        (or a stop); an actor that dies has its streams moved (`move_streams_of`)."""
        by_name = {source.name: source for source in sources}
        pending = {self.take(actor): actor for actor in self.actors}
        while not self.interrupted and not all(source.ended for source in sources):
            ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=1.0)
            for reference in ready:
                actor = pending.pop(reference)
                try:
                    sent_at, records, figures = self.ray.get(reference)
                except self.ray.exceptions.RayActorError as exc:
                    self.move_streams_of(actor, exc)
                    continue
                pending[self.take(actor)] = actor
                yield from self.unpack_all(records, figures, by_name, sent_at, on_failure)
            if time.monotonic() - self.balanced >= BALANCE_EVERY_S:
                self.balance()
            asking = set(pending.values())
            for actor in self.actors:  # one started for a move: nothing asked of it yet
                if actor not in asking:
                    pending[self.take(actor)] = actor

    def take(self, actor):
        """Ask `actor` for its next records, and for pictures of the streams a sink shows now:
        pictures cross the network only while something looks at them."""
        shown = [source.name for source in self.held.get(actor, [])
                 if any(sink.wants_pictures(source.name) for sink in self.sinks)]
        return actor.take.remote(TAKE_WAIT_S, shown)

    def unpack_all(self, records, figures, by_name, sent_at, on_failure):
        lag_ms = max(0.0, time.time() - sent_at) * 1000
        limit = self.options.max_frames
        for name, (run, latest) in figures.items():  # the sources' counts, for the overlay and summary
            if name in by_name and run == by_name[name].run and not by_name[name].ended:
                by_name[name].update(latest)
        for kind, name, run, detail in records:
            source = by_name[name]
            # (a moved live source's --max-frames counts here, not on its new actor; a moved
            # stream's records from before the move say nothing now)
            if source.ended or run != source.run:
                continue
            if kind == "result":
                if detail["index"] + source.index_offset > source.delivered:  # a moved file replays up to here
                    yield self.unpack(source, detail, lag_ms)
                    source.delivered_count += 1
                    source.ended = bool(limit) and source.delivered_count >= limit
            elif kind == "failed" and on_failure:
                on_failure(name, UserError(detail, exit_code=1))
            elif kind == "ended":
                source.update(detail)
                source.ended = True

    def unpack(self, source, record, lag_ms):
        from live.pipeline import Result

        if record["probs"] is not None:
            source.last_probs, source.last_shown = record["probs"], record["shown"]
        picture = None
        if record["picture"] is not None:
            import cv2

            picture = cv2.imdecode(np.frombuffer(record["picture"], np.uint8), cv2.IMREAD_COLOR)
        timings = record["timings"]
        timings["latency_ms"] += lag_ms  # from the frame's read to the driver, the trip included
        read_at = time.perf_counter() - timings["latency_ms"] / 1000
        frame = Frame(record["index"] + source.index_offset, record["timestamp"] + source.time_offset, picture,
                      read_at, record["read_ms"], record["sampled"])
        source.delivered, source.last_time, source.last_wall = frame.index, frame.timestamp, time.time()
        return Result(frame, self.labels, self.seq_len, record["filled"], source.last_probs, record["sampled"],
                      timings, source.name, source.last_shown)

    def balance(self):
        """Move one live stream off an actor that falls behind, to one with room (stream_to_shed)."""
        self.balanced = time.monotonic()
        loads = []
        for actor in self.actors:
            streams = [(source, source.points_per_second(self.manifest), source.missed - source.missed_seen)
                       for source in self.held[actor] if not source.ended]
            for source in self.held[actor]:
                source.missed_seen = source.missed
            loads.append(ActorLoad(actor, self.ms[actor], streams))
        move = stream_to_shed(loads)
        if move is None:
            return
        behind, source, target, missed = move
        try:
            self.ray.get(behind.drop.remote(source.name))
        except self.ray.exceptions.RayActorError:
            return  # it died: its next take says so, and all its streams move then
        note(f"{source.name} moves to another ray worker: {missed} of its sample points were missed in the last "
             f"{BALANCE_EVERY_S:.0f} s where it was")
        self.held[behind].remove(source)
        source.left.add(behind)
        source.reopened()
        self.start_streams([source], [target])

    def move_streams_of(self, actor, exc):
        """An actor died: its streams that had not ended go to the actors left (or to a new one
        when none is left), placed by cost."""
        if actor not in self.actors:  # already moved from (its start and its take both failed)
            return
        moving = [source for source in self.held.pop(actor, []) if not source.ended]
        self.actors.remove(actor)
        if not self.actors:
            self.actors.append(self.start_actor())
            self.measure(self.actors[0])
            self.held[self.actors[0]] = []
        if not moving:
            return
        warn(f"a ray worker died ({first_line(str(exc), limit=120)}); its {len(moving)} stream(s) move to "
             f"the {len(self.actors)} left: " + ", ".join(source.name for source in moving))
        for source in moving:
            source.reopened()
        loads = [sum(s.points_per_second(self.manifest) for s in self.held[a]) * self.ms[a] for a in self.actors]
        self.start_streams(moving, list(self.actors), loads)

    def stop(self):
        """Every actor stops its streams and ends: on Ctrl-C, SIGTERM, the end, an error."""
        stopping = [actor.stop.remote() for actor in self.actors]  # all at once: each may wait on its sources
        with contextlib.suppress(Exception):
            self.ray.wait(stopping, num_returns=len(stopping), timeout=15)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        self.actors = []


@contextlib.contextmanager
def open_cluster(config):
    """The ClusterModel of a `live --engine ray` run, its actors stopped and Ray left on exit."""
    if not config.address:  # a Ray of this machine's: a file that is not here fails now, not on an actor
        from live.sources import FileSource, is_url

        for file in config.files:
            if not is_url(file):
                FileSource(file).close()
    with ray_session(config.address, config.workers if not config.address else None) as ray:
        model = ClusterModel(ray, config.weights, config.runtime, config.backbone_weights, config.workers)
        try:
            yield model
        finally:
            model.stop()
