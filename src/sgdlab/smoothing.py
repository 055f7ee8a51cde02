"""Smoothing a noisy curve (mini-batch losses, per-epoch metrics): three averages, one place.

- ``smooth``: trailing moving average, m_i = mean(v[i-w+1 .. i]) (the plots' curves);
- ``centred_mean``: centred moving average, mean(v[i-w//2 .. i+w//2]) (overfitting onset);
- ``smoothed_loss``: bias-corrected exponential moving average (the LR range test).
Each returns an array as long as its input, averaging fewer points at the ends.
"""

import numpy as np


def smooth(values, window):
    """Moving average over ``window`` points (shorter at the start), same length as ``values``."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def centred_mean(values, window):
    """Mean of the ``window`` values centred on each position (fewer at the ends)."""
    half = window // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    positions = np.arange(values.size)
    starts, ends = np.maximum(positions - half, 0), np.minimum(positions + half + 1, values.size)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def smoothed_loss(losses, beta=0.98):
    """Bias-corrected exponential moving average: s_i = (beta m_{i-1} + (1 - beta) l_i) / (1 - beta^(i+1))."""
    out, m = np.empty(len(losses)), 0.0
    for i, loss in enumerate(losses):
        m = beta * m + (1 - beta) * loss
        out[i] = m / (1 - beta ** (i + 1))
    return out
