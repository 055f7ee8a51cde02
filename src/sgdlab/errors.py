"""The errors sgdlab raises for input a person can fix, and the checks that raise them.

Each is a ``ValueError`` so plain ``except ValueError`` code keeps working; the
CLI prints the message on one line and exits 2.
"""

import math
import numbers


class SgdlabError(ValueError):
    """Base of every error caused by bad input (config, data, files)."""


class ConfigError(SgdlabError):
    """A setting has a value that is not allowed (names the value and the allowed ones)."""


class DataError(SgdlabError):
    """A dataset is missing, corrupt, or inconsistent (shapes, labels, NaN)."""


class CheckpointError(SgdlabError):
    """A model or checkpoint file is truncated, tampered with, or incompatible."""


class ExportError(SgdlabError):
    """A model cannot be written in another format (a layer ONNX export cannot express, a missing package)."""


class RunExistsError(SgdlabError):
    """The run folder exists and neither overwrite nor resume was asked for."""


def check_number(name, value, low=None, high=None, low_open=False, high_open=False, optional=False):
    """``value`` as a float if it is a finite real in the range; else ConfigError naming it and the range."""
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        rule = " and ".join(r for r in (lo, hi) if r)
        raise ConfigError(f"{name}={value!r} is not allowed: use a number {rule}")
    return float(value)


def check_whole_number(name, value, low=1, optional=False):
    """``value`` as an int if it is an integer >= low (not a bool); else ConfigError naming it."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name}={value!r} is not allowed: use a whole number >= {low}")
    return int(value)
