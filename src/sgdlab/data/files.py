"""Arrays from files: ``.npz``, a pair of ``.npy`` (read as memory maps), CSV; never unpickles."""

from __future__ import annotations

import math
import os
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from sgdlab.errors import ConfigError, DataError

from ..tables import encode_labels, is_numeric_row
from .checks import check_class_count
from .datasets import Dataset, Splits, _split, train_val_split
from .splits import split_indices
from .frame import Columns, feature_names, is_table_file, read_table, table_labels


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


def _n_classes_of(*ts):
    """Class count over all splits (a val set may lack the top label); None for float targets."""
    if all(t.ndim == 1 and t.dtype.kind in "iu" and len(t) for t in ts):
        return max(int(t.max()) for t in ts) + 1
    return None


def labelled(x, t, name="", n_classes=None, classes=None) -> Dataset:
    """A Dataset whose labels may be text, booleans or any integers: 1-D labels of those kinds are encoded
    as indices into their sorted distinct values (``Dataset.classes``; given ``classes``, into those);
    float targets pass as they are.  One class only is refused."""
    t = t if isinstance(t, np.ndarray) else np.asarray(t)
    if t.ndim == 1 and t.dtype.kind in "biuUS" and len(t):
        given = classes is not None
        t, classes = encode_labels(t, classes)
        if len(classes) < 2 and not given:
            raise DataError(f"the labels of {name or 'the data'} hold one class only ({classes[0].item()!r}): a "
                            "classifier needs at least two")
        n_classes = check_class_count(len(classes), f"the labels of {name or 'the data'}")
    ds = Dataset(x, t, n_classes=n_classes, name=name)
    ds.classes = classes
    return ds


def load_arrays(path, label_column=None, val_fraction=0.2, test_fraction=0.0, seed=0, features=None, drop=None,
                impute=None, classes=None, columns=None) -> Splits:
    """Load x and t from a file and split them (seeded).

    Accepted: ``.npz`` with ``x``/``t`` (or ``X``/``y``) or ready splits ``x_train``/``t_train``,
    ``x_test``/``t_test`` (and optionally ``x_val``/``t_val``); a folder holding ``x.npy`` and
    ``t.npy`` (also ``X.npy``/``y.npy``) or the path of ``x.npy`` itself (read as memory maps);
    a CSV with a header or a Parquet file, ``label_column`` naming the labels, ``features`` / ``drop``
    choosing the feature columns, ``impute="mean"`` filling missing cells. Never unpickles.
    Class labels may be text, booleans or any integers (``Dataset.classes`` keeps them).
    ``classes`` / ``columns``: a trained model's, to encode labels and table columns as it was trained.
    """
    if isinstance(path, (tuple, list)) and len(path) == 2:
        x_path, t_path = (Path(p) for p in path)
        for p in (x_path, t_path):
            if not p.is_file():
                raise DataError(f"{p} does not exist: give two existing .npy files (x, t)")
        x, t, name = _load_npy(x_path), _load_npy(t_path), x_path.parent.name or x_path.stem
        return _from_arrays(x, t, name, val_fraction, test_fraction, seed, classes)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist: give a .npz, .npy or .csv file, or a folder with x.npy and t.npy")
    if not is_table_file(path):
        for name, value in (("features", features), ("drop", drop), ("impute", impute)):
            if value:
                raise ConfigError(f"{name}={value!r} applies to CSV and Parquet tables only, not to {path.name}")
    if path.is_dir() or path.suffix == ".npy":
        folder = path if path.is_dir() else path.parent
        pairs = [("x.npy", "t.npy"), ("X.npy", "y.npy")]
        if path.is_file():
            pairs = [(path.name, t) for t in ("t.npy", "y.npy")]
        for xn, tn in pairs:
            if (folder / xn).is_file() and (folder / tn).is_file():
                x, t = _load_npy(folder / xn), _load_npy(folder / tn)
                return _from_arrays(x, t, folder.name, val_fraction, test_fraction, seed, classes)
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
                return _from_ready_splits(get, name, val_fraction, seed, classes)
            for xk, tk in (("x", "t"), ("X", "y")):
                if {xk, tk} <= keys:
                    x, t = npz_array(npz, xk, path), npz_array(npz, tk, path)
                    return _from_arrays(x, t, name, val_fraction, test_fraction, seed, classes)
        raise DataError(f"{path} holds arrays {sorted(keys)}: need x and t (or X and y, or "
                        "x_train, t_train, x_test, t_test)")
    if is_table_file(path):
        return load_table(path, label_column, val_fraction, test_fraction, seed, features, drop, impute,
                          classes=classes, columns=columns)
    raise DataError(f"{path} has suffix {path.suffix!r}: use .npz, .npy, .csv, .parquet or a folder with x.npy "
                    "and t.npy")


def load_table(path, label_column, val_fraction=0.2, test_fraction=0.0, seed=0, features=None, drop=None,
               impute=None, table=None, classes=None, columns=None) -> Splits:
    """A CSV / Parquet table split (stratified for classes); the feature encoding (``Columns``: one-hot
    categories, imputed means) is learnt on the training rows only and kept as ``Dataset.columns``."""
    table = table or read_table(path)
    if label_column is None or label_column not in table.columns:
        told = "no label_column was given" if label_column is None else f"label_column={label_column!r} is missing"
        raise DataError(f"{path}: {told}: name one of the columns {table.names}")
    t, classes = table_labels(table, label_column, classes)
    parts = split_indices(table.n_rows, val_fraction, test_fraction, seed, t if classes is not None else None)
    if columns is None:
        names = feature_names(table, label_column, features, drop)
        if label_column in names:
            raise DataError(f"--features names the label column {label_column!r}: list feature columns only")
        columns = Columns.fit(table.take(parts[0]), names, impute)
    x = columns.encode(table)
    ds = Dataset(x, t, n_classes=None if classes is None else len(classes), name=Path(path).stem)
    ds.classes, ds.columns = classes, columns
    train, val, test = (ds.subset(rows) if len(rows) else None for rows in parts)
    return Splits(train, val, test)


def _from_arrays(x, t, name, val_fraction, test_fraction, seed, classes=None) -> Splits:
    return _split(labelled(x, t, name, _n_classes_of(t), classes), val_fraction, test_fraction, seed, stratify=True)


def _from_ready_splits(arrays, name, val_fraction, seed, classes=None) -> Splits:
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
    if classes is None and all(t.ndim == 1 and t.dtype.kind in "biuUS" and len(t) for _, t in parts.values()):
        classes = np.unique(np.concatenate([np.unique(t) for _, t in parts.values()]))
    ds = {s: labelled(x, t, name, n_classes, classes) for s, (x, t) in parts.items()}
    if "val" not in ds and val_fraction:
        ds["train"], ds["val"] = train_val_split(ds["train"], val_fraction, seed, stratify=True)
    return Splits(ds["train"], ds.get("val"), ds.get("test"))


def load_inputs(path, n_features, columns=None):
    """Features to predict from .npy, .npz (``x``/``X`` or its only array), .csv (optional header row) or
    .parquet.  ``columns`` (a model's ``Columns``): a table's features are picked by name (the label and other
    columns may be there too) and encoded as in training."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"input {path!r} does not exist: give a .npy, .npz, .csv or .parquet file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".csv", ".parquet") and (columns is not None or suffix == ".parquet"):
        table = read_table(path)
        if columns is None:
            columns = Columns(table.names)
        x = columns.encode(table)
    else:
        x = _input_array(path, suffix)
    if x.dtype.kind not in "biuf":
        raise DataError(f"input {path!r} holds {x.dtype} values: give numbers")
    if x.ndim == 1 and x.size == n_features:
        x = x[None, :]
    x = x.reshape(len(x), -1) if x.ndim > 2 else x
    if x.ndim != 2 or x.shape[1] != n_features or len(x) == 0:
        raise DataError(f"input {path!r} has shape {x.shape}: the model takes rows of {n_features} features")
    if not np.all(np.isfinite(x)):
        raise DataError(f"input {path!r} contains NaN or inf")
    return x


def _input_array(path, suffix):
    try:
        if suffix == ".npy":
            with open(path, "rb") as f:                   # the header's shape against the file's size first
                npy_header(f, path, os.fstat(f.fileno()).st_size)
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            npz = np.load(path, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(f"input {path!r} is a .npy array named .npz: rename it to .npy")
            with npz:
                keys = [k for k in ("x", "X") if k in npz.files] or (npz.files if len(npz.files) == 1 else [])
                if not keys:
                    raise DataError(f"input {path!r} holds arrays {sorted(npz.files)}: name the features x")
                return npz_array(npz, keys[0], path)
        if suffix == ".csv":
            with open(path, encoding="utf-8-sig") as f:         # -sig: a BOM is not part of the first row
                lines = [line for line in f.read().splitlines() if line.strip()]
            if lines and not is_numeric_row(lines[0]):
                lines = lines[1:]
            if not lines:
                raise DataError(f"input {path!r} has no rows of numbers")
            return np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64)
        raise DataError(f"input {path!r} has suffix {suffix!r}: use .npy, .npz or .csv (or .parquet)")
    except (OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error,
            UnicodeDecodeError) as exc:
        raise DataError(f"input {path!r} is not a readable {suffix} file ({exc})") from None
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"input {path!r} is not a readable {suffix} file of numbers ({exc})") from None
