"""Tables as people have them: named columns of numbers or text, read from CSV or Parquet, and
``Columns``, the record of how they became the network's input (kept in the model).

Numbers stay numbers; a text column is one-hot encoded over the categories seen in
training (an unseen one becomes all zeros, with a warning: scikit-learn's
``handle_unknown="ignore"``); a missing cell is refused naming its row and column,
unless ``impute="mean"`` fills it with the training split's mean.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from sgdlab.errors import ConfigError, DataError

from ..tables import MISSING, encode_labels, read_rows

TABLE_SUFFIXES = (".csv", ".parquet")


class DataWarning(UserWarning):
    """Something about the data a person should know, that does not stop the work."""


class Table:
    """Named columns of one file: numbers as float64, text as str arrays, and where cells are missing."""

    def __init__(self, names, columns, missing, source):
        self.names, self.columns, self.missing, self.source = list(names), columns, missing, str(source)
        self.n_rows = len(columns[self.names[0]]) if self.names else 0

    def take(self, rows) -> Table:
        return Table(self.names, {k: v[rows] for k, v in self.columns.items()},
                     {k: v[rows] for k, v in self.missing.items()}, self.source)

    def require(self, name, what):
        """Column ``name``; a one-line DataError naming the columns there are when it is absent."""
        if name not in self.columns:
            raise DataError(f"{self.source} has no column {name!r} ({what}): its columns are {self.names}")
        return self.columns[name]


def is_table_file(path) -> bool:
    return os.path.splitext(str(path))[1].lower() in TABLE_SUFFIXES


def read_table(path) -> Table:
    """A CSV (header row first) or Parquet file as a Table."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix == ".parquet":
        return _parquet_table(path)
    header, rows, lines = read_rows(path, with_lines=True)
    if not rows:
        raise DataError(f"{path} has a header but no data rows: a table needs at least one row")
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path} names columns {twice} more than once: give every column its own name")
    for row, line in zip(rows, lines):
        if len(row) != len(header):
            raise DataError(f"{path} line {line} has {len(row)} fields for {len(header)} header columns: "
                            "give every row one field per column")
    columns, missing = {}, {}
    for name, cells in zip(header, zip(*rows)):
        columns[name], missing[name] = _typed_column(np.array(cells, dtype=str))
    return Table(header, columns, missing, path)


def _typed_column(cells):
    """(values, missing): float64 when every present cell is a number, else the stripped text."""
    text = np.char.strip(cells)
    missing = np.isin(np.char.lower(text), list(MISSING))
    try:
        return np.where(missing, "nan", text).astype(np.float64), missing
    except ValueError:
        return np.where(missing, "", text), missing


def _parquet_table(path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"reading {path} needs pyarrow: pip install 'sgdlab[parquet]'") from None
    try:
        data = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid/OSError family for a damaged file
        raise DataError(f"{path} is not a readable Parquet file ({type(e).__name__}: {e})".split("\n")[0]) from None
    import pyarrow as pa

    columns, missing = {}, {}
    for name in data.column_names:
        col = data.column(name)
        nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            values = np.asarray(col.cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False))
            missing[name] = nulls | np.isnan(values)
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_dictionary(col.type):
            values = np.array(col.cast(pa.string()).fill_null("").to_pylist(), dtype=str)
            values, missing[name] = _typed_column(values)
            missing[name] |= nulls
        else:
            raise DataError(f"{path} column {name!r} has type {col.type}: use numbers, booleans or text")
        columns[name] = values
    return Table(data.column_names, columns, missing, path)


# ---------------------------------------------------------------- labels and features of a table

def table_labels(table, label_column, classes=None):
    """(t, classes) of the label column by the one label rule (``sgdlab.tables.encode_labels``; given ``classes``,
    against those); refuses missing labels and a column that holds one class only."""
    values = table.require(label_column, "the label column")
    where = np.flatnonzero(table.missing[label_column])
    if len(where):
        raise DataError(f"{table.source} row {where[0] + 1}, label column {label_column!r}: the label is "
                        "missing: every row needs a label")
    if classes is not None and np.asarray(classes).dtype.kind in "biu" and values.dtype.kind == "U":
        raise DataError(f"label column {label_column!r} of {table.source} holds text ({values[0]!r}): the model's "
                        f"classes are {np.asarray(classes).tolist()}")
    given = classes is not None
    t, classes = encode_labels(values, classes)
    if classes is not None and len(classes) < 2 and not given:
        raise DataError(f"label column {label_column!r} of {table.source} holds one class only "
                        f"({classes[0].item()!r}): a classifier needs at least two")
    return t, classes


def feature_names(table, label_column, features=None, drop=None):
    """The feature columns: ``features`` (in that order) or every column but the label and ``drop``."""
    for name in list(features or ()) + list(drop or ()):
        table.require(name, "named by --features" if name in (features or ()) else "named by --drop")
    if features:
        return [n for n in features if n not in (drop or ())]
    names = [n for n in table.names if n != label_column and n not in (drop or ())]
    if not names:
        raise DataError(f"{table.source} has no feature columns besides the label {label_column!r}")
    return names


class Columns:
    """How named columns become the network's input x (stored in the model; applied to every table).

    ``names``: the feature columns, in order; ``categories``: for each text column its categories (one x
    column each, 1 where the cell equals it); ``means``: with imputing, each numeric column's training mean
    (the fill for a missing cell).
    """

    def __init__(self, names, categories=None, means=None):
        self.names, self.categories, self.means = list(names), dict(categories or {}), means

    @classmethod
    def fit(cls, table, names, impute=None) -> Columns:
        """Categories and (``impute="mean"``) means from ``table``, the training split."""
        if impute not in (None, "mean"):
            raise ConfigError(f"impute={impute!r} is not allowed: use 'mean' or leave it unset")
        categories, means = {}, {} if impute else None
        for name in names:
            values, missing = table.columns[name], table.missing[name]
            if values.dtype.kind == "U":
                categories[name] = sorted(set(values[~missing].tolist()))
            elif impute:
                present = values[~missing]
                means[name] = float(present.mean()) if len(present) else 0.0
        return cls(names, categories, means)

    @property
    def output_names(self):
        """The x columns' names: a numeric column's own, ``name=category`` for each one-hot column."""
        return [out for n in self.names for out in
                ([f"{n}={c}" for c in self.categories[n]] if n in self.categories else [n])]

    def encode(self, table) -> np.ndarray:
        """x (n, width) float64 from ``table``'s columns picked by name; refuses a missing column or cell."""
        for name in self.names:
            table.require(name, "the model was trained on it")
        if self.means is None:
            self._refuse_missing(table)
        parts = []
        for name in self.names:
            values, missing = table.columns[name], table.missing[name]
            if name in self.categories:
                if values.dtype.kind != "U":
                    values = np.array([_as_text(v) for v in values], dtype=str)
                parts.append(self._one_hot(name, values, missing))
            elif values.dtype.kind == "U":
                bad = np.flatnonzero(~missing)[0]
                raise DataError(f"{table.source} row {bad + 1}, column {name!r} holds {values[bad]!r}: the model "
                                "was trained on numbers in this column")
            else:
                col = np.where(missing, self.means[name], values) if self.means is not None else values
                if not np.all(np.isfinite(col)):
                    bad = int(np.argmax(~np.isfinite(col)))
                    raise DataError(f"{table.source} row {bad + 1}, column {name!r} holds {col[bad]}: use finite "
                                    "numbers")
                parts.append(col[:, None])
        return np.concatenate(parts, axis=1) if parts else np.empty((table.n_rows, 0))

    def _refuse_missing(self, table):
        holes = np.stack([table.missing[n] for n in self.names], axis=1)
        if holes.any():
            row = int(np.argmax(holes.any(axis=1)))
            col = self.names[int(np.argmax(holes[row]))]
            raise DataError(f"{table.source} row {row + 1}, column {col!r} has a missing value: fill it, drop "
                            "the column (--drop), or pass --impute mean")

    def _one_hot(self, name, values, missing):
        cats = np.array(self.categories[name], dtype=str)
        hot = values[:, None] == cats[None, :]
        unseen = ~hot.any(axis=1) & ~missing
        if unseen.any():
            examples = sorted(set(values[unseen].tolist()))[:3]
            warnings.warn(f"column {name!r} has {int(unseen.sum())} value(s) not seen in training "
                          f"({', '.join(map(repr, examples))}): encoded as all zeros", DataWarning, stacklevel=3)
        return hot.astype(np.float64)

    def describe(self):
        return {"names": self.names, "categories": self.categories, "means": self.means}

    @classmethod
    def from_description(cls, desc):
        return cls(desc["names"], desc.get("categories"), desc.get("means"))


def _as_text(value):
    """A number read from a file as the text a category was written as (1.0 -> '1')."""
    return str(int(value)) if float(value).is_integer() else str(value)


def unnamed_columns(n_features):
    """Names for array features: x0, x1, ..."""
    return [f"x{i}" for i in range(n_features)]
