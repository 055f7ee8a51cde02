"""Gradient descent on functions: step 3 applied to any Python function of an array.

``minimize(f, x0, optimizer, steps)`` repeats x <- optimizer step(x, ∇f(x)) and
records every point it visits, so a picture can draw the path (what the demos
use).  The gradient is the tutorial's central difference
(``gradients.numerical_gradient``) unless a function computing it is given.
"""

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .gradients import numerical_gradient
from .optimizers import Optimizer, get_optimizer
from .validation import check_step

__all__ = ["Path", "minimize"]


@dataclass(frozen=True)
class Path:
    """The points gradient descent visited, ``points[k]`` after k steps, and ``values[k] = f(points[k])``."""

    points: np.ndarray
    values: np.ndarray

    @property
    def x(self):
        """The last point."""
        return self.points[-1]

    @property
    def f(self):
        """f at the last point."""
        return float(self.values[-1])

    @property
    def diverged(self):
        """True when f ended NaN/inf or above where it began."""
        return bool(not math.isfinite(self.f) or self.f > self.values[0])

    def distances(self, point=0.0):
        """|points[k] - point| (Euclidean) for every step k."""
        moved = self.points - np.asarray(point, dtype=np.float64)
        return np.sqrt((moved.reshape(len(moved), -1) ** 2).sum(axis=1))


def _value(f, x):
    value = f(x)
    try:
        return float(value)
    except (TypeError, ValueError):
        shape = getattr(value, "shape", type(value).__name__)
        raise ConfigError(f"f returned {shape}, not a number: minimize needs f(x) to be a scalar") from None


def minimize(f, x0, optimizer, steps, gradient="numerical", h=None):
    """Take ``steps`` updates x <- optimizer(x, ∇f(x)) from ``x0``; returns the Path of steps + 1 points.

    ``optimizer`` is an Optimizer (its state carries on from earlier calls) or a
    name built with its default lr; ``gradient`` is "numerical" (central
    differences with step ``h``, None = scaled to x) or a function x -> ∇f(x).
    ``x0`` is copied to float64; once a point overflows, NaN/inf simply propagate.
    """
    if isinstance(optimizer, str):
        optimizer = get_optimizer(optimizer, None)
    elif not isinstance(optimizer, Optimizer):
        raise ConfigError(f"optimizer={optimizer!r} is not allowed: use an sgdlab.optimizers optimizer or its name")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ConfigError(f"steps={steps!r} is not allowed: use an integer >= 0")
    if isinstance(gradient, str) and gradient == "numerical":
        check_step(h)

        def grad_of(x):
            return numerical_gradient(f, x, h)
    elif callable(gradient):
        if h is not None:
            raise ConfigError(f"h={h!r} applies only to gradient='numerical', not to a gradient function")
        grad_of = gradient
    else:
        raise ConfigError(f"gradient={gradient!r} is not allowed: use 'numerical' or a function x -> gradient")

    x = np.array(x0, dtype=np.float64)
    points = np.empty((int(steps) + 1, *x.shape))
    values = np.empty(int(steps) + 1)
    points[0], values[0] = x, _value(f, x)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, int(steps) + 1):
            g = np.asarray(grad_of(x), dtype=np.float64)
            if g.shape != x.shape:
                raise ConfigError(f"gradient returned shape {g.shape} but x has shape {x.shape}")
            if np.shares_memory(g, x):  # the update must not read a gradient it is overwriting
                g = g.copy()
            optimizer.update(x, g)
            points[k], values[k] = x, _value(f, x)
    return Path(points, values)
