"""The trainer's options, each command's as one frozen object built once from its command line
(or in Python, by a test or a benchmark), and the extraction engines they choose from.

Nothing heavy is imported here: `train --help` and the checks made before TensorFlow loads
read these too.

- DatasetConfig: which clips, and which of them are held out for testing.
- FeatureConfig: what decides a clip's features, and so its feature-cache entry. `fit` and
  `extract` given the same options use the same entries.
- FitConfig and ExtractConfig: one of each of those, and the command's own options.
"""
import importlib
from dataclasses import dataclass, field, fields

from live.errors import UserError
from training.model import DEFAULT_MODEL_KIND


@dataclass(frozen=True)
class Engine:
    """An extraction engine: the function that runs it ("module:name", imported when chosen,
    so reading the registry loads neither Keras nor Ray) and a line of help for the CLI."""
    function: str
    help: str

    def load(self):
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)


# The one registry of engines: `train extract --engine` offers these (the first is its default),
# `extract` runs the one chosen, and an unknown name's error lists them.
ENGINES = {
    "local": Engine("training.extract:extract_locally", "this process"),
    "ray": Engine("training.extract:extract_on_ray",
                  "Ray actors, here or on a cluster (pip install 'live[distributed]')"),
}
DEFAULT_ENGINE = next(iter(ENGINES))

# `train record`'s seconds to get ready before each clip from a camera or a stream, where someone
# steps in front of it. From a file there is no one to wait for: its clips start at its first frame.
RECORD_COUNTDOWN_S = 3.0

# Clips with fewer sampled frames are skipped by `fit` and left out of the cache by `extract`:
# one rule, so that a clip `fit` would skip is never cached for it.
MIN_FRAMES = 5


@dataclass(frozen=True)
class DatasetConfig:
    data: str | None  # None: the clips the feature cache's index records (`fit` only)
    split: int = 1  # UCF101's split
    classes: str | None = None  # comma-separated subset
    test_fraction: float = 0.25  # held out when the dataset has no test split
    seed: int = 0  # for that held-out split (and, in `fit`, for training)

    def load(self):
        """The dataset these options select, its clips split into train and test."""
        from training.datasets import load_dataset

        return load_dataset(self.data, split=self.split, classes=self.classes, test_fraction=self.test_fraction,
                            seed=self.seed)


@dataclass(frozen=True)
class FeatureConfig:
    # The default of `fit`, `extract` and `record`: trained on video (Kinetics-600), it gives the best
    # accuracy from a few clips a class, and its file comes from the model store (LIVE_MODELS), so
    # it also works offline; inception_v3's ImageNet weights are a download from Keras.
    backbone: str = "movinet_a0_stream"
    backbone_weights: str | None = None  # a local file [default: the backbone's standard weights]
    runtime: str | None = None  # [default: litert; keras on other backends]
    frame_step: int = 1
    frame_rate: float | None = None  # None: the backbone's own rate, else the training clips' median
    cache_root: str | None = None  # [default: $LIVE_CACHE_DIR/features, else ~/.cache/live/features]


def _taking(config_type, options):
    """A `config_type` made of the entries of `options` that name its fields, which are
    removed from `options`."""
    return config_type(**{name: options.pop(name) for name in [f.name for f in fields(config_type)]
                          if name in options})


class _CommandConfig:
    @classmethod
    def from_options(cls, **options):
        """From a command's options, by name, as the command line gives them (data=..., backbone=...,
        epochs=...): the dataset's and the features' go to their own objects. An unknown name is
        a TypeError, as for a function."""
        return cls(dataset=_taking(DatasetConfig, options), features=_taking(FeatureConfig, options), **options)


@dataclass(frozen=True)
class FitConfig(_CommandConfig):
    out: str
    dataset: DatasetConfig
    features: FeatureConfig = field(default_factory=FeatureConfig)
    seq_len: int = 20
    epochs: int = 60
    model_kind: str = DEFAULT_MODEL_KIND
    batch_size: int = 64
    windows_per_clip: int = 24
    val_fraction: float = 0.2
    min_frames: int = MIN_FRAMES
    shuffle_frames: bool = False  # ablation: shuffle frames inside each training window
    augment: bool = True  # replay training clips at random speeds (training.augment)
    refit: bool = True  # train the chosen head again on training and validation clips (training.fit)
    description: str | None = None
    force: bool = False  # replace an existing bundle
    progress: bool = True
    verbose: bool = False  # Keras's line per epoch instead of one progress bar per training


@dataclass(frozen=True)
class ExtractConfig(_CommandConfig):
    dataset: DatasetConfig
    features: FeatureConfig = field(default_factory=FeatureConfig)
    engine: str = DEFAULT_ENGINE
    address: str | None = None  # a Ray cluster to join ('auto', or HOST:PORT)
    workers: int | None = None  # Ray actors [default: 2 locally; the cluster's CPUs with an address]
    progress: bool = True

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise UserError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.engine == "local" and (self.workers not in (None, 1) or self.address):
            raise UserError("--workers and --address are for --engine ray; the local engine is one process")
