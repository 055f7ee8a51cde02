"""One configuration for a training run: what the CLI builds, a sweep varies, a run folder records."""

import dataclasses
import json
import tomllib
from dataclasses import dataclass, fields

from .batches import SAMPLING
from .errors import ConfigError
from .layers import ACTIVATIONS
from .layerspec import parse_layers
from .losses import LOSSES
from .optimizers import OPTIMIZERS, SCHEDULES
from .training import GRADIENTS, TRAIN_METRICS
from .validation import check_number, check_whole_number, setting_defaults

# Choice lists come from the registries (the CLI's --help too), so a new loss or optimizer shows up everywhere.
CHOICES = {
    "activation": tuple(ACTIVATIONS),
    "loss": tuple(LOSSES),
    "optimizer": tuple(OPTIMIZERS),
    "schedule": tuple(SCHEDULES),
    "sampling": ("auto", *SAMPLING),
    "gradient": GRADIENTS,
    "dtype": ("float32", "float64"),
    "monitor": ("val_loss", "val_acc", "train_loss", "train_acc"),
    "monitor_mode": ("auto", "min", "max"),
    "train_metrics": TRAIN_METRICS,
}

# The main job (MNIST 784-100-10, batch 100, momentum) was tuned at this lr; other optimizers default to their
# own conventional lr (Adam's 1e-3, ...) when none is given.
TUNED_LR = {"momentum": 0.05}
# config field -> the optimizer's / schedule's constructor setting it sets (None: that class's own default).
# Schedule settings whose names early stopping already uses carry a plateau_ prefix.
OPTIMIZER_FIELDS = {"momentum": "momentum", "beta1": "betas", "beta2": "betas", "eps": "eps", "alpha": "alpha"}
SCHEDULE_FIELDS = {"step_epochs": "step_epochs", "gamma": "gamma", "min_lr": "min_lr",
                   "warmup_iterations": "warmup_iterations", "plateau_factor": "factor",
                   "plateau_patience": "patience", "plateau_min_delta": "min_delta"}


@dataclass
class TrainConfig:
    """Every setting of a run.  ``validate()`` names any bad value and what is allowed."""

    dataset: str = "mnist"
    layers: tuple = (100,)  # hidden layers: sizes, or conv/pool items first (see sgdlab.layerspec)
    activation: str = "relu"
    loss: str = "softmax_cross_entropy"
    optimizer: str = "momentum"
    lr: float | None = None  # None: TUNED_LR, else the optimizer's own default (learning_rate() resolves it)
    momentum: float | None = None  # momentum, nesterov (default 0.9)
    beta1: float | None = None  # adam, adamw (default 0.9)
    beta2: float | None = None  # adam, adamw (default 0.999)
    eps: float | None = None  # adagrad, rmsprop, adam, adamw (default 1e-8)
    alpha: float | None = None  # rmsprop's squared-gradient decay (default 0.99)
    schedule: str = "constant"
    step_epochs: int | None = None  # step (default 10)
    gamma: float | None = None  # step (default 0.1), exponential (default 0.95)
    min_lr: float | None = None  # cosine, plateau (default 0)
    warmup_iterations: int | None = None  # cosine (default 0)
    plateau_factor: float | None = None  # plateau: lr *= factor on a plateau (default 0.1)
    plateau_patience: int | None = None  # plateau: evaluations without improvement first (default 3)
    plateau_min_delta: float | None = None  # plateau: smallest improvement (default 0)
    batch_size: int = 100
    epochs: int = 15
    iterations: int | None = None  # when set, train this many iterations instead of `epochs`
    sampling: str = "auto"  # auto: shuffle in memory, block-shuffle with prefetch for an on-disk store
    weight_decay: float = 0.0  # L2 penalty; AdamW: its decoupled decay instead
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
    train_metrics: str = "running"  # running: the batches' since the last evaluation; full: the whole training set
    gradient: str = "backprop"
    dtype: str = "float32"
    seed: int = 0
    val_fraction: float = 0.1  # held out from train when the dataset has no validation split
    label_column: str | None = None  # CSV datasets: the label column's name
    test_fraction: float = 0.1  # a file without a test split: held out for the test (stratified); 0 keeps all
    features: tuple | None = None  # table datasets: the feature columns by name (default: all but label and drop)
    drop: tuple | None = None  # table datasets: columns that are not features (ids ...)
    standardize: bool = False  # a Standardize layer first: (x - mean) / std of the training split
    impute: str | None = None  # "mean": fill missing cells with the training split's column means
    threads: int | None = None  # BLAS threads; default all cores
    prefetch: bool = False  # gather the next batch on a background thread while this one trains
    checkpoint_every: int | None = None  # also checkpoint every N iterations (always at every epoch's end)
    checkpoint_seconds: float | None = 60.0  # also checkpoint when this many seconds passed since the last one

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} is unknown: choose one of {', '.join(allowed)}")
        self.layers = parse_layers(self.layers)
        check_number("lr", self.lr, low=0, low_open=True, optional=True)
        self._check_settings("optimizer", OPTIMIZERS[self.optimizer], OPTIMIZER_FIELDS)
        self._check_settings("schedule", SCHEDULES[self.schedule], SCHEDULE_FIELDS)
        self.optimizer_settings()  # the optimizer checks its own ranges
        self.schedule_settings()
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
        check_number("test_fraction", self.test_fraction, low=0, high=1, high_open=True)
        self.features, self.drop = _parse_names("features", self.features), _parse_names("drop", self.drop)
        if not isinstance(self.standardize, bool):
            raise ConfigError(f"standardize={self.standardize!r} is not allowed: use true or false")
        if self.impute not in (None, "mean"):
            raise ConfigError(f"impute={self.impute!r} is unknown: use mean (or leave it unset to refuse missing "
                              "values)")
        check_number("checkpoint_seconds", self.checkpoint_seconds, low=0, low_open=True, optional=True)
        if not isinstance(self.restore_best, bool):
            raise ConfigError(f"restore_best={self.restore_best!r} is not allowed: use true or false")
        if not isinstance(self.prefetch, bool):
            raise ConfigError(f"prefetch={self.prefetch!r} is not allowed: use true or false")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"dataset={self.dataset!r} is not allowed: give a dataset name or a path")
        return self

    def _check_settings(self, kind, cls, fields_to_settings):
        """Refuse a setting the chosen optimizer or schedule does not have, naming the ones it has."""
        accepted = setting_defaults(cls)
        for field, setting in fields_to_settings.items():
            if getattr(self, field) is not None and setting not in accepted:
                users = [f for f, s in fields_to_settings.items() if s in accepted]
                raise ConfigError(f"{field}={getattr(self, field)!r} is not a setting of {kind} {cls.name!r}: "
                                  f"it takes {', '.join(users) if users else 'none'}")

    def learning_rate(self):
        """The lr to train with: ``lr`` if given, else TUNED_LR for the optimizer, else the optimizer's default."""
        if self.lr is not None:
            return float(self.lr)
        return TUNED_LR.get(self.optimizer, setting_defaults(OPTIMIZERS[self.optimizer])["lr"])

    def optimizer_settings(self):
        """The optimizer's keyword settings that were given (AdamW: weight_decay is its decoupled decay)."""
        from .optimizers import get_optimizer

        settings = {setting: getattr(self, field) for field, setting in OPTIMIZER_FIELDS.items()
                    if getattr(self, field) is not None and setting != "betas"}
        if self.beta1 is not None or self.beta2 is not None:
            beta1, beta2 = setting_defaults(OPTIMIZERS[self.optimizer])["betas"]
            settings["betas"] = (beta1 if self.beta1 is None else self.beta1,
                                 beta2 if self.beta2 is None else self.beta2)
        if "weight_decay" in setting_defaults(OPTIMIZERS[self.optimizer]) and self.optimizer == "adamw":
            settings["weight_decay"] = self.weight_decay
        get_optimizer(self.optimizer, self.learning_rate(), **settings)  # raises on a value out of range
        return settings

    def model_weight_decay(self):
        """The L2 penalty the model adds to the loss: weight_decay, except for AdamW (whose decay is decoupled)."""
        return 0.0 if self.optimizer == "adamw" else self.weight_decay

    def schedule_settings(self):
        """The schedule's keyword settings that were given (plateau: mode follows the monitored metric)."""
        from .optimizers import make_schedule

        settings = {setting: getattr(self, field) for field, setting in SCHEDULE_FIELDS.items()
                    if getattr(self, field) is not None}
        if "mode" in setting_defaults(SCHEDULES[self.schedule]):
            settings["mode"] = self.monitor_mode if self.monitor_mode != "auto" else \
                ("min" if self.monitor.endswith("loss") else "max")
        make_schedule(self.schedule, self.learning_rate(), **settings)  # raises on a value out of range
        return settings

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        for name in ("features", "drop"):
            d[name] = None if d[name] is None else list(d[name])
        return d

    @classmethod
    def from_dict(cls, d):
        """Build from a mapping, refusing unknown settings by name."""
        if not isinstance(d, dict):
            raise ConfigError(f"settings must be a table of NAME = VALUE, not {type(d).__name__} {str(d)[:40]}")
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
        if "train" in data and not isinstance(data["train"], dict):
            raise ConfigError(f"config file {str(path)!r} has train = {str(data['train'])[:40]}: write the settings at "
                              f"the top level or under one [train] table")
        return cls.from_dict(data.get("train", data))

    @classmethod
    def from_json(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def replace(self, **changes):
        """A validated copy with some settings changed (what a sweep does per trial)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def _parse_names(name, value):
    """'a,b' / ['a', 'b'] -> ('a', 'b'); None -> None: column names for --features / --drop (none: refused)."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        names = tuple(p.strip() for p in parts if p.strip())
    except (TypeError, AttributeError):
        raise ConfigError(f"{name}={value!r} is not allowed: give column names like a,b,c") from None
    if not names:
        raise ConfigError(f"{name}={value!r} names no column: give column names like a,b,c, or leave it out")
    return names
