"""Datasets in memory or mapped from disk: ``Dataset``, ``Splits``, seeded splits, synthetic sets, digits.

A :class:`Dataset` holds ``x`` (uint8 pixels or floats, possibly a memory map)
and ``t`` (int labels or float targets) untouched, and gathers mini-batches from
them into preallocated float buffers: ``xb = x[indices] * scale``.

Rows of a memory-mapped array (a store's x and t) are read with ``os.preadv``
straight from the page cache into the batch buffer: reading a page through the
map would fault it (and, with fault-around, ~15 neighbours) into the process's
resident memory, and on a VM each fault costs tens of microseconds.  Where
preadv is missing, the mapped pages are dropped instead (``madvise(MADV_DONTNEED)``,
they stay in the page cache) once about ``_RESIDENT_BYTES`` have been touched:
either way memory stays bounded however large the file.
"""

from __future__ import annotations

import math
import mmap
import os

import numpy as np

from sgdlab.errors import ConfigError, DataError

from .checks import MAX_CLASSES, check_class_count
from sgdlab.validation import check_count, check_fraction, check_nonnegative

from .splits import Splits, _split, train_val_split  # noqa: F401  (Splits and train_val_split re-exported)

DATASET_NAMES = ("mnist", "digits", "spirals", "blobs", "circles", "xor")
_NAN_CHUNK_ELEMENTS = 1 << 22        # rows scanned per NaN check step: ~4M values (32 MB of float64)
_RESIDENT_BYTES = 1 << 28            # mapped bytes touched before the pages are dropped (256 MB)
_FAULT_SPAN = 1 << 16                # a page fault may map up to 16 neighbouring pages: count 64 KiB a row
_SPAN_BYTES = 1 << 16                # rows closer than this are read in one preadv with the rows between
_PREAD = hasattr(os, "preadv")
_FADVISE = hasattr(os, "posix_fadvise")


class Dataset:
    """x: (n, *features) uint8 pixels or float array; t: (n,) int labels or (n, k) float targets.

    ``scale`` multiplies x when it becomes float (default 1/255 for uint8, none for float x).
    The caller's arrays are kept as given (never copied or modified; a memmap stays lazy).
    """

    def __init__(self, x, t, scale=None, n_classes=None, name=""):
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        t = as_targets(t if isinstance(t, np.ndarray) else np.asarray(t))
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
    classes = None      # the original class labels t indexes (None: the labels are the indices themselves)
    columns = None      # how a table's columns became x (a ``data.frame.Columns``), None for arrays

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
        tshape = (m,) + self.t.shape[1:]
        if out_t is None:
            out_t = np.empty(tshape, dtype=self.t.dtype)
        elif not isinstance(out_t, np.ndarray) or out_t.shape != tshape:
            got = out_t.shape if isinstance(out_t, np.ndarray) else type(out_t).__name__
            raise DataError(f"out_t has shape {got}: need shape {tshape}")
        return self.gather_into(indices, out_x, out_t)

    def gather_into(self, indices, out_x, out_t):
        """``batch`` without its checks, for the batch loaders' hot loop: ``indices`` are an intp array
        in [-n, n), ``out_x`` a float (m, n_features) array and ``out_t`` (m, ...) like t."""
        m = len(indices)
        if self._x2d is None:                                  # non-contiguous x: gather then flatten
            rows = np.take(self.x, indices, axis=0, mode="wrap").reshape(m, -1)
        elif self.scale is None and out_x.dtype == self.x.dtype:
            _gather(self._xread, self._x2d, indices, out_x)
            rows = None
        else:
            if self._scratch is None or len(self._scratch) < m:
                self._scratch = np.empty((m, self.n_features), dtype=self.x.dtype)
            rows = self._scratch[:m]
            _gather(self._xread, self._x2d, indices, rows)
        if rows is not None:
            if self.scale is None:
                np.copyto(out_x, rows, casting="unsafe")
            else:  # the scale as a scalar of out_x's dtype: NumPy then casts as it multiplies, in one pass
                np.multiply(rows, out_x.dtype.type(self.scale), out=out_x, casting="unsafe")
        if out_t.dtype == self.t.dtype:
            _gather(self._tread, self.t, indices, out_t)
        else:
            out_t[...] = self.t[indices]
        if self._maps:
            self._touched(m * (self._row_bytes + 2 * _FAULT_SPAN))
        return out_x, out_t

    def advise(self, indices):
        """Start reading rows ``indices`` (sorted, in [0, n)) of a file-backed dataset in the background,
        for a gather soon after; nothing for data in memory."""
        for reader in (self._xread, self._tread):
            if reader is not None:
                reader.advise(indices)

    def subset(self, indices) -> Dataset:
        """A new Dataset holding copies of rows ``indices``, with the same scale and n_classes."""
        indices = self._check_indices(indices)
        x = np.asarray(np.take(self.x, indices, axis=0, mode="wrap"))   # plain arrays, even from a memmap
        t = np.asarray(np.take(self.t, indices, axis=0, mode="wrap"))
        part = _trusted(x, t, self.scale, self.n_classes, self.name)
        part.classes, part.columns = self.classes, self.columns
        return part

    def chunks(self, size=10000):
        """Yield (xb, tb) over the whole set in order, ``size`` rows at a time (for evaluation)."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ConfigError(f"size={size!r} is not allowed: use an integer >= 1")
        n = len(self)
        for start in range(0, n, size):
            stop = min(start + size, n)
            if self._xread is None:
                rows = self.x[start:stop].reshape(stop - start, -1)
            else:
                rows = np.empty((stop - start, self.n_features), dtype=self.x.dtype)
                self._xread.read(np.arange(start, stop), rows)
            xb = np.empty(rows.shape, dtype=np.float32)
            if self.scale is None:
                np.copyto(xb, rows, casting="unsafe")
            else:
                np.multiply(rows, self.scale, out=xb, dtype=np.float32, casting="unsafe")
            if self._maps:
                self._touched(rows.nbytes + (stop - start) * self.t.itemsize + 2 * _FAULT_SPAN)
            yield xb, self.t[start:stop]

    @property
    def is_mapped(self) -> bool:
        """True when x or t is read from a memory-mapped file."""
        return bool(self._maps) or self._xread is not None or self._tread is not None

    def release_pages(self):
        """Unmap the pages of x and t read so far (they stay in the page cache): resident memory drops."""
        self._untouched = 0
        for m in self._maps:
            m.madvise(mmap.MADV_DONTNEED)

    def _touched(self, nbytes):
        self._untouched += nbytes
        if self._untouched > _RESIDENT_BYTES:
            self.release_pages()

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
    ds._row_bytes = x.itemsize * math.prod(x.shape[1:]) + t.itemsize * math.prod(t.shape[1:])
    ds._untouched = 0
    ds._xread, ds._tread = _RowReader.of(x), _RowReader.of(t)
    ds._maps = tuple(m for m, reader in ((_mapping_of(x), ds._xread), (_mapping_of(t), ds._tread))
                     if reader is None and m is not None and hasattr(m, "madvise") and hasattr(mmap, "MADV_DONTNEED"))
    if x.ndim == 2:
        ds._x2d = x
    elif x.flags.c_contiguous:
        ds._x2d = x.reshape(len(x), -1)                        # a view: no copy, a memmap stays lazy
    else:
        ds._x2d = None


def _gather(reader, a, indices, out):
    """out[:] = a[indices] (rows), by preadv when a is a mapped file, else np.take."""
    if reader is not None and (len(indices) == 0 or indices.min() >= 0):
        reader.read(indices, out)
    else:
        a.take(indices, axis=0, out=out, mode="wrap")


class _RowReader:
    """Reads rows of a C-contiguous memory-mapped array from its file with ``os.preadv`` (no page faults).

    Rows within ``_SPAN_BYTES`` of each other are read in one call, span and all, then picked out.
    """

    @classmethod
    def of(cls, a):
        root = a
        while isinstance(root, np.memmap) and not isinstance(root.base, mmap.mmap):
            root = root.base
        if not (_PREAD and isinstance(root, np.memmap) and a.flags.c_contiguous and a.size):
            return None
        return cls(root.filename, root.offset + (a.ctypes.data - root.ctypes.data),
                   a.itemsize * math.prod(a.shape[1:]))

    def __init__(self, filename, start, row_bytes):
        self.file = open(filename, "rb", buffering=0)          # closed when the Dataset is collected
        self.start, self.row_bytes = start, row_bytes
        self.gap = max(1, _SPAN_BYTES // row_bytes)
        self._span = np.empty(0, dtype=np.uint8)

    def read(self, indices, out):
        """out (len(indices), ...) of the array's dtype <- its rows ``indices`` (>= 0)."""
        m, rb = len(indices), self.row_bytes
        if m == 0:
            return
        raw = out.reshape(m, -1).view(np.uint8)
        steps = np.diff(indices)
        cuts = np.flatnonzero((steps < 0) | (steps > self.gap)) + 1
        bounds = [0, *cuts.tolist(), m]
        for s, e in zip(bounds[:-1], bounds[1:]):
            lo, hi = int(indices[s]), int(indices[e - 1])
            if hi - lo == e - s - 1 and (e - s == 1 or bool(np.all(steps[s:e - 1] == 1))):
                self._pread(raw[s:e], lo)
            else:
                span = (hi - lo + 1) * rb
                if len(self._span) < span:
                    self._span = np.empty(span, dtype=np.uint8)
                self._pread(self._span[:span], lo)
                np.take(self._span[:span].reshape(-1, rb), indices[s:e] - lo, axis=0, out=raw[s:e])

    def advise(self, indices):
        """Have the kernel start reading rows ``indices`` (sorted, >= 0) into the page cache and return
        at once (posix_fadvise WILLNEED), so that a later ``read`` of them finds them in memory."""
        if not _FADVISE or len(indices) == 0:
            return
        rb = self.row_bytes
        cuts = np.flatnonzero(np.diff(indices) > self.gap) + 1
        bounds = [0, *cuts.tolist(), len(indices)]
        for s, e in zip(bounds[:-1], bounds[1:]):
            lo, hi = int(indices[s]), int(indices[e - 1])
            os.posix_fadvise(self.file.fileno(), self.start + lo * rb, (hi - lo + 1) * rb, os.POSIX_FADV_WILLNEED)

    def _pread(self, buf, row):
        view, pos = memoryview(buf).cast("B"), self.start + row * self.row_bytes
        while len(view):
            got = os.preadv(self.file.fileno(), [view], pos)
            if got == 0:
                raise DataError(f"{self.file.name} ends before byte {pos}: the file was truncated while in use")
            view, pos = view[got:], pos + got


def _mapping_of(a):
    """The ``mmap.mmap`` an array (a memmap, or a view of one) reads from, else None."""
    while a is not None and not isinstance(a, mmap.mmap):
        a = getattr(a, "base", None)
    return a


def _trusted(x, t, scale, n_classes, name) -> Dataset:
    """A Dataset over arrays already validated (rows of a validated one): no second scan."""
    ds = Dataset.__new__(Dataset)
    _set_fields(ds, x, t, scale, n_classes, name)
    return ds


def as_targets(t):
    """1-D float targets (what scikit-learn, pandas and NumPy users have) are one output: a (n, 1) view."""
    return t[:, None] if t.ndim == 1 and t.dtype.kind == "f" else t


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
                                  or not 1 <= n_classes <= MAX_CLASSES):
        raise ConfigError(f"n_classes={n_classes!r} is not allowed: use an integer from 1 to {MAX_CLASSES} or None")
    if t.dtype.kind in "iu":
        if t.ndim != 1:
            raise DataError(f"t has integer dtype and shape {t.shape}: integer labels must be 1-D (n,)")
        lo, hi = int(t.min()), int(t.max())
        if lo < 0:
            i = int(np.argmax(t < 0))
            raise DataError(f"label {lo} at index {i} is negative: labels must be integers in "
                            f"[0, {n_classes if n_classes is not None else 'n_classes'})")
        if n_classes is None:
            return check_class_count(hi + 1, f"labels up to {hi}")
        if hi >= n_classes:
            i = int(np.argmax(t >= n_classes))
            raise DataError(f"label {int(t[i])} at index {i} is out of range: labels must be integers "
                            f"in [0, {n_classes})")
        return int(n_classes)
    if t.dtype.kind != "f":
        raise DataError(f"t has dtype {t.dtype}: use integer labels or float targets")
    _check_finite(t, "t")
    if n_classes is not None and not (t.ndim == 2 and t.shape[1] == n_classes):
        raise DataError(f"n_classes={n_classes} does not fit float targets of shape {t.shape}: "
                        "use None or the number of target columns")
    return None if n_classes is None else int(n_classes)


# ---------------------------------------------------------------- synthetic sets

def _class_sizes(n_samples, n_classes):
    return [len(a) for a in np.array_split(np.arange(n_samples), n_classes)]


def make_spirals(n_samples=300, n_classes=3, noise=0.2, seed=0) -> Dataset:
    """The CS231n spiral: class j runs r = 0..1 along theta = 4j..4(j+1) + noise * N(0, 1)."""
    check_count("n_classes", n_classes, 2)
    check_count("n_samples", n_samples, n_classes)
    check_nonnegative("noise", noise)
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
    check_count("n_classes", n_classes, 1)
    check_count("n_samples", n_samples, n_classes)
    check_count("n_features", n_features, 1)
    check_nonnegative("spread", spread)
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10.0, 10.0, size=(n_classes, n_features))
    t = np.repeat(np.arange(n_classes, dtype=np.int64), _class_sizes(n_samples, n_classes))
    x = centres[t] + spread * rng.standard_normal((n_samples, n_features))
    order = rng.permutation(n_samples)
    return Dataset(x[order].astype(np.float32), t[order], n_classes=n_classes, name="blobs")


def make_circles(n_samples=300, noise=0.1, factor=0.5, seed=0) -> Dataset:
    """Two concentric circles: class 0 on radius 1, class 1 on radius ``factor``, plus noise * N(0, I)."""
    check_count("n_samples", n_samples, 2)
    check_nonnegative("noise", noise)
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
    check_count("n_samples", n_samples, 1)
    check_nonnegative("noise", noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    t = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    x += noise * rng.standard_normal(x.shape)
    return Dataset(x.astype(np.float32), t, n_classes=2, name="xor")


_SYNTHETIC = {"spirals": make_spirals, "blobs": make_blobs, "circles": make_circles, "xor": make_xor}


# ---------------------------------------------------------------- bundled digits

def _digits_arrays():
    """(pixels 0..16 as float64, labels) from the digits.csv.gz inside scikit-learn's package.

    Read with NumPy: importing scikit-learn takes over a second, longer than training on
    the digits (and every sweep worker would pay it).  ``sklearn.datasets.load_digits``
    is the fallback should the file ever move.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("load_digits needs scikit-learn, which is not installed: "
                        "pip install scikit-learn (or sgdlab[sklearn])")
    for folder in spec.submodule_search_locations or ():
        path = os.path.join(folder, "datasets", "data", "digits.csv.gz")
        if os.path.exists(path):
            data = np.loadtxt(path, delimiter=",")
            return data[:, :-1], data[:, -1]
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return bunch.data, bunch.target


def load_digits(val_fraction=0.2, test_fraction=0.2, seed=0, flatten=True) -> Splits:
    """scikit-learn's bundled 8x8 digits (1797 samples, 64 features = pixels / 16 in [0, 1]), split seeded.

    ``flatten=False`` keeps the images, x (n, 1, 8, 8), for conv nets."""
    x, t = _digits_arrays()
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    ds = Dataset((x / 16.0).astype(np.float32), t.astype(np.int64), n_classes=10, name="digits")
    return _split(ds, val_fraction, test_fraction, seed)
