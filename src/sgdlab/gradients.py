"""Step 2 by definition: the gradient as the numerical derivative of the loss.

``numerical_diff`` and ``numerical_gradient`` are the tutorial's central
differences, written plainly for any function.  ``model_numerical_gradient``
(in ``sgdlab.fast_gradient``, importable from here) computes the same central
differences of the same loss for every parameter of a model, fast;
``method="complex"`` is the complex-step derivative; ``gradient_check``
compares backprop against them, tensor by tensor.

Choosing h.  The central difference (f(x+h) - f(x-h)) / 2h has truncation
error about h²·|f'''|/6 and rounding error about eps·|f|/h (eps = 2.2e-16 in
float64: f(x±h) are each rounded by ~eps·|f|).  Their sum is smallest near
h ≈ cbrt(3·eps·|f|/|f'''|), so we take h = cbrt(eps) · max(1, |x|) ≈ 6e-6 for
values of order one, and round it so that x + h is exactly representable.  The
tutorial's h = 1e-4 is fine in float64 (error ~1e-9); in float32 even that is
too small (eps = 1.2e-7), which is why numerical gradients here always run in
float64.  With h = 1e-50, x + h == x (1e-50 is far below half an ulp of x), so
f(x+h) - f(x-h) is exactly 0 and the "derivative" is 0: all rounding, no
signal.

The complex step, Im f(x + i·h) / h, subtracts nothing, so there is no rounding
error to trade against: with h = 1e-20 it is exact to machine precision, at one
evaluation per parameter.  It needs f to be analytic in its input (every layer
and loss here evaluates in complex arithmetic; ReLU takes its mask from the
real part).
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .fast_gradient import (CENTRAL_H, COMPLEX_H, EPS, METHODS, _float64_model, _prepare, model_numerical_gradient,
                            scaled_steps)
from .validation import check_step

__all__ = ["numerical_diff", "numerical_gradient", "scaled_steps", "model_numerical_gradient", "gradient_check",
           "GradientCheckReport", "TensorCheck", "EPS", "CENTRAL_H", "COMPLEX_H", "METHODS"]


# -- the tutorial's definitions, for any function ------------------------------------------------------


def numerical_diff(f, x, h=1e-4):
    """df/dx ≈ (f(x + h) - f(x - h)) / 2h, the central difference of a function of one number."""
    check_step(h, allow_none=False)
    x = float(x)
    return float((f(x + h) - f(x - h)) / (2 * h))


def numerical_gradient(f, x, h=1e-4):
    """∂f/∂x[i] ≈ (f(x + h·e_i) - f(x - h·e_i)) / 2h for every entry of an array of any shape.

    ``x`` is perturbed in place one entry at a time (so ``f`` may ignore its
    argument and read ``x`` elsewhere, as in the tutorial's
    ``numerical_gradient(lambda W: net.loss(x, t), net.W1)``) and every entry
    is put back exactly.  ``x`` must be float64 (a list or number is copied to
    one); ``h=None`` scales the step to each value (see the module docstring).
    Returns a float64 array of ``x``'s shape.
    """
    check_step(h)
    if isinstance(x, np.ndarray):
        if x.dtype != np.float64:
            raise ConfigError(f"x has dtype {x.dtype}: numerical_gradient perturbs it in place and needs float64 "
                              f"(small steps vanish in float32 rounding); pass a float64 array")
        values = x
    else:
        values = np.array(x, dtype=np.float64)
    steps = scaled_steps(values, h) if h is None else None
    grad = np.zeros(values.shape, dtype=np.float64)
    for idx in np.ndindex(values.shape):
        step = float(h) if steps is None else float(steps[idx])
        original = values[idx]
        try:
            values[idx] = original + step
            f_plus = f(values)
            values[idx] = original - step
            f_minus = f(values)
        finally:
            values[idx] = original
        grad[idx] = (f_plus - f_minus) / (2 * step)
    return grad


# -- gradient check ---------------------------------------------------------------------------------------


@dataclass
class TensorCheck:
    """One parameter tensor's comparison: max |backprop - numerical| and that over the larger max |g|."""

    name: str
    layer: int
    shape: tuple
    max_abs_error: float
    max_rel_error: float
    max_abs_gradient: float
    passed: bool


class GradientCheckReport:
    """Backprop against a numerical gradient, tensor by tensor; ``passed`` when every tensor passes."""

    def __init__(self, rows, tolerance, method, samples, backprop, numerical):
        self.rows, self.tolerance, self.method, self.samples = rows, tolerance, method, samples
        self.backprop, self.numerical = backprop, numerical
        self.passed = all(row.passed for row in rows)
        self.max_abs_error = max((row.max_abs_error for row in rows), default=0.0)
        self.max_rel_error = max((row.max_rel_error for row in rows), default=0.0)

    @property
    def by_name(self):
        return {row.name: row for row in self.rows}

    def __getitem__(self, name):
        return self.by_name[name]

    def __iter__(self):
        return iter(self.rows)

    def table(self):
        """One row per parameter tensor: name, shape, max abs error, max relative error, pass/fail."""
        header = ("parameter", "shape", "max |g|", "max abs error", "max rel error", "result")
        lines = [(row.name, "x".join(map(str, row.shape)), f"{row.max_abs_gradient:.3e}",
                  f"{row.max_abs_error:.3e}", f"{row.max_rel_error:.3e}", "pass" if row.passed else "FAIL")
                 for row in self.rows]
        widths = [max(len(h), *(len(line[c]) for line in lines)) for c, h in enumerate(header)]
        fmt = "  ".join(f"{{:<{w}}}" if c < 2 else f"{{:>{w}}}" for c, w in enumerate(widths))
        out = [f"gradient check: backprop vs {self.method} differences, float64, {self.samples} samples, "
               f"tolerance {self.tolerance:g} (relative to the tensor's largest |g|)",
               fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*line) for line in lines]
        failing = [row.name for row in self.rows if not row.passed]
        verdict = f"FAILED: {', '.join(failing)}" if failing else "passed"
        out.append(f"{verdict} (tolerance {self.tolerance:g} relative, or within rounding noise; "
                   f"largest relative error {self.max_rel_error:.3e})")
        return "\n".join(out)

    def __repr__(self):
        return (f"GradientCheckReport(passed={self.passed}, max_rel_error={self.max_rel_error:.3e}, "
                f"{len(self.rows)} tensors)")


def _tensors(model):
    """(name, layer index, shape, slice) per parameter tensor in flat order (Dense, Conv2D: W then b)."""
    for k, sl in model.param_slices:
        layer = model.layers[k]
        if hasattr(layer, "W") and hasattr(layer, "b"):
            n_w, kind = layer.W.size, type(layer).__name__
            yield f"{k}:{kind}.W", k, layer.W.shape, slice(sl.start, sl.start + n_w)
            yield f"{k}:{kind}.b", k, layer.b.shape, slice(sl.start + n_w, sl.stop)
        else:
            yield f"{k}:{type(layer).__name__}", k, (sl.stop - sl.start,), sl


def gradient_check(model, x, t, tolerance=1e-6, method="central", h=None):
    """Backprop against the numerical gradient in float64, per parameter tensor.

    A tensor's relative error is max |g_backprop - g_numerical| / max(max |g_backprop|, max |g_numerical|)
    (0 when both are 0); it passes when that is <= ``tolerance``, or when the absolute error is within
    central differences' own rounding noise, 100 * eps^(2/3) * max(1, |L|) (a tensor whose true
    gradient is exactly 0, such as a bias just before BatchNorm, shows only that noise on both sides).  Central differences in float64
    agree with a correct backprop to ~1e-8 or better (a ReLU kink within h of a pre-activation can
    cost more); ``method="complex"`` agrees to ~1e-14.
    """
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise ConfigError(f"tolerance={tolerance!r} is not allowed: use a number > 0")
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is unknown: use {', '.join(METHODS)}")
    model64 = _float64_model(model)
    x64, t64 = _prepare(model64, x, t)
    loss, grads = model64.gradient(x64, t64)
    backprop = grads.astype(np.float64, copy=True)
    noise = 100 * np.finfo(np.float64).eps ** (2 / 3) * max(1.0, abs(loss))
    numerical = model_numerical_gradient(model64, x64, t64, h=h, method=method)
    rows = []
    for name, k, shape, sl in _tensors(model64):
        a, b = backprop[sl], numerical[sl]
        abs_error = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(max(np.max(np.abs(a)), np.max(np.abs(b)))) if a.size else 0.0
        rel_error = abs_error / scale if scale > 0 else (0.0 if abs_error == 0 else math.inf)
        if not math.isfinite(abs_error):
            rel_error = math.inf
        passed = rel_error <= tolerance or abs_error <= noise
        rows.append(TensorCheck(name, k, tuple(shape), abs_error, rel_error, scale, passed))
    return GradientCheckReport(rows, tolerance, method, x64.shape[0], backprop, numerical)


def _check_h(h, allow_none=True):
    """Deprecated: ``sgdlab.validation.check_step``."""
    warnings.warn("sgdlab.gradients._check_h moved to sgdlab.validation.check_step", DeprecationWarning, stacklevel=2)
    check_step(h, allow_none)
