import numpy as np
import pytest

from sgdlab.data import make_spirals, train_val_split


def backward_errors(layer, x, r, params=None, grads=None):
    """Relative errors of backward against central differences of f = sum(layer.forward(x) * r):
    (input gradient, parameter gradient or None)."""

    def f():
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x)
    dx = layer.backward(r).copy()
    param_error = None if params is None else relative_error(grads, central_difference(f, params))
    return relative_error(dx, central_difference(f, x)), param_error


def central_difference(f, p, h=1e-6):
    """df/dp[i] = (f(p + h e_i) - f(p - h e_i)) / 2h, one entry at a time, restoring p exactly."""
    g = np.zeros_like(p, dtype=np.float64)
    flat, gflat = p.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return g


def relative_error(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12))


@pytest.fixture
def spirals():
    """(train, val) of a small 3-class 2-D set."""
    return train_val_split(make_spirals(n_samples=300, n_classes=3, noise=0.1, seed=0), 0.2, seed=0)
