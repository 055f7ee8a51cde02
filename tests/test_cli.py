"""The command line end to end, in subprocesses, on small real data."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sgdlab.checkpoint import load_model
from sgdlab.run import SUMMARY_KEYS
from sgdlab.training import METRIC_COLUMNS


def sgdlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def read_metrics(folder):
    with open(os.path.join(folder, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and lines[0].startswith("sgdlab")
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_on_digits_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    result = sgdlab("train", "--dataset", "digits", "--layers", "32", "--epochs", "4", "--batch-size", "32",
                    "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("epoch ") >= 4 and "test accuracy" in result.stdout
    for name in ("config.json", "metrics.csv", "summary.json", "model.safetensors", "loss.png", "accuracy.png"):
        assert (out / name).stat().st_size > 0, name
    rows = read_metrics(out)
    assert list(rows[0])[: len(METRIC_COLUMNS)] == METRIC_COLUMNS and len(rows) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary) and summary["status"] == "completed"
    assert summary["test_accuracy"] > 0.8
    config = json.loads((out / "config.json").read_text())
    assert config["layers"] == [32] and config["epochs"] == 4
    model = load_model(out / "model.safetensors")
    assert model.params.size == 64 * 32 + 32 + 32 * 10 + 10
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_gives_identical_metrics(tmp_path):
    folders = []
    for name in ("a", "b"):
        result = sgdlab("train", "--dataset", "spirals", "--layers", "16,16", "--epochs", "5", "--seed", "3",
                        "--batch-size", "20", "--quiet", "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        folders.append([{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / name)])
    assert folders[0] == folders[1] and len(folders[0]) == 5


def test_toml_config_with_flag_override(tmp_path):
    (tmp_path / "c.toml").write_text('dataset = "spirals"\nlayers = [8]\nepochs = 2\noptimizer = "sgd"\n')
    result = sgdlab("train", "--config", tmp_path / "c.toml", "--epochs", "3", "--quiet", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (config["epochs"], config["layers"], config["optimizer"]) == (3, [8], "sgd")


def test_existing_run_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"dataset": "spirals", "layers": [8], "optimizer": "sgd", "lr": 0.1}')
    (out / "metrics.csv").write_text("precious")     # an earlier run's folder (--overwrite replaces only those)
    result = sgdlab("train", "--dataset", "spirals", "--epochs", "1", "--out", out)
    assert_one_line_error(result, "already exists", "--overwrite")
    assert (out / "metrics.csv").read_text() == "precious"
    result = sgdlab("train", "--dataset", "spirals", "--epochs", "1", "--quiet", "--out", out, "--overwrite")
    assert result.returncode == 0 and (out / "summary.json").exists()


@pytest.fixture
def bad_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 4)).astype(np.float32)
    nan_x = x.copy()
    nan_x[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=nan_x, t=np.arange(40) % 2)
    np.savez(tmp_path / "one.npz", x=x, t=np.full(40, -1))
    np.savez(tmp_path / "short.npz", x=x, t=np.arange(39) % 2)
    return tmp_path


@pytest.mark.parametrize("args,fragments", [
    (["--dataset", "imagenet"], ["dataset='imagenet' is unknown"]),
    (["--lr", "-0.5"], ["lr=-0.5 is not allowed"]),
    (["--lr", "abc"], ["'abc' is not a number"]),
    (["--batch-size", "0"], ["batch_size=0 is not allowed"]),
    (["--dataset", "spirals", "--batch-size", "5000"], ["batch_size=5000 is larger than the"]),
    (["--layers", "0"], ["layers='0' is not allowed", "whole number >= 1"]),
    (["--layers", "10,x"], ["layers='10,x'"]),
    (["--optimizer", "lbfgs"], ["optimizer='lbfgs' is unknown"]),
    (["--dataset", "{tmp}/missing.npz"], ["missing.npz"]),
    (["--dataset", "{tmp}/nan.npz"], ["NaN"]),
    (["--dataset", "{tmp}/one.npz"], ["one class only", "-1"]),   # -1 alone: one class (-1/1 labels are fine)
    (["--dataset", "{tmp}/short.npz"], ["40", "39"]),
    (["--config", "{tmp}/none.toml"], ["does not exist"]),
    (["--no-such-flag"], ["unrecognized arguments: --no-such-flag"]),
])
def test_bad_input_is_one_line_and_exit_2(bad_files, args, fragments):
    args = [a.replace("{tmp}", str(bad_files)) for a in args]
    result = sgdlab("train", *args, "--epochs", "1", "--quiet", "--out", bad_files / "out")
    assert_one_line_error(result, *fragments)
    assert not (bad_files / "out").exists()


def test_divergence_exits_1_with_a_hint_and_no_nan_model(tmp_path):
    out = tmp_path / "run"
    result = sgdlab("train", "--dataset", "digits", "--optimizer", "sgd", "--lr", "50", "--epochs", "5", "--quiet",
                    "--out", out)
    assert result.returncode == 1, result.stderr
    assert "lr=50 diverged at iteration" in result.stdout and "try lr <= 5" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert np.all(np.isfinite(load_model(out / "model.safetensors").params))


def test_gradcheck_passes_on_digits():
    result = sgdlab("gradcheck", "--dataset", "digits", "--layers", "12", "--samples", "8")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # MNIST
def test_default_train_is_the_main_job_on_mnist(tmp_path):
    """README's first command: `sgdlab train` with no flags reaches >= 97.5% test accuracy on MNIST."""
    result = sgdlab("train", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.975, summary
    assert len(read_metrics(runs[0])) == 15


@pytest.mark.parametrize("patience", [None, 1])
def test_summary_accuracies_are_those_of_the_saved_model(tmp_path, patience):
    """Without a restore the last evaluation is reused; after restore_best the restored model is measured.
    (With full train metrics: running ones are the batches' means, which summary.json then reports as they are.)"""
    from sgdlab.config import TrainConfig
    from sgdlab.run import load_splits, train_run

    config = TrainConfig(dataset="spirals", layers=(16,), optimizer="sgd", lr=2.0, batch_size=10, epochs=12,
                         patience=patience, train_metrics="full")
    summary = train_run(config, tmp_path / "run", quiet=True, pictures=False)
    train, val, _ = load_splits(config)
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert summary["train_accuracy"] == pytest.approx(model.evaluate(train)[1], abs=1e-12)
    assert summary["val_accuracy"] == pytest.approx(model.evaluate(val)[1], abs=1e-12)
