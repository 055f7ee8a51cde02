"""sgdlab.sklearn_rules: scikit-learn's rules as a schedule, a sampler and a hook (parity: test_sklearn.py)."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.utils import gen_batches, shuffle  # noqa: E402

from sgdlab.sklearn_rules import InvScaling, SklearnBatches  # noqa: E402


def test_invscaling_is_lr0_over_samples_seen_plus_one_to_the_power_t():
    schedule = InvScaling(0.5, power_t=0.25, samples_per_epoch=100, samples_seen=300, first_lr=0.2)
    assert schedule.lr_at(0, 10, 50) == 0.2 and schedule.lr_at(9, 10, 50) == 0.2      # until the epoch ends
    assert schedule.lr_at(10, 10, 50) == 0.5 / (300 + 100 + 1) ** 0.25
    assert schedule.lr_at(25, 10, 50) == 0.5 / (300 + 200 + 1) ** 0.25


def test_batches_are_sklearns_shuffles_and_slices_sorted():
    sampler = SklearnBatches(7, 3, shuffle=True, random_state=np.random.RandomState(0))
    reference, order = np.random.RandomState(0), np.arange(7)
    for _ in range(2):
        order = shuffle(order, random_state=reference)
        for batch in gen_batches(7, 3):
            np.testing.assert_array_equal(sampler.next(), np.sort(order[batch]))
    unshuffled = SklearnBatches(7, 3, shuffle=False, random_state=None)
    assert [unshuffled.next().tolist() for _ in range(4)] == [[0, 1, 2], [3, 4, 5], [6], [0, 1, 2]]
