"""#22 "Tracebacks instead of one line" and "Wrong results": each case is one line and exit 2, or the right number."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sgdlab.checkpoint import content_digest, read_safetensors
from sgdlab.errors import SgdlabError
from sgdlab.safetensors_io import safetensors_bytes


def sgdlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("toml, fragment", [("train = 5\n", "train = 5"), ("[[train]]\nlr = 1\n", "[train] table"),
                                           ("train = [1, 2]\n", "top level")])
def test_toml_train_that_is_not_a_table(tmp_path, toml, fragment):
    (tmp_path / "c.toml").write_text(toml)
    assert_one_line(sgdlab("train", "--config", tmp_path / "c.toml", "--quiet", "--out", tmp_path / "r"), fragment)


def test_gradcheck_negative_samples_and_evaluate_negative_seed(tmp_path):
    assert_one_line(sgdlab("gradcheck", "--dataset", "spirals", "--samples", "-5"), "--samples", ">= 1")
    assert_one_line(sgdlab("evaluate", "--model", tmp_path / "m.safetensors", "--dataset", "spirals", "--seed", "-1"),
                    "--seed", ">= 0")


@pytest.mark.parametrize("lr", ["0:inf", "-inf:1", "nan:1", "1e-9:inf:log"])
def test_sweep_infinite_range(tmp_path, lr):
    assert_one_line(sgdlab("sweep", "--dataset", "spirals", f"--lr={lr}", "--quiet", "--out", tmp_path / "s"),
                    "finite")


def _checkpoint_run(tmp_path):
    from sgdlab.config import TrainConfig
    from sgdlab.run import train_run

    out = tmp_path / "run"
    config = TrainConfig.from_dict({"dataset": "spirals", "layers": [4], "epochs": 2, "batch_size": 50})
    train_run(config, out, quiet=True, pictures=False)
    return out


def _forge_checkpoint(path, change):
    tensors, meta = read_safetensors(path)
    state = json.loads(meta["state"])
    change(state, tensors)
    meta["state"] = json.dumps(state)
    meta["sha256"] = content_digest(tensors, meta)
    path.write_bytes(safetensors_bytes(tensors, meta))


@pytest.mark.parametrize("change", [
    lambda s, t: s.update(iteration=float("inf")),
    lambda s, t: s.update(seconds=float("nan"), iteration=float("-inf")),
    lambda s, t: t.update({"params": np.zeros(3, np.float32)}),
    lambda s, t: t.update({"last_good_params": np.zeros((2, 2), np.float32)}),
])
def test_forged_checkpoints_are_one_line_errors(tmp_path, change):
    out = _checkpoint_run(tmp_path)
    _forge_checkpoint(out / "checkpoint.safetensors", change)
    assert_one_line(sgdlab("train", "--resume", out, "--quiet"), "checkpoint")


@pytest.mark.parametrize("meta_change, fragment", [
    (lambda m: m["splits"].update(train=[0.0, 5.5]), "split"),
    (lambda m: m.update(scale="big"), "scale"),
    (lambda m: m.update(x={"shape": [[10, 2]], "dtype": "uint8"}), "x"),
    (lambda m: m.update(n_classes=10 ** 12), "n_classes"),
])
def test_store_meta_with_wrong_types_is_one_line(tmp_path, meta_change, fragment):
    from sgdlab.data import convert

    np.savez(tmp_path / "src.npz", x=np.zeros((10, 2), np.uint8), t=np.arange(10) % 2)
    convert(tmp_path / "src.npz", tmp_path / "store", progress=False)
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    meta_change(meta)
    (tmp_path / "store" / "meta.json").write_text(json.dumps(meta))
    assert_one_line(sgdlab("data", "info", tmp_path / "store", "--quiet"), fragment)


@pytest.mark.parametrize("edit", [
    lambda text: text.replace(",ok,", ",fine,", 1),
    lambda text: text.replace("\n", "\nx,1\n", 1),
    lambda text: text[: len(text) // 2],
    lambda text: text.split("\n", 1)[0] + "\n" + "1," * 40 + "\n",
])
def test_edited_sweep_table_on_resume_is_one_line(tmp_path, edit):
    out = tmp_path / "s"
    args = ("sweep", "--dataset", "spirals", "--layers", "4", "--epochs", "1", "--lr", "0.1,0.2", "--workers", "1",
            "--quiet", "--out", out)
    assert sgdlab(*args).returncode in (0, 1)      # 1: no trial ended ok (one epoch is too short)
    table = (out / "sweep.csv").read_text()
    (out / "sweep.csv").write_text(edit(table))
    result = sgdlab(*args, "--resume")
    assert result.returncode in (0, 1, 2) and "Traceback" not in result.stderr, result.stderr
    if result.returncode == 2:
        assert_one_line(result, "sweep")


def test_truncated_sweep_json_on_resume_is_one_line(tmp_path):
    out = tmp_path / "s"
    args = ("sweep", "--dataset", "spirals", "--layers", "4", "--epochs", "1", "--lr", "0.1", "--workers", "1",
            "--quiet", "--out", out)
    assert sgdlab(*args).returncode in (0, 1)
    spec = (out / "sweep.json").read_text()
    for broken in (spec[: len(spec) // 2], "[" * 5000, '{"base": 1e999}'):
        (out / "sweep.json").write_text(broken)
        assert_one_line(sgdlab(*args, "--resume"), "sweep")


def test_csv_with_a_bom_keeps_its_first_row(tmp_path):
    from sgdlab.checkpoint import save_model
    from sgdlab.model import MLP

    save_model(MLP([2, 3, 2], seed=0), tmp_path / "m.safetensors")
    (tmp_path / "x.csv").write_bytes("\ufeff1.0,2.0\n3.0,4.0\n".encode("utf-8"))
    result = sgdlab("predict", "--model", tmp_path / "m.safetensors", tmp_path / "x.csv")
    assert result.returncode == 0 and len(result.stdout.split()) == 2, result


def test_converting_a_store_keeps_its_splits(tmp_path):
    from sgdlab.data import convert, open_store

    np.savez(tmp_path / "s.npz", x_train=np.zeros((10, 2), np.float32), t_train=np.arange(10) % 2,
             x_test=np.ones((4, 2), np.float32), t_test=np.arange(4) % 2)
    convert(tmp_path / "s.npz", tmp_path / "a", val_samples=3, progress=False)
    meta = convert(tmp_path / "a", tmp_path / "b", progress=False)
    assert meta["splits"] == {"train": [0, 7], "val": [7, 10], "test": [10, 14]}
    splits = open_store(tmp_path / "b")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (7, 3, 4)


def test_negative_label_in_the_mnist_cache_is_refused(tmp_path):
    from sgdlab.data import mnist

    arrays = {"x_train": np.zeros((60000, 784), np.uint8), "t_train": np.arange(60000) % 10,
              "x_test": np.zeros((10000, 784), np.uint8), "t_test": np.arange(10000) % 10}
    arrays["t_train"][5] = -3
    mnist._write_mnist_cache(tmp_path / "mnist", arrays)
    with pytest.raises(SgdlabError, match="corrupt"):
        mnist._read_mnist_cache(tmp_path / "mnist")


def test_cross_entropy_cannot_run_to_minus_infinity(tmp_path):
    """The -9.6e17 case: float (n, 2) targets with the default loss are refused before a step is taken."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((80, 3)), t=rng.standard_normal((80, 2)) * 5)
    result = sgdlab("train", "--dataset", tmp_path / "d.npz", "--epochs", "3", "--lr", "1", "--quiet",
                    "--out", tmp_path / "run")
    assert_one_line(result, "softmax_cross_entropy", "mse")
    assert not (tmp_path / "run" / "summary.json").exists()
