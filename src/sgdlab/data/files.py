"""Arrays from files: ``.npz``, a pair of ``.npy`` (read as memory maps), CSV; never unpickles."""

from __future__ import annotations

import csv
import math
import os
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from sgdlab.errors import DataError

from .checks import classes_from_labels
from .datasets import Dataset, Splits, _split, train_val_split


def npy_header(f, path, size):
    """(shape, dtype) from the .npy header at ``f``'s position, checked against ``size``, the bytes the
    array may take (file or zip member size): a header never makes us allocate more than the file holds."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        start = f.tell()
        shape, fortran, dtype = read(f)
        header = f.tell() - start
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path} is not a readable .npy array ({e}): use an array saved with np.save") from None
    if dtype.hasobject:
        raise DataError(f"{path} holds Python objects ({dtype}) and cannot be loaded without pickle (Object "
                        "arrays cannot be loaded when allow_pickle=False): only plain numeric arrays are allowed")
    need, have = math.prod(shape) * dtype.itemsize, size - 8 - header    # 8: magic string and version
    if need != have:
        raise DataError(f"{path}: its header says shape {shape} {dtype} = {need} bytes but the data has "
                        f"{have} bytes: the file is truncated or damaged")
    return shape, dtype


def _load_npy(path, mmap=True):
    try:
        with open(path, "rb") as f:
            npy_header(f, path, os.fstat(f.fileno()).st_size)
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path} cannot be loaded without pickle ({e}): only plain numeric arrays are "
                        "allowed, save with allow_pickle=False") from e
    except (OSError, EOFError, SyntaxError, tokenize.TokenError) as e:  # the last two: a garbled header
        raise DataError(f"{path} is not a readable .npy file ({e}): use an array saved with np.save") from e


def npz_array(npz, key, path):
    """Array ``key`` of an open NpzFile, its header checked against the member's size before reading."""
    try:
        info = npz.zip.getinfo(key + ".npy") if key + ".npy" in npz.zip.namelist() else npz.zip.getinfo(key)
        with npz.zip.open(info) as f:
            npy_header(f, f"array {key!r} in {path}", info.file_size)
    except (KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise DataError(f"array {key!r} in {path} is damaged ({e}): use a file written by np.savez") from None
    return _npz_get(npz, key, path)


def _npz_get(npz, key, path):
    try:
        return npz[key]
    except ValueError as e:
        raise DataError(f"array {key!r} in {path} cannot be loaded without pickle ({e}): only plain "
                        "numeric arrays are allowed") from e
    except (OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"array {key!r} in {path} is damaged ({e}): use a file written by np.savez") from e


def _labels_or_targets(t):
    """CSV labels come as floats: integral values become int64 class labels, others (n, 1) targets."""
    if np.all(np.isfinite(t)) and np.all(t == np.round(t)):
        return t.astype(np.int64)
    return t[:, None]


def _load_csv(path, label_column):
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:   # -sig: a BOM is not part of the header
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
        return classes_from_labels(*ts)
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
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not a zip of arrays")
        except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile) as e:
            raise DataError(f"{path} is not a readable .npz file ({e}): use one written by np.savez") from e
        with npz:
            keys = set(npz.files)
            if {"x_train", "t_train"} <= keys:
                get = {k: npz_array(npz, k, path) for k in keys if k[:2] in ("x_", "t_")}
                return _from_ready_splits(get, name, val_fraction, seed)
            for xk, tk in (("x", "t"), ("X", "y")):
                if {xk, tk} <= keys:
                    x, t = npz_array(npz, xk, path), npz_array(npz, tk, path)
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
    kinds = {s: "integer labels" if t.dtype.kind in "iu" else f"{t.dtype.kind} targets".replace("f ", "float ")
             for s, (_, t) in parts.items()}
    if len(set(kinds.values())) > 1:
        raise DataError(f"{name}.npz mixes {', '.join(f't_{s} of {k}' for s, k in kinds.items())}: every split "
                        "needs the same kind of targets")
    n_classes = _n_classes_of(*(t for _, t in parts.values()))
    ds = {s: Dataset(x, t, n_classes=n_classes, name=name) for s, (x, t) in parts.items()}
    if "val" not in ds and val_fraction:
        ds["train"], ds["val"] = train_val_split(ds["train"], val_fraction, seed)
    return Splits(ds["train"], ds.get("val"), ds.get("test"))
