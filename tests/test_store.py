"""Tests for on-disk stores (sgdlab.data.store / convert): conversion, refusal of broken stores, bounded
memory, batches from a memory map (block-shuffle, prefetch), and training on a store through the CLI."""

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sgdlab.data.converters
import sgdlab.data.datasets as datasets
from sgdlab.batches import BatchLoader, BatchSampler, PrefetchLoader
from sgdlab.data import (Dataset, StoreWriter, convert, load_dataset, load_mnist, make_blobs, open_store,
                         read_meta, synth_mnist_shifted, verify_store)
from sgdlab.errors import ConfigError, DataError


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def write_idx(path, a, compress):
    """IDX: 00 00 <type 0x08 = uint8> <ndim>, big-endian uint32 dims, then the bytes."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    data = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    if compress:
        path.write_bytes(gzip.compress(data, compresslevel=1))
    else:
        path.write_bytes(data)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(progress=False)


@pytest.fixture
def small_store(tmp_path):
    """A 1000-sample uint8 store (x (1000, 4, 6), int labels 0..4, 100 of them validation) and its arrays."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(1000, 4, 6), dtype=np.uint8)
    t = rng.integers(0, 5, size=1000)
    np.savez(tmp_path / "src.npz", x=x, t=t)
    convert(tmp_path / "src.npz", tmp_path / "store", val_samples=100, progress=False)
    return tmp_path / "store", x, t


# ---------------------------------------------------------------- conversion

@pytest.mark.slow  # MNIST
def test_idx_files_gzip_and_plain_convert_to_exactly_load_mnists_arrays(tmp_path, mnist):
    src = tmp_path / "idx"
    src.mkdir()
    x_train = np.concatenate([mnist.train.x, mnist.val.x]).reshape(60000, 28, 28)
    t_train = np.concatenate([mnist.train.t, mnist.val.t]).astype(np.uint8)
    write_idx(src / "train-images-idx3-ubyte.gz", x_train, compress=True)
    write_idx(src / "train-labels-idx1-ubyte.gz", t_train, compress=True)
    write_idx(src / "t10k-images-idx3-ubyte", mnist.test.x.reshape(10000, 28, 28), compress=False)
    write_idx(src / "t10k-labels-idx1-ubyte", mnist.test.t.astype(np.uint8), compress=False)
    meta = convert(src, tmp_path / "store", val_samples=10000, progress=False)
    assert meta["splits"] == {"train": [0, 50000], "val": [50000, 60000], "test": [60000, 70000]}
    s = open_store(tmp_path / "store")
    for mine, theirs in ((s.train, mnist.train), (s.val, mnist.val), (s.test, mnist.test)):
        assert isinstance(mine.x, np.memmap) and mine.x.shape == (len(theirs), 28, 28)
        np.testing.assert_array_equal(mine.x.reshape(len(theirs), 784), theirs.x)
        np.testing.assert_array_equal(mine.t, theirs.t)
        assert mine.t.dtype == theirs.t.dtype == np.int64
        assert mine.scale == theirs.scale and mine.n_classes == theirs.n_classes == 10
        rows = np.array([0, 17, len(theirs) - 1])
        np.testing.assert_array_equal(mine.batch(rows)[0], theirs.batch(rows)[0])
    verify_store(tmp_path / "store", progress=False)


def test_npy_pair_and_float_npz_convert(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 3)).astype(np.float32)
    t = rng.standard_normal((300, 2))
    (tmp_path / "pair").mkdir()
    np.save(tmp_path / "pair" / "X.npy", x)
    np.save(tmp_path / "pair" / "y.npy", t)
    convert(tmp_path / "pair", tmp_path / "a", progress=False)
    a = open_store(tmp_path / "a", val_fraction=0.1)
    assert (len(a.train), len(a.val), a.test) == (270, 30, None)         # val: the last 10% (a view)
    np.testing.assert_array_equal(a.val.x, x[270:])
    np.testing.assert_allclose(a.train.t, t[:270].astype(np.float32))
    assert a.train.scale is None and a.train.n_classes is None
    np.savez(tmp_path / "s.npz", x_train=x[:200], t_train=np.arange(200) % 3, x_test=x[200:], t_test=np.arange(100) % 3)
    meta = convert(tmp_path / "s.npz", tmp_path / "b", progress=False)
    assert meta["splits"] == {"train": [0, 200], "test": [200, 300]} and meta["n_classes"] == 3


def test_csv_larger_than_the_memory_limit_converts_in_chunks(tmp_path):
    """RLIMIT_AS of 200 MB in a subprocess; the CSV is ~210 MB: holding it whole fails there, converting works."""
    rng = np.random.default_rng(2)
    block = rng.integers(0, 256, size=(1000, 101))
    block[:, 0] %= 10
    lines = "\n".join(",".join(map(str, row)) for row in block) + "\n"
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("label," + ",".join(f"p{i}" for i in range(100)) + "\n")
        repeats = 210_000_000 // len(lines) + 1
        for _ in range(repeats):
            f.write(lines)
    size = path.stat().st_size
    limit = 200 << 20
    assert size > limit
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        from sgdlab.data import convert
        try:
            bytearray({size})
            sys.exit("the whole CSV fits under the limit: the test proves nothing")
        except MemoryError:
            pass
        convert({str(path)!r}, {str(tmp_path / 'store')!r}, label_column="label", progress=False)
        print(open("/proc/self/status").read().split("VmPeak:")[1].split()[0])
    """)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) * 1024 < limit
    path.unlink()
    s = open_store(tmp_path / "store")
    n = repeats * 1000
    assert len(s.train) == n and s.train.x.dtype == np.float32 and s.train.t.dtype == np.int64
    for start in (0, n // 2 - 17, n - 1000):
        k = np.arange(start, start + 1000)
        np.testing.assert_array_equal(s.train.x[start:start + 1000], block[k % 1000, 1:].astype(np.float32))
        np.testing.assert_array_equal(s.train.t[start:start + 1000], block[k % 1000, 0])


def test_csv_streaming_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sgdlab.data.converters, "_CSV_CHUNK_VALUES", 4)      # 2 rows per chunk
    bad = tmp_path / "bad.csv"
    bad.write_text("y,a\n1,2\n3,4\n0.5,3\n")
    with pytest.raises(DataError) as e:
        convert(bad, tmp_path / "s1", label_column="y", progress=False)
    assert "line 4: label 0.5 is not a whole number" in one_line(e)
    bad.write_text("y,a\n1,2\n1,x\n")
    with pytest.raises(DataError) as e:
        convert(bad, tmp_path / "s2", label_column="y", progress=False)
    assert "not a number" in one_line(e)
    with pytest.raises(DataError, match=r"label_column='z' is missing: name one of the columns \['y', 'a'\]"):
        convert(bad, tmp_path / "s3", label_column="z", progress=False)
    assert not (tmp_path / "s1" / "meta.json").exists() and not list((tmp_path / "s1").glob("*.npy"))


def test_existing_folder_is_not_overwritten_unless_asked(small_store, tmp_path):
    folder, x, t = small_store
    with pytest.raises(DataError) as e:
        convert(tmp_path / "src.npz", folder, progress=False)
    assert "already exists and is not empty: choose a new folder or pass --overwrite" in one_line(e)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="is not a store"):
        convert(tmp_path / "src.npz", other, overwrite=True, progress=False)
    assert (other / "notes.txt").read_text() == "keep"
    convert(tmp_path / "src.npz", folder, overwrite=True, progress=False)
    assert read_meta(folder)["splits"] == {"train": [0, 1000]}


# ---------------------------------------------------------------- broken stores are refused

def test_truncated_store_is_refused(small_store):
    folder, _, _ = small_store
    with open(folder / "x.npy", "r+b") as f:
        f.truncate(os.path.getsize(folder / "x.npy") - 5)
    with pytest.raises(DataError) as e:
        open_store(folder)
    assert "x.npy is truncated: its header says (1000, 4, 6) uint8 = 24256 bytes, the file has 24251" in one_line(e)


def test_x_and_t_length_mismatch_is_refused(small_store):
    folder, x, t = small_store
    np.save(folder / "t.npy", t[:-1])
    with pytest.raises(DataError) as e:
        open_store(folder)
    assert "t.npy holds 999 samples but meta.json says 1000: x and t lengths differ" in one_line(e)


def test_wrong_dtype_is_refused(small_store):
    folder, x, t = small_store
    np.save(folder / "x.npy", x.astype(np.float32))
    with pytest.raises(DataError) as e:
        open_store(folder)
    assert "x.npy has dtype float32 but meta.json says uint8" in one_line(e)
    with pytest.raises(DataError, match="x dtype float64 is not allowed in a store: use uint8 or float32"):
        StoreWriter(folder.parent / "f64", (3,), np.float64)


def test_checksum_mismatch_is_refused_sampled_on_open_full_on_verify(small_store):
    folder, x, t = small_store
    meta = read_meta(folder)
    data_start = os.path.getsize(folder / "x.npy") - x.nbytes
    with open(folder / "x.npy", "r+b") as f:                  # a byte inside the first sampled piece
        f.seek(data_start + 10)
        f.write(bytes([x.reshape(-1)[10] ^ 1]))
    with pytest.raises(DataError) as e:
        open_store(folder)
    assert "fails its checksum" in one_line(e) and "convert the store again" in one_line(e)
    with open(folder / "x.npy", "r+b") as f:                  # restore it
        f.seek(data_start + 10)
        f.write(bytes([x.reshape(-1)[10]]))
    open_store(folder)
    meta["checksum"]["sha256"]["x.npy"] = "0" * 64               # the full digest no longer matches
    (folder / "meta.json").write_text(json.dumps(meta))
    open_store(folder)                                           # opening reads only the sample: still fine
    with pytest.raises(DataError) as e:
        verify_store(folder, progress=False)
    assert "x.npy fails its full checksum" in one_line(e)
    proc = cli("data", "info", folder, "--verify", "--quiet")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("sgdlab: error: ") and "fails its full checksum" in proc.stderr


def test_missing_or_bad_meta_is_refused(small_store):
    folder, _, _ = small_store
    meta = json.loads((folder / "meta.json").read_text())
    meta["splits"] = {"train": [0, 2000]}
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"split train=\[0, 2000\]: splits are train/val/test row ranges"):
        open_store(folder)
    (folder / "meta.json").unlink()
    with pytest.raises(DataError) as e:
        open_store(folder)
    assert "has no meta.json: it is not a store or its writing did not finish" in one_line(e)


# ---------------------------------------------------------------- memory maps: bounded memory, batches

def rss_file_kb():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_resident_memory_stays_bounded_by_preadv_or_by_dropping_mapped_pages(tmp_path, monkeypatch):
    n = 80_000                                                  # 62.7 MB of uint8 rows of 784
    with StoreWriter(tmp_path / "s", (784,), np.uint8) as w:
        for start in range(0, n, 20000):
            w.append(np.full((20000, 784), start // 20000 + 1, np.uint8), np.zeros(20000, np.int64))
        w.close()

    def growth_kb(budget, pread=True):
        monkeypatch.setattr(datasets, "_RESIDENT_BYTES", budget)
        monkeypatch.setattr(datasets, "_PREAD", pread)
        train = open_store(tmp_path / "s").train
        before = rss_file_kb()
        peak, total = 0, 0.0
        for xb, _ in train.chunks(2000):                          # evaluation's pass over everything
            total += float(xb[:, 0].sum())
            peak = max(peak, rss_file_kb() - before)
        rows = np.sort(np.random.default_rng(0).choice(n, 100, replace=False))
        for _ in range(300):                                       # random batches
            train.batch(rows)
            peak = max(peak, rss_file_kb() - before)
            rows = (rows + 7919) % n
            rows.sort()
        assert total == pytest.approx(20000 * (1 + 2 + 3 + 4) / 255, rel=1e-6)
        return peak

    assert growth_kb(1 << 40) < 4_000                            # preadv: rows never enter the process's RSS
    unbounded = growth_kb(1 << 40, pread=False)                  # through the map, nothing dropped
    bounded = growth_kb(4 << 20, pread=False)                    # through the map, dropped every 4 MB
    assert unbounded > 50_000                                    # the whole file became resident
    assert bounded < 12_000                                      # 4 MB budget + one chunk + fault-around


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this platform")
@pytest.mark.parametrize("mode, batch, ahead", [("shuffle", 64, 64), ("block-shuffle", 8, 8 * 16)])
def test_prefetch_asks_the_kernel_for_the_rows_it_will_gather_next(small_store, mode, batch, ahead, monkeypatch):
    """shuffle: each submitted batch asks for the batch after it; block-shuffle: each new window for the next."""
    folder, _, _ = small_store
    train = open_store(folder).train
    reader = train._xread
    advised = []                                                 # per call: the rows of x.npy it covers

    def fadvise(fd, offset, length, advice):
        assert advice == os.POSIX_FADV_WILLNEED and length % reader.row_bytes == 0
        if fd == reader.file.fileno():
            first = (offset - reader.start) // reader.row_bytes
            advised.append(set(range(first, first + length // reader.row_bytes)))

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    loader = PrefetchLoader(train, BatchSampler(len(train), batch, mode, seed=5))
    for _ in range(4 * ahead // batch):                          # four batches, or four windows, into epoch 1
        loader.next()
    order = loader.sampler.order.tolist()
    loader.close()
    assert len(advised) >= 3
    for k, rows in enumerate(advised[:3]):                       # call k: the rows from ahead * (k + 1) on
        assert set(order[ahead * (k + 1) : ahead * (k + 2)]) <= rows


@pytest.mark.parametrize("mode", ["shuffle", "replacement", "block-shuffle"])
def test_prefetch_gives_the_same_batches_and_exact_sampler_state(small_store, mode):
    folder, x, t = small_store
    train = open_store(folder).train
    plain = BatchLoader(train, BatchSampler(len(train), 64, mode, seed=5))
    ahead = PrefetchLoader(train, BatchSampler(len(train), 64, mode, seed=5))
    memory = BatchLoader(Dataset(x[:900], t[:900]), BatchSampler(900, 64, mode, seed=5))
    assert (plain._window is not None) == (ahead._window is not None) == (mode == "block-shuffle")
    assert memory._window is None                                # block windows only for mapped data
    for i in range(40):                                          # over 2 epochs of 15 batches
        xa, ta = plain.next()
        xb, tb = ahead.next()
        xm, tm = memory.next()
        np.testing.assert_array_equal(xa, xm)
        np.testing.assert_array_equal(ta, tm)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
        a, b = plain.sampler.state_dict(), ahead.sampler.state_dict()
        assert a["position"] == b["position"] and a["rng"] == b["rng"]
        np.testing.assert_array_equal(a["order"], b["order"])
    ahead.close()
    resumed = BatchLoader(train, BatchSampler(len(train), 64, mode, seed=99))
    resumed.sampler.load_state_dict(ahead.sampler.state_dict())
    for _ in range(20):
        np.testing.assert_array_equal(plain.next()[1], resumed.next()[1])


def test_block_shuffle_draws_every_sample_once_per_epoch_from_few_blocks():
    s = BatchSampler(1050, 50, "block-shuffle", seed=0)
    epoch = np.concatenate([s.next().copy() for _ in range(s.iterations_per_epoch)])
    np.testing.assert_array_equal(np.sort(epoch), np.arange(1050))
    first = epoch[:50]
    assert len(np.unique(first // 50)) <= 16 < len(np.unique(np.sort(np.random.default_rng(0).permutation(1050)[:50]) // 50))
    assert not np.array_equal(epoch, np.arange(1050))
    nxt = np.concatenate([s.next().copy() for _ in range(s.iterations_per_epoch)])
    assert not np.array_equal(nxt, epoch) and np.array_equal(np.sort(nxt), np.arange(1050))


# ---------------------------------------------------------------- synth and training end to end

@pytest.mark.slow  # MNIST
def test_synth_mnist_shifted_is_seeded_and_mnist_like(tmp_path, mnist):
    meta = synth_mnist_shifted(tmp_path / "a", 3000, seed=4, val_samples=500, test_samples=200, progress=False)
    assert meta["splits"] == {"train": [0, 3000], "val": [3000, 3500], "test": [3500, 3700]}
    synth_mnist_shifted(tmp_path / "b", 3000, seed=4, val_samples=500, test_samples=200, progress=False)
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert a.train.x.dtype == np.uint8 and a.train.n_classes == 10
    assert np.bincount(a.train.t, minlength=10).min() > 200
    ink = a.train.x.astype(np.float64).mean()
    assert abs(ink - mnist.train.x.mean()) < 0.15 * mnist.train.x.mean()  # shifted and rotated, same ink
    originals = {row.tobytes() for row in mnist.train.x}
    unchanged = sum(row.tobytes() in originals for row in np.asarray(a.train.x))
    assert unchanged < 0.02 * 3000                               # only the no-shift, no-rotation draws (1/225)
    assert not {row.tobytes() for row in np.asarray(a.test.x)} & originals


def test_train_on_a_store_through_the_cli(tmp_path):
    ds = make_blobs(n_samples=1200, n_classes=3, n_features=5, spread=1.0, seed=0)
    np.savez(tmp_path / "blobs.npz", x=ds.x, t=ds.t)
    proc = cli("data", "convert", tmp_path / "blobs.npz", tmp_path / "store", "--val-samples", "200", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = cli("data", "info", tmp_path / "store")
    assert proc.returncode == 0 and "1200 samples, x (5,) float32" in proc.stdout
    assert "train 1000 [0, 1000), val 200 [1000, 1200)" in proc.stdout
    proc = cli("train", "--dataset", tmp_path / "store", "--layers", "16", "--epochs", "3", "--batch-size", "50",
               "--sampling", "block-shuffle", "--prefetch", "--lr", "0.1", "--out", tmp_path / "run", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert summary["status"] == "completed" and summary["iterations"] == 60
    assert summary["val_accuracy"] > 0.9 and summary["test_accuracy"] is None
    assert config["prefetch"] is True and config["sampling"] == "block-shuffle"
    (tmp_path / "store" / "t.npy").write_bytes(b"junk")
    proc = cli("train", "--dataset", tmp_path / "store", "--out", tmp_path / "run2", "--quiet")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "t.npy is not a readable .npy file" in proc.stderr
    assert not (tmp_path / "run2").exists()


def test_load_dataset_opens_a_store_and_bad_settings_are_one_line(small_store):
    folder, x, t = small_store
    s = load_dataset(folder, val_fraction=0.5)
    assert (len(s.train), len(s.val)) == (900, 100)              # the store's own val split wins
    np.testing.assert_array_equal(s.val.t, t[900:])
    assert isinstance(s.train, Dataset) and s.train.is_mapped and not Dataset(x, t).is_mapped
    with pytest.raises(ConfigError, match="val_samples=1000 is not allowed: use fewer than the 1000"):
        convert(folder.parent / "src.npz", folder.parent / "v", val_samples=1000, progress=False)


def test_rows_read_from_the_file_equal_rows_in_memory(small_store):
    folder, x, t = small_store
    mapped, memory = open_store(folder).train, Dataset(x[:900], t[:900])
    rng = np.random.default_rng(3)
    cases = [np.sort(rng.choice(900, 64, replace=False)),            # scattered: one preadv a row or span
             np.sort(rng.integers(0, 900, 64)),                      # with duplicates (replacement)
             np.arange(300, 364),                                    # contiguous: one preadv
             rng.permutation(900)[:64],                              # unsorted
             np.array([-1, 0, 5, -900, 899])]                        # negative indices wrap
    for idx in cases:
        xa, ta = mapped.batch(idx)
        xb, tb = memory.batch(idx)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
    got = np.concatenate([xb for xb, _ in mapped.chunks(128)])
    np.testing.assert_array_equal(got, x[:900].reshape(900, -1) * np.float32(1 / 255))


@pytest.mark.parametrize("mode", ["shuffle", "block-shuffle", "replacement"])
def test_checkpoint_mid_run_with_prefetch_resumes_bit_for_bit(mode):
    from sgdlab.model import MLP
    from sgdlab.optimizers import SGD
    from sgdlab.training import Trainer

    ds = make_blobs(n_samples=450, n_classes=3, n_features=2, seed=0)
    saved = []

    def trainer(**kw):
        return Trainer(MLP([2, 16, 3], seed=0), ds, SGD(lr=0.1), batch_size=32, iterations=60, sampling=mode,
                       progress=False, prefetch=True, **kw)

    straight = trainer(checkpoint=lambda t: saved.append(t.state_dict()) if t.iteration == 37 else None,
                       checkpoint_every=37)
    straight.run()                                             # the checkpoint is taken with batch 38 in flight
    resumed = trainer()
    resumed.load_state_dict(saved[0])
    resumed.run()
    assert saved[0]["iteration"] == 37 and resumed.iteration == 60
    np.testing.assert_array_equal(straight.model.params, resumed.model.params)
