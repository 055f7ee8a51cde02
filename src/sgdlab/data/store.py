"""On-disk dataset stores: a folder of ``x.npy``, ``t.npy`` and ``meta.json``, opened as memory maps.

``x.npy`` holds uint8 or float32 samples of any feature shape, ``t.npy`` int64
labels or float targets, ``meta.json`` the shapes, dtypes, scale, class names,
split row ranges and checksums.  Stores are written chunk by chunk (``convert``
from IDX, ``.npz``, ``.npy`` pairs and CSV; ``synth_mnist_shifted``), so no
source is ever held in memory whole.

Checksums: a full SHA-256 of each file's data is taken while it is written and
checked only on request (``verify_store``, ``sgdlab data info --verify``: it
reads every byte).  Opening checks the file sizes against the headers and a
*sampled* SHA-256 (each header, file size and 64 evenly spaced 4 KiB pieces):
a few hundred KiB read, milliseconds even for a 7.8 GB store.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tokenize
import types
from pathlib import Path

import numpy as np

from sgdlab.errors import ConfigError, DataError
from sgdlab.runfolder import LOCK_NAME, Claim, FolderLock, check_location, foreign_entries

from .datasets import Splits, _check_t, _trusted, as_targets

STORE_FORMAT = "sgdlab.store/1"
X_DTYPES = ("uint8", "float32")
SPLITS = ("train", "val", "test")
_PIECES, _PIECE = 64, 4096
_CHUNK_BYTES = 32 << 20             # rows per written chunk: about 32 MB of x
_HEADER_BYTES = 256                 # fixed .npy header size, so the final row count fits in place


def is_store(path) -> bool:
    """True when ``path`` is a folder with a meta.json (a store, possibly a broken one)."""
    return Path(path).is_dir() and (Path(path) / "meta.json").is_file()


# ---------------------------------------------------------------- writing

def _npy_header(dtype, shape) -> bytes:
    """A version 1.0 .npy header padded to _HEADER_BYTES (64-byte aligned), so it can be rewritten in place."""
    body = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (
        np.lib.format.dtype_to_descr(np.dtype(dtype)), tuple(int(d) for d in shape))
    room = _HEADER_BYTES - 10
    if len(body) + 1 > room:
        raise DataError(f"feature shape {tuple(shape[1:])} is too long for a store header: use at most 8 dims")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", room) + body.encode("latin1") + b" " * (room - len(body) - 1) + b"\n"


class StoreWriter:
    """Appends (x, t) chunks to a new store; ``close()`` fixes the headers and writes meta.json last.

    Files are written under temporary names and renamed at the end; a folder without
    meta.json is an incomplete store and is refused when opened.
    """

    def __init__(self, folder, feature_shape, x_dtype, t_shape=(), t_dtype=np.int64, overwrite=False):
        self.folder = Path(folder)
        self.x_dtype, self.t_dtype = np.dtype(x_dtype), np.dtype(t_dtype)
        if self.x_dtype.name not in X_DTYPES:
            raise DataError(f"x dtype {self.x_dtype} is not allowed in a store: use {' or '.join(X_DTYPES)}")
        self.feature_shape, self.t_shape = tuple(int(d) for d in feature_shape), tuple(int(d) for d in t_shape)
        self._lock = _prepare_folder(self.folder, overwrite)
        self.n = 0
        self._files = {}
        for key, dtype, tail in (("x", self.x_dtype, self.feature_shape), ("t", self.t_dtype, self.t_shape)):
            f = open(self.folder / f".{key}.npy.partial", "wb")
            f.write(_npy_header(dtype, (0, *tail)))
            self._files[key] = (f, hashlib.sha256())

    def append(self, x, t):
        """Write rows x (k, *feature_shape) and t (k, *t_shape), cast to the store's dtypes."""
        x, t = np.asarray(x), np.asarray(t)
        if x.shape[1:] != self.feature_shape or t.shape != (len(x), *self.t_shape):
            raise DataError(f"a chunk of x {x.shape} and t {t.shape} does not fit the store's samples "
                            f"{self.feature_shape} and targets {self.t_shape}")
        for key, a, dtype in (("x", x, self.x_dtype), ("t", t, self.t_dtype)):
            if dtype.kind == "f" and not np.isfinite(a).all():
                i = int(np.argmax(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)))
                raise DataError(f"{key} has a NaN/inf value at sample {self.n + i}: all values must be finite")
            data = np.ascontiguousarray(a, dtype=dtype).data.cast("B")
            f, h = self._files[key]
            f.write(data)
            h.update(data)
        self.n += len(x)

    def close(self, scale=None, n_classes=None, class_names=None, splits=None, name="", source=""):
        """Finish the files and write meta.json; returns the meta dict."""
        if self.n == 0:
            self.abort()
            raise DataError(f"no samples were written to {self.folder}: the source is empty")
        digests = {}
        for key, (f, h) in self._files.items():
            tail = self.feature_shape if key == "x" else self.t_shape
            f.seek(0)
            f.write(_npy_header(self.x_dtype if key == "x" else self.t_dtype, (self.n, *tail)))
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(self.folder / f".{key}.npy.partial", self.folder / f"{key}.npy")
            digests[f"{key}.npy"] = h.hexdigest()
        splits = splits or {"train": [0, self.n]}
        meta = {"format": STORE_FORMAT, "name": str(name or self.folder.name), "n": self.n,
                "x": {"shape": [self.n, *self.feature_shape], "dtype": self.x_dtype.name},
                "t": {"shape": [self.n, *self.t_shape], "dtype": self.t_dtype.name},
                "scale": scale, "n_classes": n_classes, "class_names": class_names,
                "splits": {k: [int(a), int(b)] for k, (a, b) in splits.items()}, "source": str(source),
                "checksum": {"sampled_sha256": _sampled_digest(self.folder), "sha256": digests}}
        _check_meta(meta, self.folder)
        tmp = self.folder / ".meta.json.partial"
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.folder / "meta.json")
        self._lock.release()
        return meta

    def abort(self):
        """Close and delete the partial files."""
        for key, (f, _) in self._files.items():
            f.close()
            (self.folder / f".{key}.npy.partial").unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None:
            self.abort()


def _prepare_folder(folder: Path, overwrite):
    """Create ``folder`` and lock it (runfolder's rules: never ., a parent, or a folder with other files)."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file: give a folder for the store")
    check_location(folder, "the store folder")
    for _ in range(2):                     # checked again under the lock: another writer may just have finished
        if folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir()):
            if not overwrite:
                raise DataError(f"{folder} already exists and is not empty: choose a new folder or pass --overwrite")
            foreign = foreign_entries(folder, "store")
            if foreign or not (is_store(folder) or (folder / ".x.npy.partial").exists()):
                raise DataError(f"{folder} is not a store (no meta.json" + (f"; it holds {', '.join(foreign[:5])}"
                                if foreign else "") + "): refusing to overwrite it; choose a new folder")
        if _ == 0:
            folder.mkdir(parents=True, exist_ok=True)
            lock = FolderLock(folder, "sgdlab data").acquire()
    try:
        if overwrite:
            Claim(folder, "store").clear()
    except BaseException:
        lock.release()
        raise
    return lock


def _chunk_rows(row_bytes) -> int:
    return max(1, _CHUNK_BYTES // max(1, row_bytes))


_NO_BAR = types.SimpleNamespace(update=lambda n: None, close=lambda: None)


def _bar(total, desc, progress, unit="sample"):
    """A tqdm bar (progress None: on a terminal only); progress=False makes none (tqdm starts a thread)."""
    if progress is False:
        return _NO_BAR
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False,
                disable=None if progress is None else not progress)


# ---------------------------------------------------------------- checksums

def _sampled_digest(folder: Path) -> str:
    """SHA-256 of each file's size, first 4 KiB (the header) and 64 evenly spaced 4 KiB pieces."""
    h = hashlib.sha256()
    for name in ("x.npy", "t.npy"):
        with open(folder / name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h.update(f"{name}:{size};".encode())
            last = max(0, size - _PIECE)
            for k in range(_PIECES + 1):
                h.update(os.pread(f.fileno(), _PIECE, last * k // _PIECES))
    return h.hexdigest()


def verify_store(path, progress=None):
    """Re-read every byte and compare with the SHA-256 taken when the store was written (DataError if not)."""
    folder = Path(path)
    meta = read_meta(folder)
    total = sum(os.path.getsize(folder / n) for n in ("x.npy", "t.npy"))
    bar = _bar(total, "verifying", progress, unit="B")
    try:
        for name, expected in meta["checksum"]["sha256"].items():
            h = hashlib.sha256()
            with open(folder / name, "rb") as f:
                offset = _npy_header_of(f, folder / name)[2]
                bar.update(offset)
                while chunk := f.read(16 << 20):
                    h.update(chunk)
                    bar.update(len(chunk))
            if h.hexdigest() != expected:
                raise DataError(f"{folder / name} fails its full checksum (SHA-256 {h.hexdigest()[:16]}..., "
                                f"meta.json says {expected[:16]}...): the data changed after it was written; "
                                "convert it again")
    finally:
        bar.close()
    return meta


# ---------------------------------------------------------------- reading

def read_meta(path) -> dict:
    """meta.json of a store, checked for the keys and types a store needs."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder: a store is a folder with x.npy, t.npy and meta.json")
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder} has no meta.json: it is not a store or its writing did not finish; "
                        "convert it again") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"{folder / 'meta.json'} is not readable JSON ({str(e)[:80]}): convert the store again") \
            from None
    _check_meta(meta, folder)
    return meta


def _whole(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < 2 ** 62


def _check_meta(meta, folder):
    """Types and ranges of every meta.json entry a reader uses; DataError naming the first that is wrong."""
    def shape_ok(part):
        return (isinstance(part, dict) and isinstance(part.get("shape"), list) and 1 <= len(part["shape"]) <= 9
                and all(_whole(d) for d in part["shape"]) and part["shape"][0] == meta["n"])

    try:
        checks = [
            ("format", lambda: meta["format"] == STORE_FORMAT),
            ("n", lambda: _whole(meta["n"], 1)),
            ("x", lambda: shape_ok(meta["x"]) and meta["x"].get("dtype") in X_DTYPES),
            ("t", lambda: shape_ok(meta["t"]) and meta["t"].get("dtype") in ("int64", "float32")),
            ("splits", lambda: isinstance(meta["splits"], dict)),
            ("checksum", lambda: isinstance(meta["checksum"], dict) and isinstance(meta["checksum"].get("sha256"),
                                                                                  dict)
             and all(isinstance(v, str) for v in meta["checksum"]["sha256"].values())
             and isinstance(meta["checksum"].get("sampled_sha256"), str)),
            ("scale", lambda: meta.get("scale") is None or (isinstance(meta["scale"], (int, float))
                                                            and not isinstance(meta["scale"], bool)
                                                            and math.isfinite(meta["scale"]) and meta["scale"] > 0)),
            ("n_classes", lambda: meta.get("n_classes") is None or _whole(meta["n_classes"], 1)),
            ("class_names", lambda: meta.get("class_names") is None or (isinstance(meta["class_names"], list) and all(
                isinstance(c, str) for c in meta["class_names"]))),
            ("name", lambda: isinstance(meta.get("name", ""), str)),
        ]
        if not isinstance(meta, dict):
            raise TypeError
        bad = next((key for key, check in checks if not check()), None)
    except (KeyError, TypeError, IndexError, AttributeError):
        bad = "its structure"
    if bad is not None:
        raise DataError(f"{folder / 'meta.json'} is not a valid {STORE_FORMAT} description ({bad} is missing or "
                        f"has the wrong type or range): convert the store again")
    for key, r in meta["splits"].items():
        if key not in SPLITS or not (isinstance(r, list) and len(r) == 2 and all(_whole(v) for v in r)
                                     and 0 <= r[0] < r[1] <= meta["n"]):
            raise DataError(f"{folder / 'meta.json'} has split {key}={r}: splits are train/val/test row "
                            f"ranges [start, stop) within [0, {meta['n']}]")


def _npy_header_of(f, path):
    """(shape, dtype, data offset) from the .npy header of an open file."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as e:
        raise DataError(f"{path} is not a readable .npy file ({e}): convert the store again") from None
    if fortran or dtype.hasobject:
        raise DataError(f"{path} holds a {'Fortran-order' if fortran else 'object'} array: a store holds "
                        "C-order numeric arrays")
    return shape, dtype, f.tell()


def _map(folder: Path, key, meta):
    """Memory-map ``key``.npy after checking its header and size against meta.json."""
    path = folder / f"{key}.npy"
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path} cannot be opened ({e.strerror}): a store needs x.npy, t.npy and meta.json") from None
    with f:
        shape, dtype, offset = _npy_header_of(f, path)
        size = os.fstat(f.fileno()).st_size
    want_shape, want_dtype = tuple(meta[key]["shape"]), meta[key]["dtype"]
    if dtype.name != want_dtype:
        raise DataError(f"{path} has dtype {dtype.name} but meta.json says {want_dtype}: the files do not "
                        "belong together; convert the store again")
    if shape != want_shape:
        if len(shape) and len(want_shape) and shape[0] != want_shape[0] and shape[1:] == want_shape[1:]:
            raise DataError(f"{path} holds {shape[0]} samples but meta.json says {want_shape[0]}: x and t "
                            "lengths differ; convert the store again")
        raise DataError(f"{path} has shape {shape} but meta.json says {want_shape}: convert the store again")
    need = offset + math.prod(shape) * dtype.itemsize
    if size != need:
        state = "truncated" if size < need else "too long"
        raise DataError(f"{path} is {state}: its header says {shape} {dtype.name} = {need} bytes, the file has "
                        f"{size}; convert the store again")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def open_store(path, val_fraction=None) -> Splits:
    """The splits of a store as Datasets over a memory map of x (t, small, is read into memory).

    Splits come from meta.json's row ranges; without a val range and with ``val_fraction``,
    the last round(n_train * val_fraction) training rows become the validation set (a view, not
    a copy, so it is a random split only if the rows are in random order: synth writes them so;
    for other data give ``convert`` a shuffled source or ``val_samples``).
    """
    folder = Path(path)
    meta = read_meta(folder)
    x, t = _map(folder, "x", meta), _map(folder, "t", meta)
    t = np.array(t)                          # labels in memory: 8 bytes a sample, 1% of MNIST's pixels
    if len(x) != len(t):
        raise DataError(f"{folder}: x.npy has {len(x)} samples but t.npy has {len(t)}: they must be equal")
    if _sampled_digest(folder) != meta["checksum"]["sampled_sha256"]:
        raise DataError(f"{folder} fails its checksum (headers, sizes and sampled pieces differ from when it was "
                        "written): the files changed; convert the store again")
    t = as_targets(t)
    try:
        n_classes = _check_t(t, len(x), meta.get("n_classes"))
    except DataError as e:
        raise DataError(f"{folder}: {e}") from None
    scale = meta.get("scale")
    if scale is None and x.dtype == np.uint8:
        scale = 1.0 / 255.0
    ranges = dict(meta["splits"])
    if "train" not in ranges:
        raise DataError(f"{folder / 'meta.json'} has no train split: convert the store again")
    if "val" not in ranges and val_fraction:
        a, b = ranges["train"]
        n_val = round((b - a) * val_fraction)
        if n_val < 1 or n_val >= b - a:
            raise ConfigError(f"val_fraction={val_fraction} does not fit {b - a} training samples: each split "
                              "needs at least one sample")
        ranges["train"], ranges["val"] = [a, b - n_val], [b - n_val, b]
    name = meta.get("name") or folder.name
    parts = {k: _trusted(x[a:b], t[a:b], scale, n_classes, name) for k, (a, b) in ranges.items()}
    if meta.get("class_names") and len(meta["class_names"]) == n_classes:
        for part in parts.values():
            part.classes = np.array(meta["class_names"])
    return Splits(parts["train"], parts.get("val"), parts.get("test"))
