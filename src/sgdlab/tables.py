"""CSV, read and written in one place: header, rows, typed cells, and the one label-column rule.

Every CSV sgdlab reads goes through here: data files (``data.files``, ``data.converters``,
``sgdlab predict`` inputs), run folders' ``metrics.csv`` and sweeps' ``sweep.csv``.
The label rule (``encode_labels``): text or boolean labels, and numbers that are all
whole, are class labels, kept as their sorted distinct values (``classes``) and
encoded as indices into them; any other numbers are regression targets, shape (n, 1).
"""

from __future__ import annotations

import csv
import io
import itertools
import math

import numpy as np

from .errors import DataError

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})   # how a missing cell is spelled (any case)


# ---------------------------------------------------------------- text rows

def read_header(f, path):
    """The stripped header row of an open CSV file ``f``; one-line DataError when there is none."""
    try:
        header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} is not a readable CSV file ({e}): use a text CSV with a header row") from None
    if not header:
        raise DataError(f"{path} is empty: a CSV needs a header row and at least one data row")
    return [h.strip() for h in header]


def open_csv(path):
    """(open file positioned after the header, header) of a data CSV."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")     # -sig: a BOM is not part of the header
    except OSError as e:
        raise DataError(f"{path} is not a readable CSV file ({e}): use a text CSV with a header row") from None
    try:
        return f, read_header(f, path)
    except BaseException:
        f.close()
        raise


def column_index(header, name, path, what="label_column"):
    """Position of column ``name``; a one-line DataError naming the columns there are when it is absent."""
    if name is None or name not in header:
        told = f"no {what} was given" if name is None else f"{what}={name!r} is missing"
        raise DataError(f"{path}: {told}: name one of the columns {header}")
    return header.index(name)


def read_rows(path, with_lines=False):
    """(header, rows of text) of a whole CSV, blank rows skipped; ``with_lines`` adds each row's line number."""
    f, header = open_csv(path)
    rows, lines = [], []
    with f:
        reader = csv.reader(f)
        try:
            for row in reader:
                if row and any(c.strip() for c in row):
                    rows.append(row)
                    lines.append(reader.line_num + 1)       # the header was line 1
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"{path} is not a readable CSV file ({e}): use a text CSV") from None
    return (header, rows, lines) if with_lines else (header, rows)


def records(text, cell=lambda key, value: value):
    """Rows of CSV ``text`` (str or bytes) as dicts keyed by the header; ``cell(key, text)`` types each value.

    Rows with another field count than the header (a line being written) are left out.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        lines = list(csv.reader(io.StringIO(text)))
    except csv.Error:               # a stray CR or NUL: parse line by line, leaving out the lines it spoils
        lines = []
        for line in text.split("\n"):
            try:
                lines.extend(row for row in csv.reader([line]) if row)
            except csv.Error:
                continue
    if not lines:
        return []
    header = lines[0]
    return [{k: cell(k, v) for k, v in zip(header, line)} for line in lines[1:] if len(line) == len(header)]


def read_records(path, cell=lambda key, value: value, max_bytes=None, complete_lines=False):
    """``records`` of the file at ``path``: at most ``max_bytes`` (cut at a line end); with
    ``complete_lines`` a last line without its newline (still being written) is ignored."""
    with open(path, "rb") as f:
        raw = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(raw) > max_bytes:
        raw = raw[: raw.rfind(b"\n", 0, max_bytes) + 1]
    if complete_lines and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    return records(raw, cell)


def number_or_text(key, text):
    """A cell as a finite float, None (empty or not finite) or the text itself."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else None


def format_rows(columns, rows, line_end="\n"):
    """CSV text: the header ``columns`` then one line per row (dicts by column, or sequences); None -> ''."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end)
    writer.writerow(columns)
    for row in rows:
        values = [row.get(c) for c in columns] if isinstance(row, dict) else row
        writer.writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


# ---------------------------------------------------------------- numbers, streamed

def numeric_block(f, count, width, path, line):
    """The next ``count`` non-blank lines of ``f`` as a float64 (m, width) array (m = 0 at the end)."""
    lines = [s for s in itertools.islice(f, count) if s.strip()]
    if not lines:
        return np.empty((0, width))
    try:
        data = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path} near line {line} holds a value that is not a number ({e}): all CSV fields "
                        "must be numeric") from None
    if data.shape[1] != width:
        raise DataError(f"{path} near line {line} has rows of {data.shape[1]} fields for {width} header columns")
    return data


def is_numeric_row(line):
    """Whether a CSV line holds numbers only (a data row rather than a header)."""
    try:
        [float(v) for v in line.split(",")]
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- the label rule

def are_class_labels(values):
    """The rule: text, bool and integer labels, and floats that are all whole numbers, are classes."""
    values = np.asarray(values)
    if values.dtype.kind in "biuUSO":
        return True
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def encode_labels(values, classes=None):
    """(t, classes): class labels as int64 indices into their sorted distinct values, else (None-classes)
    float targets (n, 1).  ``classes`` given: encode against them, refusing a label outside them."""
    values = np.asarray(values)
    if classes is None and not are_class_labels(values):
        return values.astype(np.float64).reshape(len(values), -1), None
    if values.dtype.kind == "f":
        values = values.astype(np.int64)
    if classes is None:
        classes = np.unique(values)
    classes = np.asarray(classes)
    if classes.dtype.kind in "iu" and values.dtype.kind in "iu" and len(classes) and \
            classes[0] == 0 and classes[-1] == len(classes) - 1:
        t = values.astype(np.int64, copy=False)                      # 0..k-1 already: indices as they are
        unknown = (t < 0) | (t >= len(classes))
    else:
        t = np.searchsorted(classes, values).astype(np.int64)
        t_clipped = np.minimum(t, len(classes) - 1)
        unknown = classes[t_clipped] != values
        t = t_clipped
    if np.any(unknown):
        bad = values[np.argmax(unknown)].item()
        raise DataError(f"label {bad!r} is not one of the model's classes {list(classes.tolist())}")
    return t, classes
