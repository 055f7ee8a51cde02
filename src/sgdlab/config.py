"""One configuration for a training run: what the CLI builds, a sweep varies, a run folder records."""

import dataclasses
import json
import tomllib
from dataclasses import dataclass, fields

from .errors import ConfigError
from .layerspec import parse_layers
from .validation import check_number, check_whole_number

CHOICES = {
    "activation": ("relu", "sigmoid", "tanh"),
    "loss": ("softmax_cross_entropy", "mse", "sigmoid_cross_entropy"),
    "optimizer": ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"),
    "schedule": ("constant", "step", "exponential", "cosine", "plateau"),
    "sampling": ("shuffle", "replacement", "block-shuffle"),
    "gradient": ("backprop", "numerical"),
    "dtype": ("float32", "float64"),
    "monitor": ("val_loss", "val_acc", "train_loss", "train_acc"),
    "monitor_mode": ("auto", "min", "max"),
    "train_metrics": ("full", "running"),
}


@dataclass
class TrainConfig:
    """Every setting of a run.  ``validate()`` names any bad value and what is allowed."""

    dataset: str = "mnist"
    layers: tuple = (100,)  # hidden layers: sizes, or conv/pool items first (see sgdlab.layerspec)
    activation: str = "relu"
    loss: str = "softmax_cross_entropy"
    optimizer: str = "momentum"
    lr: float = 0.05
    momentum: float = 0.9  # for momentum and nesterov
    schedule: str = "constant"
    batch_size: int = 100
    epochs: int = 15
    iterations: int | None = None  # when set, train this many iterations instead of `epochs`
    sampling: str = "shuffle"
    weight_decay: float = 0.0
    dropout: float = 0.0  # drop rate of the Dropout after each hidden activation; 0 = no Dropout layers
    batch_norm: bool = False  # BatchNorm between each hidden Dense and its activation
    clip_norm: float | None = None
    patience: int | None = None  # early stopping: evaluations without improvement before stopping
    monitor: str = "val_loss"
    monitor_mode: str = "auto"  # min | max | auto (min for losses, max for accuracies)
    min_delta: float = 0.0
    restore_best: bool = True
    start_from_epoch: int = 0  # early stopping ignores evaluations before this epoch
    eval_every: int | None = None  # evaluate every N iterations instead of every epoch
    train_metrics: str = "full"  # full: the whole training set at each evaluation; running: the batches' since the last
    gradient: str = "backprop"
    dtype: str = "float32"
    seed: int = 0
    val_fraction: float = 0.1  # held out from train when the dataset has no validation split
    label_column: str | None = None  # CSV datasets: the label column's name
    threads: int | None = None  # BLAS threads; default all cores
    prefetch: bool = False  # gather the next batch on a background thread while this one trains
    checkpoint_every: int | None = None  # also checkpoint every N iterations (always at every epoch's end)

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} is unknown: choose one of {', '.join(allowed)}")
        self.layers = parse_layers(self.layers)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("momentum", self.momentum, low=0, high=1, high_open=True)
        check_whole_number("batch_size", self.batch_size, low=1)
        check_whole_number("epochs", self.epochs, low=1)
        check_whole_number("iterations", self.iterations, low=1, optional=True)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("clip_norm", self.clip_norm, low=0, low_open=True, optional=True)
        check_whole_number("patience", self.patience, low=1, optional=True)
        check_number("min_delta", self.min_delta, low=0)
        check_whole_number("start_from_epoch", self.start_from_epoch, low=0)
        check_number("dropout", self.dropout, low=0, high=1, high_open=True)
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm={self.batch_norm!r} is not allowed: use true or false")
        check_whole_number("eval_every", self.eval_every, low=1, optional=True)
        check_whole_number("seed", self.seed, low=0)
        check_number("val_fraction", self.val_fraction, low=0, high=1, low_open=True, high_open=True)
        check_whole_number("threads", self.threads, low=1, optional=True)
        check_whole_number("checkpoint_every", self.checkpoint_every, low=1, optional=True)
        if not isinstance(self.restore_best, bool):
            raise ConfigError(f"restore_best={self.restore_best!r} is not allowed: use true or false")
        if not isinstance(self.prefetch, bool):
            raise ConfigError(f"prefetch={self.prefetch!r} is not allowed: use true or false")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"dataset={self.dataset!r} is not allowed: give a dataset name or a path")
        return self

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d):
        """Build from a mapping, refusing unknown settings by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}: allowed are {', '.join(sorted(known))}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ConfigError(f"bad configuration: {exc}") from None

    @classmethod
    def from_toml(cls, path):
        """Read a TOML file of settings (top level, or under a [train] table)."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        return cls.from_dict(data.get("train", data))

    @classmethod
    def from_json(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def replace(self, **changes):
        """A validated copy with some settings changed (what a sweep does per trial)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})
