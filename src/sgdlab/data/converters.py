"""Writing stores: ``convert`` (IDX, ``.npz``, ``.npy`` pairs, CSV) and ``synth_mnist_shifted``.

Every source is read and written in chunks of about 32 MB, so converting never
holds a whole dataset in memory (a ``.npz`` member is the exception: zip members
cannot be mapped, so each array is read whole).
"""

from __future__ import annotations

import gzip
import math
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from sgdlab.errors import ConfigError, DataError
from sgdlab.validation import check_count

from ..tables import are_class_labels, column_index, numeric_block, open_csv
from .files import _load_npy, npz_array
from .mnist import _IDX_DTYPES
from .store import SPLITS, StoreWriter, _bar, _chunk_rows, is_store, read_meta

SYNTH_NAMES = ("mnist-shifted",)
_CSV_CHUNK_VALUES = 1 << 21          # CSV fields parsed at a time (16 MB as float64)


def convert(src, dst, label_column=None, val_samples=0, overwrite=False, progress=None) -> dict:
    """Write the store ``dst`` from ``src``; returns its meta.

    ``src``: a folder of IDX files (``*-images-idx3-ubyte[.gz]`` with ``*-labels-idx1-ubyte[.gz]``;
    ``t10k``/``test`` files become the test split), a folder holding ``x.npy`` and ``t.npy`` (or
    ``X.npy``/``y.npy``) or the ``x.npy`` itself, a ``.npz`` (``x``/``t`` or ``x_train``/``t_train``...),
    or a CSV / Parquet table with a header (``label_column`` names the labels; text class labels are
    kept as the store's ``class_names``).  ``val_samples``: the last rows of the
    training split become the validation split.
    """
    check_count("val_samples", val_samples, 0)
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src} does not exist: give IDX files' folder, a .npz, .npy pair or .csv")
    class_names = None
    if is_store(src):
        parts = _store_sources(src)
    elif src.is_dir() and _idx_pairs(src):
        parts = [(role, _idx_source(img, lab)) for role, img, lab in _idx_pairs(src)]
    elif src.is_dir() or src.suffix == ".npy":
        parts = [("train", _npy_source(src))]
    elif src.suffix == ".npz":
        parts = _npz_sources(src)
    elif src.suffix.lower() in (".csv", ".parquet"):
        source = (_csv_source if src.suffix.lower() == ".csv" else _table_source)(src, label_column)
        parts, class_names = [("train", source[:6])], (source[6] if len(source) > 6 else None)
    else:
        raise DataError(f"{src} has suffix {src.suffix!r}: use a folder of IDX files, .npz, .npy, .csv or .parquet")
    return _write(parts, dst, val_samples, overwrite, progress, src, class_names)


def _write(parts, dst, val_samples, overwrite, progress, source, class_names=None):
    """parts: [(split, (n or None if unknown, feature_shape, x_dtype, t_shape, t_dtype, chunks))] written one after another."""
    n_total = None if any(p[1][0] is None for p in parts) else sum(p[1][0] for p in parts)
    _, (_, feature_shape, x_dtype, t_shape, t_dtype, _) = parts[0]
    for role, (_, fs, xd, ts, _, _) in parts[1:]:
        if fs != feature_shape or ts != t_shape:
            raise DataError(f"the {role} samples {fs} / targets {ts} differ from the first split's "
                            f"{feature_shape} / {t_shape}: all splits need the same shapes")
    x_dtype = np.uint8 if all(p[1][2] == np.uint8 for p in parts) else np.float32
    labels = np.dtype(t_dtype).kind in "iu"
    splits, top = {}, -1
    bar = _bar(n_total, f"writing {Path(dst).name}", progress)
    with StoreWriter(dst, feature_shape, x_dtype, t_shape, np.int64 if labels else np.float32,
                     overwrite=overwrite) as w:
        for role, (n, _, _, _, _, chunks) in parts:
            start = w.n
            for x, t in chunks:
                if labels:
                    if len(t) and t.min() < 0:
                        raise DataError(f"label {int(t.min())} near sample {w.n} is negative: labels must be >= 0")
                    top = max(top, int(t.max()) if len(t) else -1)
                w.append(x, t)
                bar.update(len(x))
            if n is not None and w.n - start != n:
                raise DataError(f"the {role} part of {source} gave {w.n - start} samples, expected {n}: "
                                "it is truncated or inconsistent")
            splits[role] = [start, w.n]
        bar.close()
        if val_samples:
            a, b = splits["train"]
            if val_samples >= b - a:
                raise ConfigError(f"val_samples={val_samples} is not allowed: use fewer than the {b - a} "
                                  "training samples")
            splits["train"], splits["val"] = [a, b - val_samples], [b - val_samples, b]
        scale = 1.0 / 255.0 if x_dtype == np.uint8 else None
        n_classes = len(class_names) if class_names else top + 1 if labels else None
        return w.close(scale=scale, n_classes=n_classes, class_names=class_names, splits=splits,
                       name=Path(dst).name, source=str(source))


# ---------------------------------------------------------------- IDX

def _idx_pairs(folder: Path):
    """[(role, images, labels)] for IDX files named PREFIX-images-idx*-ubyte[.gz] / PREFIX-labels-..."""
    found = {}
    for p in folder.iterdir():
        m = re.fullmatch(r"(.*?)[-_.]?(images|labels)[-.]idx\d-ubyte(\.gz)?", p.name)
        if m:
            found.setdefault(m.group(1), {})[m.group(2)] = p
    pairs = []
    for prefix in sorted(found, key=lambda k: ("t10k" in k or "test" in k, k)):
        files = found[prefix]
        if set(files) != {"images", "labels"}:
            missing = "labels" if "images" in files else "images"
            raise DataError(f"{folder} has {prefix}-{next(iter(files))} without its {missing} file: "
                            "give both IDX files of a split")
        role = "test" if ("t10k" in prefix or "test" in prefix) else "train"
        if any(r == role for r, _, _ in pairs):
            raise DataError(f"{folder} holds more than one {role} pair of IDX files: keep one")
        pairs.append((role, files["images"], files["labels"]))
    return pairs


def _idx_open(path: Path):
    """An open IDX stream (gzip or plain) positioned at the data, with its shape and dtype."""
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    f = gzip.open(path, "rb") if gz else open(path, "rb")
    try:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
            raise DataError(f"{path} starts with {head.hex() or 'nothing'}: not an IDX file")
        dims = f.read(4 * head[3])
        if len(dims) < 4 * head[3]:
            raise DataError(f"{path} is truncated inside its header")
    except (EOFError, OSError, zlib.error) as e:
        f.close()
        raise DataError(f"{path} is a truncated or corrupt gzip file ({e})") from None
    except DataError:
        f.close()
        raise
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return f, shape, _IDX_DTYPES[head[2]]


def _idx_source(images: Path, labels: Path):
    fx, x_shape, x_dtype = _idx_open(images)
    ft, t_shape, t_dtype = _idx_open(labels)
    if len(t_shape) != 1 or t_dtype.kind not in "iu" or x_shape[0] != t_shape[0]:
        fx.close()
        ft.close()
        raise DataError(f"{images.name} holds {x_shape} and {labels.name} {t_shape} {t_dtype}: need as many "
                        "integer labels as images")
    n, row = x_shape[0], math.prod(x_shape[1:])

    def chunks():
        with fx, ft:
            step = _chunk_rows(row * x_dtype.itemsize)
            for start in range(0, n, step):
                k = min(step, n - start)
                try:
                    xb, tb = fx.read(k * row * x_dtype.itemsize), ft.read(k * t_dtype.itemsize)
                except (EOFError, OSError, zlib.error) as e:
                    raise DataError(f"{images.name} or {labels.name} is a corrupt gzip file ({e})") from None
                if len(xb) < k * row * x_dtype.itemsize or len(tb) < k * t_dtype.itemsize:
                    raise DataError(f"{images.name} or {labels.name} is truncated: the header says {n} samples, "
                                    f"the data ends before sample {start + k}")
                x = np.frombuffer(xb, dtype=x_dtype).reshape(k, *x_shape[1:])
                yield x.astype(x_dtype.newbyteorder("=")), np.frombuffer(tb, dtype=t_dtype).astype(np.int64)

    return n, x_shape[1:], x_dtype.newbyteorder("="), (), np.int64, chunks()


# ---------------------------------------------------------------- .npy pairs and .npz

def _array_chunks(x, t):
    step = _chunk_rows(x.itemsize * math.prod(x.shape[1:]))
    for start in range(0, len(x), step):
        yield np.asarray(x[start:start + step]), np.asarray(t[start:start + step])


def _check_pair(x, t, what):
    if x.ndim < 1 or t.ndim not in (1, 2) or len(x) != len(t) or x.dtype.kind not in "uif" \
            or t.dtype.kind not in "iuf" or (t.dtype.kind in "iu" and t.ndim != 1):
        raise DataError(f"{what}: x {x.shape} {x.dtype} and t {t.shape} {t.dtype} do not pair up: need x "
                        "(n, *features) numbers and t (n,) integer labels or (n, k) float targets")
    if t.dtype.kind == "f" and t.ndim == 1:
        raise DataError(f"{what}: t is 1-D {t.dtype}: use integer labels or (n, k) float targets")
    return len(x), x.shape[1:], x.dtype, t.shape[1:], t.dtype, _array_chunks(x, t)


def _store_sources(src: Path):
    """Another store: its train/val/test row ranges stay splits (not merged into train)."""
    meta = read_meta(src)
    x, t = _load_npy(src / "x.npy"), _load_npy(src / "t.npy")
    ranges = sorted(meta["splits"].items(), key=lambda kv: SPLITS.index(kv[0]))
    return [(role, _check_pair(x[a:b], t[a:b], f"{src} {role}")) for role, (a, b) in ranges]


def _npy_source(src: Path):
    folder = src if src.is_dir() else src.parent
    pairs = [("x.npy", "t.npy"), ("X.npy", "y.npy")] if src.is_dir() else [(src.name, "t.npy"), (src.name, "y.npy")]
    for xn, tn in pairs:
        if (folder / xn).is_file() and (folder / tn).is_file():
            return _check_pair(_load_npy(folder / xn), _load_npy(folder / tn), str(folder))
    raise DataError(f"{src} has neither IDX files nor a pair of .npy files: put x.npy and t.npy in one folder")


def _npz_sources(src: Path):
    try:
        npz = np.load(src, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{src} is not a readable .npz file ({e}): use one written by np.savez") from None
    with npz:
        keys = set(npz.files)
        if {"x_train", "t_train"} <= keys:
            return [(role, _check_pair(npz_array(npz, f"x_{role}", src), npz_array(npz, f"t_{role}", src),
                                       f"{src} {role}"))
                    for role in ("train", "val", "test") if f"x_{role}" in keys and f"t_{role}" in keys]
        for xk, tk in (("x", "t"), ("X", "y")):
            if {xk, tk} <= keys:
                return [("train", _check_pair(npz_array(npz, xk, src), npz_array(npz, tk, src), str(src)))]
    raise DataError(f"{src} holds arrays {sorted(keys)}: need x and t (or X and y, or x_train, t_train, ...)")


# ---------------------------------------------------------------- CSV, streamed

def _csv_source(path: Path, label_column):
    """Rows parsed ~2M values at a time; x float32; labels integral in the first chunk -> int64 classes.

    A CSV whose first rows hold text (class names, categories) is read whole as a table instead."""
    f, header = open_csv(path)
    try:
        k, width = column_index(header, label_column, path), len(header)
        step = max(1, _CSV_CHUNK_VALUES // width)
        first = numeric_block(f, step, width, path, 2)
    except DataError as e:
        f.close()
        if "not a number" in str(e):
            return _table_source(path, label_column)
        raise
    integral = are_class_labels(first[:, k])

    def chunks():
        with f:
            data, line = first, 2
            while len(data):
                t = data[:, k]
                if integral and not np.all(t == np.round(t)):
                    i = int(np.argmax(t != np.round(t)))
                    raise DataError(f"{path} line {line + i}: label {t[i]} is not a whole number but the first "
                                    "rows were class labels: use whole-number labels throughout")
                yield np.delete(data, k, axis=1), (t.astype(np.int64) if integral else t[:, None])
                line += len(data)
                data = numeric_block(f, step, width, path, line)

    return None, (width - 1,), np.dtype(np.float32), () if integral else (1,), \
        np.dtype(np.int64 if integral else np.float32), chunks()


def _table_source(path: Path, label_column):
    """A CSV with text, or a Parquet file, read whole: classes and one-hot columns as for training."""
    from .files import load_table
    from .frame import read_table

    table = read_table(path)
    for name in table.names:
        values = table.columns[name]
        if name != label_column and values.dtype.kind == "U":
            raise DataError(f"{path} column {name!r} holds text ({values[np.argmax(values != '')]!r}), not a "
                            "number: a store keeps numeric features (text is allowed in the label column)")
    ds = load_table(path, label_column, val_fraction=0.0, test_fraction=0.0, table=table).train
    source = _check_pair(np.asarray(ds.x), ds.t, str(path))
    return (*source, None if ds.classes is None else ds.classes.tolist())


# ---------------------------------------------------------------- synthetic MNIST-like sets

def synth_mnist_shifted(dst, samples, seed=0, val_samples=10000, test_samples=10000, max_shift=2,
                        max_degrees=10.0, overwrite=False, progress=None, cache_dir=None) -> dict:
    """MNIST-like samples: a random MNIST digit moved by a shift in [-max_shift, max_shift] pixels and a
    rotation in [-max_degrees, max_degrees] (nearest neighbour), written in chunks; uint8, 28x28.

    Train samples come from MNIST's 50,000 training digits, val and test from its val and test digits.
    """
    from .mnist import load_mnist

    check_count("samples", samples, 1)
    check_count("val_samples", val_samples, 0)
    check_count("test_samples", test_samples, 0)
    check_count("max_shift", max_shift, 0)
    if not (isinstance(max_degrees, (int, float)) and 0 <= max_degrees <= 90):
        raise ConfigError(f"max_degrees={max_degrees!r} is not allowed: use a number in [0, 90]")
    mnist = load_mnist(cache_dir=cache_dir)
    maps = _transform_maps(max_shift, max_degrees)
    rng = np.random.Generator(np.random.PCG64(seed))
    parts = [(role, n, ds) for role, n, ds in (("train", samples, mnist.train), ("val", val_samples, mnist.val),
                                                ("test", test_samples, mnist.test)) if n]
    sources = [(role, _synth_source(n, ds, maps, rng)) for role, n, ds in parts]
    meta = _write(sources, dst, 0, overwrite, progress, f"mnist-shifted(seed={seed}, max_shift={max_shift}, "
                                                        f"max_degrees={max_degrees})")
    return meta


def _transform_maps(max_shift, max_degrees, n_angles=9):
    """(k, 784) source pixel of each output pixel for every shift x angle; 784 = outside (a zero pixel)."""
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64) - 13.5
    maps = []
    for angle in np.radians(np.linspace(-max_degrees, max_degrees, n_angles if max_degrees else 1)):
        c, s = np.cos(angle), np.sin(angle)
        for dy in range(-max_shift, max_shift + 1):
            for dx in range(-max_shift, max_shift + 1):
                sx = np.rint(c * (xx - dx) + s * (yy - dy) + 13.5).astype(int)
                sy = np.rint(-s * (xx - dx) + c * (yy - dy) + 13.5).astype(int)
                inside = (sx >= 0) & (sx < 28) & (sy >= 0) & (sy < 28)
                maps.append(np.where(inside, sy * 28 + sx, 784).reshape(-1))
    return np.array(maps, dtype=np.intp)


def _synth_source(n, ds, maps, rng):
    padded = np.concatenate([np.asarray(ds.x).reshape(len(ds), 784), np.zeros((len(ds), 1), np.uint8)], axis=1)
    labels = np.asarray(ds.t)

    def chunks():
        step = 8192                                  # the (step, 784) index table is the big temporary
        for start in range(0, n, step):
            k = min(step, n - start)
            rows = rng.integers(0, len(padded), size=k)
            which = rng.integers(0, len(maps), size=k)
            yield padded[rows[:, None], maps[which]], labels[rows]

    return n, (784,), np.dtype(np.uint8), (), np.dtype(np.int64), chunks()
