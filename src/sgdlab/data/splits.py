"""Seeded splits of n rows into train / val / test, random or stratified by class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sgdlab.errors import ConfigError
from sgdlab.validation import check_fraction


def split_indices(n, val_fraction, test_fraction, seed, labels=None):
    """Seeded (train, val, test) row indices; with class ``labels`` stratified: each split keeps the class shares.

    Stratified: rows are shuffled, grouped by class, and ordered by their rank within their class over the
    class size, (r + 0.5) / n_c, so every prefix holds each class in proportion; test takes the first
    round(n * test_fraction), val the next round(n * val_fraction), train the rest.
    """
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if val_fraction and n_val == 0 or test_fraction and n_test == 0 or n - n_val - n_test < 1:
        raise ConfigError(f"val_fraction={val_fraction} and test_fraction={test_fraction} do not fit "
                          f"{n} samples: each split needs at least one sample and train the rest")
    if n_val == 0 and n_test == 0:
        return np.arange(n), np.arange(0), np.arange(0)                # nothing held out: rows in file order
    order = np.random.default_rng(seed).permutation(n)
    if labels is not None:
        shuffled = np.asarray(labels)[order]
        grouped = np.argsort(shuffled, kind="stable")
        counts = np.bincount(shuffled)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        lab = shuffled[grouped]
        rank = (np.arange(n) - starts[lab] + 0.5) / counts[lab]
        order = order[grouped][np.argsort(rank, kind="stable")]
    test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
    return train_idx, val_idx, test_idx


@dataclass
class Splits:
    """The train / validation / test sets of one dataset (val and test may be absent)."""

    train: "Dataset"  # noqa: F821  (sgdlab.data.datasets.Dataset)
    val: "Dataset | None" = None  # noqa: F821
    test: "Dataset | None" = None  # noqa: F821


def _split(ds, val_fraction, test_fraction, seed, stratify=False) -> Splits:
    """Seeded random split of ``ds`` into train / val / test (val or test None when its fraction is 0);
    ``stratify``: each split keeps the class shares (classification data)."""
    labels = np.asarray(ds.t) if stratify and ds.is_classification else None
    train_idx, val_idx, test_idx = split_indices(len(ds), val_fraction, test_fraction, seed, labels)
    if len(val_idx) == 0 and len(test_idx) == 0:
        return Splits(ds, None, None)
    return Splits(ds.subset(train_idx), ds.subset(val_idx) if len(val_idx) else None,
                  ds.subset(test_idx) if len(test_idx) else None)


def train_val_split(dataset, val_fraction=0.2, seed=0, stratify=False):
    """Seeded random split into (train, val); val holds round(n * val_fraction) samples (``stratify``: with
    each class's share, as scikit-learn's ``train_test_split(stratify=t)``)."""
    check_fraction("val_fraction", val_fraction, allow_zero=False)
    s = _split(dataset, val_fraction, 0.0, seed, stratify)
    return s.train, s.val
