"""sgdlab.smoothing: the three averages, checked against their definitions."""

import numpy as np
import pytest

from sgdlab.smoothing import centred_mean, smooth, smoothed_loss


def test_trailing_moving_average():
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(smooth(v, 2), [1.0, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(smooth(v, 1), v)
    assert smooth([], 3).size == 0


def test_centred_moving_average():
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(centred_mean(v, 3), [1.5, 2.0, 3.0, 4.0, 4.5])


def test_bias_corrected_ema():
    s = smoothed_loss([4.0, 2.0], beta=0.5)
    assert s[0] == pytest.approx(4.0)                                      # bias correction: no pull toward 0
    assert s[1] == pytest.approx((0.25 * 4.0 + 0.5 * 2.0) / 0.75)


def test_old_homes_are_the_same_functions():
    import sgdlab.plots
    import sgdlab.sweep

    assert sgdlab.plots.smooth is smooth and sgdlab.sweep.smoothed_loss is smoothed_loss
