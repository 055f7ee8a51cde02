import numpy as np
import pytest

from sgdlab.batches import BatchLoader, BatchSampler
from sgdlab.data import Dataset
from sgdlab.errors import ConfigError


def test_shuffle_visits_every_sample_once_per_epoch_with_integer_boundaries():
    sampler = BatchSampler(103, 10, seed=0)
    assert sampler.iterations_per_epoch == 11
    for _ in range(2):
        batches = [sampler.next().copy() for _ in range(sampler.iterations_per_epoch)]
        assert [len(b) for b in batches] == [10] * 10 + [3]
        assert sorted(np.concatenate(batches).tolist()) == list(range(103))
        assert all(np.all(np.diff(b) > 0) for b in batches)  # sorted within the batch


def test_epochs_use_different_permutations():
    sampler = BatchSampler(50, 50, seed=0)
    first = sampler.order.copy()
    sampler.next()
    a = sampler.order.copy()
    sampler.next()
    assert not np.array_equal(a, sampler.order) and not np.array_equal(first, a)


def test_replacement_draws_full_batches_independently():
    sampler = BatchSampler(20, 8, mode="replacement", seed=1)
    draws = np.concatenate([sampler.next().copy() for _ in range(200)])
    assert draws.min() == 0 and draws.max() == 19
    assert len(np.unique(draws)) == 20
    counts = np.bincount(draws, minlength=20)
    assert counts.min() > 40  # ~80 each when uniform


def test_same_seed_same_batches_and_state_round_trip():
    a, b = BatchSampler(37, 5, seed=7), BatchSampler(37, 5, seed=7)
    for _ in range(4):
        np.testing.assert_array_equal(a.next(), b.next())
    state = a.state_dict()
    expected = [a.next().copy() for _ in range(12)]
    c = BatchSampler(37, 5, seed=999)
    c.load_state_dict(state)
    np.testing.assert_array_equal(np.concatenate(expected), np.concatenate([c.next().copy() for _ in range(12)]))


@pytest.mark.parametrize("kwargs,match", [
    ({"n": 10, "batch_size": 0}, "batch_size=0"),
    ({"n": 10, "batch_size": 11}, "batch_size=11 is larger than the 10"),
    ({"n": 10, "batch_size": 2.5}, "batch_size=2.5"),
    ({"n": 10, "batch_size": 2, "mode": "stratified"}, "sampling='stratified'"),
])
def test_bad_sampler_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BatchSampler(**kwargs)


def test_loader_gathers_scaled_rows_into_reused_buffers():
    x = np.arange(30, dtype=np.uint8).reshape(10, 3)
    t = np.arange(10) % 3
    loader = BatchLoader(Dataset(x, t), BatchSampler(10, 4, seed=0), dtype=np.float32)
    xb, tb = loader.next()
    indices = loader.sampler._indices[: len(xb)]
    np.testing.assert_allclose(xb, x[indices] / 255, rtol=1e-6)
    np.testing.assert_array_equal(tb, t[indices])
    xb2, _ = loader.next()
    assert np.shares_memory(xb, xb2) and xb.dtype == np.float32
