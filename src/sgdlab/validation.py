"""The checks that turn a bad setting into a one-line ``ConfigError`` naming the value and what is allowed.

Every module validates its arguments through these, so a rule ("a number > 0",
"a whole number >= 1", "one of these names", "a fraction in [0, 1)", "a step
h > 0") reads the same wherever it is broken.  Values are shown with ``repr``,
cut to 40 characters (a request body may hold anything).
"""

import inspect
import math
import numbers

from .errors import ConfigError


def shown(value, limit=40):
    """``repr(value)`` cut to ``limit`` characters, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_number(name, value, low=None, high=None, low_open=False, high_open=False, optional=False, integer=False):
    """``value`` as a float (an int with ``integer``) if it is a finite real in the range; else ConfigError."""
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        rule = " and ".join(r for r in (lo, hi) if r)
        raise ConfigError(f"{name}={shown(value)} is not allowed: use a {'whole ' if integer else ''}number {rule}")
    return int(value) if integer else float(value)


def check_whole_number(name, value, low=1, optional=False):
    """``value`` as an int if it is an integer >= low (not a bool); else ConfigError naming it."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name}={shown(value)} is not allowed: use a whole number >= {low}")
    return int(value)


def check_count(name, value, minimum):
    """An integer >= ``minimum`` (sample and class counts of the synthetic datasets)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name}={shown(value)} is not allowed: use an integer >= {minimum}")
    return int(value)


def check_nonnegative(name, value):
    """A finite number >= 0 (noise levels, spreads)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={shown(value)} is not allowed: use a finite number >= 0")
    return value


def check_fraction(name, value, allow_zero=True):
    """A fraction in [0, 1) (or (0, 1) without ``allow_zero``): a split's share of the samples."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not (0 <= value < 1) or (value == 0 and not allow_zero):
        allowed = "[0, 1)" if allow_zero else "(0, 1)"
        raise ConfigError(f"{name}={shown(value)} is not allowed: use a fraction in {allowed}")
    return value


def check_step(h, allow_none=True):
    """A finite-difference step h > 0 (or None: scaled to each value)."""
    if h is None and allow_none:
        return
    if isinstance(h, bool) or not isinstance(h, numbers.Real) or not (math.isfinite(h) and h > 0):
        raise ConfigError(f"h={h!r} is not allowed: use a finite number > 0"
                          + (" or None (scaled to the value)" if allow_none else ""))


def check_choice(name, value, allowed, verb="is unknown: choose one of"):
    """``value`` if it is one of ``allowed``; else ConfigError listing them."""
    if not (isinstance(value, str) and value in allowed):
        raise ConfigError(f"{name}={shown(value)} {verb} {', '.join(allowed)}")
    return value


def setting_defaults(cls):
    """{setting: default} of a class's constructor (an optimizer's or schedule's; lr and base_lr included)."""
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


def settings_of(cls, skip):
    """The keyword settings of ``cls.__init__`` other than ``self`` and ``skip``."""
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *skip)]


def check_registered(kind, table, name, first, settings):
    """Look ``name`` up in the registry ``table``; refuse unknown names and settings, naming the allowed ones.

    Returns (class, key).  ``first`` are the positional parameters the caller passes itself.
    """
    key = name.lower() if isinstance(name, str) else name
    try:
        cls = table[key]
    except (KeyError, TypeError):
        raise ConfigError(f"{kind}={name!r} is unknown: choose one of {', '.join(table)}") from None
    allowed = settings_of(cls, first)
    unknown = [s for s in settings if s not in allowed]
    if unknown:
        raise ConfigError(
            f"{kind} {key!r} has no setting {', '.join(map(repr, unknown))}: "
            f"allowed settings are {', '.join(allowed) if allowed else 'none'}"
        )
    return cls, key
