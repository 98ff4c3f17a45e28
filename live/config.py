"""One run's configuration, built once from the command line (live/cli.py) or by a program, with
each default written here and nowhere else: the click options read their defaults from
RunConfig's fields, and build_sinks and Model.stream take what they need from it."""
from dataclasses import dataclass, fields

from live.smoothing import DEFAULT as DEFAULT_SMOOTHING


@dataclass(frozen=True)
class RunConfig:
    # Inputs
    files: tuple = ()               # paths or URLs
    cameras: tuple = ()             # camera indexes
    loop: bool = False              # replay files without end
    # The model
    weights: str | None = None      # a bundle folder or a shipped bundle's name [default: kinetics600]
    runtime: str | None = None
    backbone_weights: str | None = None
    # How results are made
    smooth: object = DEFAULT_SMOOTHING  # "ema:ALPHA" or N (live/smoothing.py)
    max_frames: int | None = None
    max_fps: float | None = None
    fast: bool = False              # with a window or --serve, files as fast as they go
    # Where it runs
    engine: str = "local"           # live/choices.py ENGINES
    address: str | None = None      # --engine ray: a cluster to join ("auto" or HOST:PORT)
    workers: int | None = None      # --engine ray: actors [default: one per CPU of the cluster]
    # Outputs
    display: bool | None = None     # None: a window when a screen exists
    output: str | None = None
    jsonl: str | None = None
    jsonl_probs: bool = False
    events: str | None = None
    event_min_duration: float = 1.0
    event_min_score: float = 0.5
    top_k: int = 3
    threshold: float = 0.0
    serve: str | None = None        # [HOST:]PORT
    serve_token: str | None = None

    @property
    def event_rule(self):
        return self.event_min_duration, self.event_min_score

    @property
    def stream_count(self):
        return len(self.files) + len(self.cameras)


DEFAULTS = RunConfig()


def default(name):
    """A field's default, for the command line's options."""
    assert name in {field.name for field in fields(RunConfig)}, name
    return getattr(DEFAULTS, name)
