"""#22: every reader of a file sgdlab wrote turns any damage into one SgdlabError (the CLI's one line, exit 2).

Each file kind is written once for real, then >= 200 seeded mutations of it (byte flips, truncations,
insertions, and JSON-aware edits: wrong types, huge/negative/non-finite numbers, deep nesting, missing
keys) are fed to its reader in a child process whose address space may grow by at most 1 GB.  Any
exception other than SgdlabError/OSError -- a traceback in the CLI -- or a MemoryError fails the test.
"""

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

MUTATIONS = 200
LIMIT = 1 << 30


# -- mutations -----------------------------------------------------------------------------------------

ODD_VALUES = [None, True, -1, 0, 2 ** 62, 10 ** 40, 10 ** 9, 300_000, -(10 ** 12), 1e308, -0.5, 0.5, "text", "", [], {}, [[[[1]]]],
              {"a": {"b": [1, {"c": None}]}}, "\u00b2", "9" * 4000, [1, 2, 3] * 50]


def json_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from json_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:20]):
            yield from json_paths(v, path + (i,))


def mutate_json(value, rng):
    """A copy of ``value`` with one node replaced, deleted, or nested deeply; as text (maybe with NaN)."""
    value = json.loads(json.dumps(value))
    paths = list(json_paths(value))
    path = paths[rng.randrange(len(paths))]
    if not path:
        return rng.choice(["[" * 3000 + "]" * 3000, "NaN", "Infinity", "\"x\"", "[]", "{}", "null"])
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    action = rng.random()
    if isinstance(parent[path[-1]], int) and not isinstance(parent[path[-1]], bool) and rng.random() < 0.5:
        parent[path[-1]] = rng.choice([10 ** 9, 2 ** 40, 300_000, -1, 0])      # a size that asks for too much
    elif action < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
    elif action < 0.25:
        parent[path[-1]] = json.loads("[" * 200 + "1" + "]" * 200)
    elif action < 0.35:
        parent[path[-1]] = float(rng.choice(["inf", "-inf", "nan"]))
    else:
        parent[path[-1]] = rng.choice(ODD_VALUES)
    return json.dumps(value)


def mutate_bytes(data, rng):
    data = bytearray(data)
    action = rng.random()
    if action < 0.3 and data:
        del data[rng.randrange(len(data)):]
    elif action < 0.6:
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
    elif action < 0.8:
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.choice([b"\r", b"\x00", b"\n\n", b",", b"\"", b"NaN", b"1e999", b"-", b"\xff\xfe"])
    return bytes(data)


def mutate_csv(text, rng):
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    cells = lines[i].rstrip("\n").split(",")
    j = rng.randrange(len(cells))
    cells[j] = str(rng.choice(ODD_VALUES[:12] + ["nan", "inf", "1e999", "ok", "diverged", "\r", "-1"]))
    if rng.random() < 0.2:
        cells.append("extra")
    lines[i] = ",".join(cells) + "\n"
    return "".join(lines)


def rewrite_safetensors(path, rng):
    """Mutate a safetensors file's metadata JSON values (recomputing the checkpoint's SHA-256, as a forger would)."""
    from sgdlab.checkpoint import content_digest, read_safetensors
    from sgdlab.safetensors_io import safetensors_bytes

    tensors, meta = read_safetensors(path)
    action = rng.random()
    if action < 0.6:
        keys = sorted(k for k in meta if k != "sha256")
        key = rng.choice([k for k in keys if k in ("architecture", "state")] or keys) if rng.random() < 0.6 else \
            rng.choice(keys)
        try:
            meta[key] = mutate_json(json.loads(meta[key]), rng)
        except ValueError:
            meta[key] = rng.choice(["", "x", "{}", "sgdlab.model/2", "null"])
    elif action < 0.8 and tensors:
        name = rng.choice(sorted(tensors))
        shape = tensors[name].shape
        tensors[name] = rng.choice([np.zeros(shape[:-1] + (shape[-1] + 1,) if shape else (2,), np.float32),
                                    np.full(shape, np.inf, np.float32), np.zeros(shape, np.float64),
                                    np.zeros(shape, np.int64), np.zeros((0,), np.float32)])
    else:
        tensors.pop(rng.choice(sorted(tensors)), None)
    if "sha256" in meta:
        meta["sha256"] = content_digest(tensors, meta)
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, meta))


# -- the readers, and a run of mutations in a memory-limited child -----------------------------------------

def _read_model(folder):
    from sgdlab.checkpoint import load_model

    model = load_model(os.path.join(folder, "model.safetensors"))
    model.predict(np.zeros((1, model.n_in), model.params.dtype))


def _read_checkpoint(folder):
    from sgdlab.run import train_run

    train_run(None, folder, resume=True, quiet=True, pictures=False)


def _read_store(folder):
    from sgdlab.data import open_store

    splits = open_store(folder)
    splits.train.batch(np.arange(min(4, len(splits.train))))


def _read_sweep(folder):
    from sgdlab.config import TrainConfig
    from sgdlab.sweep import Sweep, build_space, format_table

    base = TrainConfig.from_dict(SWEEP_BASE)
    _, space = build_space({"lr": "0.05,0.1"})
    sweep = Sweep(base, space, folder, None, 1, resume=True, overwrite=False)
    format_table(sweep.table())
    sweep.winner()


SMALL_MNIST = {"x_train": (60, 784), "t_train": (60,), "x_test": (10, 784), "t_test": (10,)}


def _read_cache(folder):
    """The MNIST cache reader, on a cache of 60 + 10 images (its expected shapes shrunk to match)."""
    from pathlib import Path

    from sgdlab.data import mnist

    real_shapes, mnist._MNIST_SHAPES = mnist._MNIST_SHAPES, SMALL_MNIST
    try:  # restored: later tests in this process read the real cache
        arrays = mnist._read_mnist_cache(Path(folder))
    finally:
        mnist._MNIST_SHAPES = real_shapes
    assert arrays is not None


READERS = {"model": _read_model, "checkpoint": _read_checkpoint, "store": _read_store, "sweep": _read_sweep,
           "cache": _read_cache}
SWEEP_BASE = {"dataset": "spirals", "layers": [4], "epochs": 1, "train_metrics": "running"}


def mutate_folder(kind, folder, rng):
    """Apply one mutation to one of the folder's files."""
    names = sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isfile(os.path.join(folder, n)))
    name = rng.choice(names)
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
        data = f.read()
    roll = rng.random()
    if name.endswith(".safetensors") and roll < 0.6:
        try:
            rewrite_safetensors(path, rng)
            return f"{name}: metadata"
        except ValueError:          # already broken by an earlier mutation: damage its bytes instead
            pass
    if name.endswith(".json") and roll < 0.75:
        try:
            text = mutate_json(json.loads(data), rng)
        except ValueError:
            text = data.decode("utf-8", "replace")
        with open(path, "w") as f:
            f.write(text)
        return f"{name}: json"
    if name.endswith(".csv") and roll < 0.7:
        with open(path, "w") as f:
            f.write(mutate_csv(data.decode("utf-8", "replace"), rng))
        return f"{name}: csv"
    if name.endswith(".npy") and roll < 0.5:
        cut = data.index(b"\n") + 1 if b"\n" in data[:4096] else 128
        head = data[:cut].decode("latin1")
        head = head.replace("(", rng.choice(["(999999999999, ", "(-1, ", "(0, ", "(3, 0, "]), 1) if roll < 0.25 \
            else head.replace("'descr': '", rng.choice(["'descr': 'O", "'descr': '>", "'descr': '|S9"]) + "'", 1)
        head = head.encode("latin1")
        data = data[:8] + len(head[10:]).to_bytes(2, "little") + head[10:] + data[cut:] if len(head) < 65536 else data
        with open(path, "wb") as f:
            f.write(data)
        return f"{name}: npy header"
    with open(path, "wb") as f:
        f.write(mutate_bytes(data, rng))
    return f"{name}: bytes"


def run_mutations(kind, pristine, scratch, n, seed):
    """In this (memory-limited) process: n mutated copies of ``pristine`` through the reader; returns failures."""
    from sgdlab.errors import SgdlabError

    rng = random.Random(seed)
    failures, refused = [], 0
    for i in range(n):
        target = os.path.join(scratch, f"m{i}")
        shutil.copytree(pristine, target)
        what = mutate_folder(kind, target, rng)
        if rng.random() < 0.3:
            what += " + " + mutate_folder(kind, target, rng)
        try:
            READERS[kind](target)
        except (SgdlabError, OSError):
            refused += 1
        except BaseException as exc:   # noqa: BLE001 - anything else is a traceback in the CLI
            failures.append(f"#{i} {what}: {type(exc).__name__}: {str(exc)[:160]}")
        shutil.rmtree(target, ignore_errors=True)
    return {"failures": failures, "refused": refused, "n": n}


def _child(kind, pristine, scratch, n, seed):
    code = (f"import json, resource, runpy, sys\n"
            f"import numpy, sgdlab, sgdlab.run, sgdlab.sweep, sgdlab.data, sgdlab.checkpoint, sgdlab.training\n"
            f"vm = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
            f"resource.setrlimit(resource.RLIMIT_AS, (vm + {LIMIT}, vm + {LIMIT}))\n"
            f"ns = runpy.run_path({__file__!r})\n"
            f"print(json.dumps(ns['run_mutations']({kind!r}, {pristine!r}, {scratch!r}, {n}, {seed})))\n")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "SGDLAB_DATA": os.path.join(scratch, "no-data")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- pristine files of each kind -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    from sgdlab.config import TrainConfig
    from sgdlab.data import convert
    from sgdlab.data.mnist import _write_mnist_cache
    from sgdlab.run import train_run
    from sgdlab.sweep import Sweep, build_space

    root = tmp_path_factory.mktemp("pristine")
    folders = {}
    config = TrainConfig.from_dict({"dataset": "spirals", "layers": [4], "epochs": 2, "batch_size": 50,
                                    "checkpoint_every": 3})
    train_run(config, root / "run", quiet=True, pictures=False)
    folders["model"] = folders["checkpoint"] = root / "run"
    rng = np.random.default_rng(0)
    np.savez(root / "src.npz", x=rng.integers(0, 255, (40, 6), dtype=np.uint8), t=np.arange(40) % 3)
    convert(root / "src.npz", root / "store", val_samples=8, progress=False)
    folders["store"] = root / "store"
    _, space = build_space({"lr": "0.05,0.1"})
    base = TrainConfig.from_dict(SWEEP_BASE)
    sweep = Sweep(base, space, root / "sweep", None, 1)
    sweep._total = sweep._done = 0
    for spec in sweep.specs(space.points(), 1, 0):
        from sgdlab.sweep import failed_result

        sweep._record(spec, {**failed_result(spec, "x"), "status": "ok", "best_val_acc": 0.5, "best_val_loss": 0.7,
                             "best_epoch": "1", "initial_loss": 1.1, "test_acc": 0.5, "run_status": "completed",
                             "seconds": 0.1})
    shutil.rmtree(root / "sweep" / "trials")
    folders["sweep"] = root / "sweep"
    small = {"x_train": np.zeros((60, 784), np.uint8), "t_train": np.arange(60) % 10,
             "x_test": np.zeros((10, 784), np.uint8), "t_test": np.arange(10) % 10}
    _write_mnist_cache(root / "cache", small)
    folders["cache"] = root / "cache"
    for kind, folder in folders.items():
        READERS[kind](str(folder)) if kind != "checkpoint" else None
    return folders


@pytest.mark.parametrize("kind", sorted(READERS))
def test_mutated_files_are_refused_in_one_line(kind, pristine, tmp_path):
    n = MUTATIONS
    source = pristine[kind]
    if kind == "checkpoint":        # the reader resumes the run: keep its folder's checkpoint as the mutated file
        source = tmp_path / "run"
        shutil.copytree(pristine[kind], source)
        for name in os.listdir(source):
            if name not in ("checkpoint.safetensors", "config.json"):
                os.unlink(source / name)
    if kind == "model":
        source = tmp_path / "run"
        shutil.copytree(pristine[kind], source)
        for name in os.listdir(source):
            if name != "model.safetensors":
                os.unlink(source / name)
    results = [_child(kind, str(source), str(tmp_path), n, seed=22)]
    failures = [f for r in results for f in r["failures"]]
    total = sum(r["n"] for r in results)
    assert total >= MUTATIONS and not failures, "\n".join(failures[:15])
    assert sum(r["refused"] for r in results) >= total // 4      # the mutations do damage that is noticed
