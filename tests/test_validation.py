"""sgdlab.validation: the one place the checks live, and the old names that still reach them."""

import math
import warnings

import numpy as np
import pytest

from sgdlab.errors import ConfigError
from sgdlab.validation import (check_choice, check_count, check_fraction, check_nonnegative, check_number,
                               check_registered, check_step, check_whole_number, shown)


def test_check_number_ranges_and_messages():
    assert check_number("lr", 1, low=0, low_open=True) == 1.0 and isinstance(check_number("lr", 1), float)
    assert check_number("n", 3.0, low=1, high=5, integer=True) == 3
    assert check_number("x", None, optional=True) is None
    for value, rule in [(0, "lr=0 is not allowed: use a number > 0"), (math.nan, "lr=nan"), (True, "lr=True"),
                        ("1", "lr='1'")]:
        with pytest.raises(ConfigError, match=rule):
            check_number("lr", value, low=0, low_open=True)
    with pytest.raises(ConfigError, match=r"n=2.5 is not allowed: use a whole number >= 1 and <= 5$"):
        check_number("n", 2.5, low=1, high=5, integer=True)


def test_whole_numbers_counts_fractions_and_steps():
    assert check_whole_number("epochs", np.int64(3)) == 3
    with pytest.raises(ConfigError, match="epochs=0 is not allowed: use a whole number >= 1"):
        check_whole_number("epochs", 0)
    with pytest.raises(ConfigError, match="epochs=2.0"):
        check_whole_number("epochs", 2.0)
    with pytest.raises(ConfigError, match="n_samples=1 is not allowed: use an integer >= 2"):
        check_count("n_samples", 1, 2)
    with pytest.raises(ConfigError, match="noise=-1"):
        check_nonnegative("noise", -1)
    with pytest.raises(ConfigError, match=r"val_fraction=0 is not allowed: use a fraction in \(0, 1\)"):
        check_fraction("val_fraction", 0, allow_zero=False)
    assert check_fraction("val_fraction", 0) == 0
    check_step(None)
    with pytest.raises(ConfigError, match="h=0 is not allowed: use a finite number > 0 or None"):
        check_step(0)
    with pytest.raises(ConfigError, match="h=None"):
        check_step(None, allow_none=False)


def test_choices_registries_and_long_values():
    assert check_choice("solver", "adam", ("sgd", "adam")) == "adam"
    with pytest.raises(ConfigError, match="solver='lbfgs' is unknown: choose one of sgd, adam"):
        check_choice("solver", "lbfgs", ("sgd", "adam"))
    with pytest.raises(ConfigError, match="is unknown: use one of sgd"):
        check_choice("solver", "x", ("sgd",), verb="is unknown: use one of")

    class Thing:
        def __init__(self, lr, momentum=0.9):
            pass

    assert check_registered("optimizer", {"thing": Thing}, "THING", ("lr",), {"momentum": 1}) == (Thing, "thing")
    with pytest.raises(ConfigError, match="'thing' has no setting 'beta': allowed settings are momentum"):
        check_registered("optimizer", {"thing": Thing}, "thing", ("lr",), {"beta": 1})
    assert len(shown("x" * 1000)) == 43                               # a request body cannot flood a message
    with pytest.raises(ConfigError) as info:
        check_choice("dataset", "y" * 10_000, ("spirals",))
    assert len(str(info.value)) < 120


def test_old_homes_still_work_with_a_deprecation_warning():
    import sgdlab.errors
    import sgdlab.gradients

    with pytest.warns(DeprecationWarning, match="sgdlab.validation.check_number"):
        assert sgdlab.errors.check_number("lr", 0.5, low=0) == 0.5
    with pytest.warns(DeprecationWarning, match="check_whole_number"):
        from sgdlab.errors import check_whole_number as old
    assert old is check_whole_number
    with pytest.warns(DeprecationWarning, match="check_step"), pytest.raises(ConfigError, match="h=-1"):
        sgdlab.gradients._check_h(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from sgdlab.errors import ConfigError as same                  # the errors themselves did not move
    assert same is ConfigError
    with pytest.raises(AttributeError):
        sgdlab.errors.check_everything
