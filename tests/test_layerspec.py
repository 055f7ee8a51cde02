"""The ``layers`` grammar (conv nets as text) and conv nets through the CLI, run folders, sweeps and resume."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sgdlab.checkpoint import load_model
from sgdlab.config import TrainConfig
from sgdlab.conv import Conv2D, Flatten, MaxPool2D
from sgdlab.errors import ConfigError
from sgdlab.layers import Dense
from sgdlab.layerspec import has_images, image_layers, parse_layers
from sgdlab.run import build_model
from test_cli import assert_one_line_error, read_metrics, sgdlab
from test_reliability import start, wait_for_checkpoint

CONV_RUN = ["--dataset", "digits", "--layers", "conv6k3p1,pool2,conv8k3,avgpool2,24", "--batch-size", "16",
            "--seed", "4", "--quiet"]


def test_items_are_parsed_to_one_canonical_form():
    assert parse_layers("Conv16K5, pool2,conv32k5s1p0, maxpool2,AvgPool2,100") == \
        ("conv16k5", "pool2", "conv32k5", "pool2", "avgpool2", 100)
    assert parse_layers(["conv8k3s2p1", 64, "10"]) == ("conv8k3s2p1", 64, 10)
    assert parse_layers("256,128") == (256, 128) and parse_layers("") == () and parse_layers(7) == (7,)
    assert has_images(parse_layers("conv4k3,10")) and not has_images((10,)) and not has_images(())
    config = TrainConfig(layers="conv16k5,pool2,100")
    assert config.to_dict()["layers"] == ["conv16k5", "pool2", 100]
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))).layers == config.layers


@pytest.mark.parametrize("value, match", [
    ("conv0k5,pool2,100", "item 'conv0k5': zero channels"),
    ("conv16k0", "a kernel needs at least 1 pixel"),
    ("conv16k5s0", "the stride must be at least 1"),
    ("pool0", "a pooling window needs at least 1 pixel"),
    ("conv16,100", "item 'conv16': use N"),
    ("100,conv16k5", "comes after the Dense layer 100: image layers (conv, pool) come first"),
    ([100, 0], "every hidden size must be a whole number >= 1"),
    ("10,x", "layers='10,x' is not allowed"),
])
def test_bad_items_are_named(value, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(layers=value)


def test_image_layers_build_the_chapter_7_network():
    layers = image_layers(parse_layers("conv16k5,pool2,conv32k5,pool2,100"), (1, 28, 28), 10)
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "ReLU",
                     "Dense"]
    assert isinstance(layers[6], Flatten) and isinstance(layers[7], Dense) and layers[7].shape == (512, 100)
    assert isinstance(layers[0], Conv2D) and layers[0].w_shape == (16, 1, 5, 5) and isinstance(layers[2], MaxPool2D)


@pytest.mark.parametrize("spec, shape, match", [
    ("conv8k9,10", (8, 8), "its 9x9 kernel is larger than the 8x8 image it gets"),
    ("conv8k3,pool4,10", (8, 8), "4 does not divide the 6x6 image it gets"),
    ("conv8k3,10", (64,), "need images, but dataset 'digits' has flat samples of 64 features"),
])
def test_specs_that_do_not_fit_the_images_are_refused(spec, shape, match):
    with pytest.raises(ConfigError, match=match):
        build_model(TrainConfig(dataset="digits", layers=spec), shape, 10, "classification")


def test_a_two_dimensional_image_is_one_channel():
    model = build_model(TrainConfig(layers="conv2k3,5"), (6, 6), 3, "classification")
    assert model.input_shape == (1, 6, 6) and model.layers[0].w_shape == (2, 1, 3, 3)


@pytest.mark.parametrize("layers, fragment", [
    ("conv0k5,pool2,100", "zero channels"),
    ("conv8k9,32", "its 9x9 kernel is larger than the 8x8 image"),
    ("conv8k3,pool4,32", "4 does not divide the 6x6 image"),
    ("conv8kx", "item 'conv8kx'"),
])
def test_cli_refuses_bad_specs_in_one_line(tmp_path, layers, fragment):
    result = sgdlab("train", "--dataset", "digits", "--layers", layers, "--out", tmp_path / "run", "--quiet")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_help_documents_the_grammar():
    result = sgdlab("train", "--help")
    assert "conv16k5,pool2,conv32k5,pool2,100" in result.stdout and "avgpool" in result.stdout


def test_conv_run_folder_checkpoint_predict_evaluate_and_gradcheck(tmp_path):
    out = tmp_path / "conv"
    result = sgdlab("train", *CONV_RUN, "--epochs", "6", "--early-stopping", "3", "--out", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] in ("completed", "early_stopped") and summary["test_accuracy"] > 0.8
    assert len(read_metrics(out)) == summary["epochs_run"]
    for name in ("loss.png", "accuracy.png", "model.safetensors", "config.json"):
        assert (out / name).stat().st_size > 0
    model = load_model(out / "model.safetensors")
    assert model.input_shape == (1, 8, 8) and type(model.layers[0]).__name__ == "Conv2D"
    assert model.layers[0].W.shape == (6, 1, 3, 3)
    evaluated = sgdlab("evaluate", "--model", out / "model.safetensors", "--dataset", "digits", "--seed", "4")
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"{summary['test_accuracy']:.4f}" in evaluated.stdout
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    predicted = sgdlab("predict", "--model", out / "model.safetensors", tmp_path / "x.npy")
    assert predicted.returncode == 0, predicted.stderr
    assert [int(v) for v in predicted.stdout.split()] == model.predict(x).tolist()
    from sgdlab.board.runs import RunStore

    listed = {run["name"]: run for run in RunStore(tmp_path).list()["runs"]}
    assert listed["conv"]["config"]["layers"] == ["conv6k3p1", "pool2", "conv8k3", "avgpool2", 24]
    assert listed["conv"]["summary"]["test_accuracy"] == summary["test_accuracy"]
    check = sgdlab("gradcheck", "--dataset", "digits", "--layers", "conv3k3p1,pool2,conv4k3,8", "--samples", "4")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0:Conv2D.W" in check.stdout and "3:Conv2D.b" in check.stdout and "passed" in check.stdout


def test_sweep_varies_conv_architectures(tmp_path):
    result = sgdlab("sweep", "--dataset", "digits", "--layers", "conv4k3,pool2,16/conv4k3p1,avgpool2,16",
                    "--epochs", "2", "--batch-size", "32", "--workers", "1", "--out", tmp_path / "sweep")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "sweep" / "sweep.csv").read_text()
    assert "conv4k3,pool2,16" in table and "conv4k3p1,avgpool2,16" in table


def test_sigkill_then_resume_of_a_conv_run_is_bit_identical(tmp_path):
    run = [*CONV_RUN, "--epochs", "5", "--checkpoint-every", "3"]
    whole = sgdlab("train", *run, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    began = time.time()
    proc = start(*run, "--out", out)
    assert wait_for_checkpoint(proc, out / "checkpoint.safetensors", began), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -9
    assert not (out / "summary.json").exists()  # killed mid-run
    resumed = sgdlab("train", "--resume", out, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert np.array_equal(load_model(out / "model.safetensors").params,
                          load_model(tmp_path / "whole" / "model.safetensors").params)
    same = ("epoch", "iteration", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[r[k] for k in same] for r in read_metrics(out)] == \
        [[r[k] for k in same] for r in read_metrics(tmp_path / "whole")]


CHAPTER_7 = ["--layers", "conv16k5,pool2,conv32k5,pool2,100", "--epochs", "5", "--schedule", "cosine",
             "--train-metrics", "running"]


@pytest.mark.slow
def test_the_readme_conv_command_reaches_99_percent_on_mnist(tmp_path):
    """README's documented conv-net command (chapter 7's network on MNIST, defaults otherwise)."""
    readme = open(__file__.rsplit("/tests/", 1)[0] + "/README.md", encoding="utf-8").read()
    assert "sgdlab train " + " ".join(CHAPTER_7) in readme
    result = subprocess.run([sys.executable, "-m", "sgdlab", "train", *CHAPTER_7, "--quiet", "--out",
                             tmp_path / "chapter7"], capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "chapter7" / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.990, summary
