"""A sweep's search space: which TrainConfig fields vary, over which values, and each trial's stable id."""

import dataclasses
import hashlib
import itertools
import json
import math
import typing

import numpy as np

from ..config import TrainConfig
from ..errors import ConfigError
from ..validation import check_whole_number

EXCLUDED_FROM_ID = ("threads", "prefetch", "checkpoint_every")  # settings that change speed, not results
MAX_TRIALS = 10_000                 # a bound checked before any list of trials is built



@dataclasses.dataclass(frozen=True)
class Dimension:
    """One swept setting: explicit ``values``, or a range low..high drawn uniformly or log-uniformly."""

    name: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def is_range(self):
        return self.low is not None

    def grid(self, n):
        """n evenly (log-)spaced values including both ends."""
        if not self.is_range:
            return self.values
        points = np.geomspace(self.low, self.high, n) if self.log else np.linspace(self.low, self.high, n)
        return _dedupe(_cast(self.name, p) for p in points)

    def draw(self, rng):
        """One value: uniform on [low, high], log-uniform (uniform in log) with ``log``, or one of ``values``."""
        if not self.is_range:
            return self.values[rng.integers(len(self.values))]
        if self.log:
            return _cast(self.name, math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return _cast(self.name, rng.uniform(self.low, self.high))


def _field_types():
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            for f in dataclasses.fields(TrainConfig)}


def _cast(name, value):
    """A drawn number as the field's type: ints rounded, floats to 4 significant digits (readable, stable ids)."""
    kind = _field_types()[name]
    if kind is int:
        return int(round(value))
    return float(f"{value:.4g}")


def _dedupe(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return tuple(out)


def _parse_scalar(name, text):
    kind = _field_types()[name]
    text = text.strip()
    if text.lower() in ("none", "null") and name in _optional_fields():
        return None
    try:
        if kind is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        what = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
        raise ConfigError(f"{name}={text!r} is not allowed: give {what}, a list a,b,c or a range LOW:HIGH[:log]") \
            from None
    return text


def _optional_fields():
    hints = typing.get_type_hints(TrainConfig)
    return {n for n, h in hints.items() if type(None) in typing.get_args(h)}


def parse_values(name, text):
    """'0.1' -> 0.1; 'a,b,c' -> Dimension(values); 'LOW:HIGH' (uniform) or 'LOW:HIGH:log' -> range Dimension.

    Alternatives of a list setting (``layers``, ``features``, ``drop``) are separated by '/' because one
    value is itself a list: '256,128'.
    """
    kinds = _field_types()
    if name not in kinds:
        raise ConfigError(f"unknown setting {name!r}: allowed are {', '.join(sorted(kinds))}")
    text = str(text)
    if kinds[name] is tuple:
        options = text.split("/")
        return options[0] if len(options) == 1 else Dimension(name, values=tuple(options))
    if ":" in text and kinds[name] in (int, float):
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "lin", "linear")):
            raise ConfigError(f"{name}={text!r} is not a range: write LOW:HIGH or LOW:HIGH:log")
        low, high = (float(_parse_scalar(name, p)) for p in parts[:2])
        log = len(parts) == 3 and parts[2] == "log"
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ConfigError(f"{name}={text!r} is not a range: LOW and HIGH must be finite numbers")
        if not low < high:
            raise ConfigError(f"{name}={text!r} is not a range: LOW must be below HIGH")
        if log and low <= 0:
            raise ConfigError(f"{name}={text!r} is not allowed: a log range needs LOW > 0")
        return Dimension(name, low=low, high=high, log=log)
    values = _dedupe(_parse_scalar(name, p) for p in text.split(","))
    return values[0] if len(values) == 1 else Dimension(name, values=values)


@dataclasses.dataclass
class SearchSpace:
    """Swept dimensions and how to visit them.

    ``grid``: every range becomes ``trials`` evenly (log-)spaced values; the
    trials are the cartesian product of all dimensions.  Otherwise, with any
    range, ``trials`` seeded draws (lists drawn uniformly); with lists only,
    their cartesian product.
    """

    dimensions: list
    trials: int = 8
    grid: bool = False
    seed: int = 0

    def points(self):
        """The list of {name: value} the sweep runs, in a fixed order."""
        if not self.dimensions:
            return [{}]
        names = [d.name for d in self.dimensions]
        if self.grid or not any(d.is_range for d in self.dimensions):
            return [dict(zip(names, combo)) for combo in
                    itertools.product(*(d.grid(self.trials) for d in self.dimensions))]
        rng = np.random.default_rng(self.seed)
        points, seen = [], set()
        for _ in range(self.trials):
            point = {d.name: d.draw(rng) for d in self.dimensions}
            key = tuple(point.values())
            if key not in seen:
                seen.add(key)
                points.append(point)
        return points

    def size(self):
        """How many trials ``points()`` gives at most, computed without listing them."""
        if not self.dimensions:
            return 1
        if self.grid or not any(d.is_range for d in self.dimensions):
            return math.prod(self.trials if d.is_range else len(d.values) for d in self.dimensions)
        return self.trials

    def to_dict(self):
        return {"trials": self.trials, "grid": self.grid, "seed": self.seed,
                "dimensions": [dataclasses.asdict(d) for d in self.dimensions]}


def build_space(settings, trials=8, grid=False, seed=0):
    """From {field: text} (CLI flags, --set) to (fixed settings dict, SearchSpace)."""
    check_whole_number("trials", trials)
    if grid and trials < 2 and any(isinstance(parse_values(n, t), Dimension) and parse_values(n, t).is_range
                                   for n, t in settings.items()):
        raise ConfigError(f"trials={trials} is too few for --grid: a grid needs both ends, use --trials >= 2")
    fixed, dims = {}, []
    for name, text in settings.items():
        parsed = parse_values(name, text)
        if isinstance(parsed, Dimension):
            dims.append(parsed)
        else:
            fixed[name] = parsed
    space = SearchSpace(dims, trials=trials, grid=grid, seed=seed)
    if trials > MAX_TRIALS or space.size() > MAX_TRIALS:
        raise ConfigError(f"trials={trials} asks for {max(trials, space.size())} trials, more than the {MAX_TRIALS} "
                          f"a sweep runs: use fewer --trials or fewer values")
    return fixed, space


def trial_id(config):
    """A short stable name from the config's settings (not the thread count): same config, same id."""
    d = {k: v for k, v in config.to_dict().items() if k not in EXCLUDED_FROM_ID}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

