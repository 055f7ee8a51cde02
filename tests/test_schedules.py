"""sgdlab.schedules: the schedules' new home keeps the old import paths; the LR range test's ramp."""

import pytest

from sgdlab.schedules import SCHEDULES, ExponentialRamp, make_schedule


def test_schedules_are_importable_from_their_old_homes():
    import sgdlab.optimizers
    import sgdlab.sweep

    assert sgdlab.optimizers.ExponentialRamp is ExponentialRamp is sgdlab.sweep.ExponentialRamp
    assert sgdlab.optimizers.make_schedule is make_schedule and sgdlab.optimizers.SCHEDULES is SCHEDULES
    assert "ramp" not in SCHEDULES                                     # the range test's instrument, not a choice


def test_exponential_ramp_runs_from_lr_min_to_lr_max_and_round_trips():
    ramp = ExponentialRamp(1e-4, 1.0, 5)
    lrs = [ramp.lr_at(i, 1, 5) for i in range(5)]
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    again = ExponentialRamp(1.0, 2.0, 2)
    again.load_state_dict(ramp.state_dict())
    assert again.lr_at(2, 1, 5) == pytest.approx(1e-2)
