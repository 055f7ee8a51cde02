"""What a user meets first (issue 17): defaults, names where people look, arrays accepted, help from registries."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sgdlab as sl
from sgdlab.batches import SAMPLING, resolve_sampling
from sgdlab.checkpoint import load_model, read_safetensors
from sgdlab.config import CHOICES, OPTIMIZER_FIELDS, SCHEDULE_FIELDS, TUNED_LR, TrainConfig
from sgdlab.errors import ConfigError
from sgdlab.layers import ACTIVATIONS
from sgdlab.losses import LOSSES
from sgdlab.optimizers import OPTIMIZERS, SCHEDULES
from sgdlab.validation import setting_defaults
from sgdlab.run import build_model, build_optimizer, build_schedule


def sgdlab(*args, cwd=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600, **kwargs)


def regression_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)  # 1-D float targets


# --------------------------------------------------------------------------- defaults of fit, Trainer, config


def test_fit_defaults_to_running_train_metrics_and_auto_sampling():
    model = sl.MLP([2, 8, 3], seed=0)
    data = sl.datasets.make_spirals(90, seed=0)
    trainer = sl.Trainer(model, data, sl.optimizers.SGD(lr=0.1), batch_size=30)
    assert trainer.running is not None and trainer.sampler.mode == "shuffle"
    assert TrainConfig().train_metrics == "running" and TrainConfig().sampling == "auto"
    history = sl.fit(model, data, sl.optimizers.SGD(lr=0.1), batch_size=30, epochs=1)
    full = model.evaluate(data)[0]
    assert history.rows[0]["train_loss"] == pytest.approx(np.mean(history.iteration_loss))
    assert history.rows[0]["train_loss"] != pytest.approx(full)  # running, not a pass over the training set


def test_auto_sampling_is_block_shuffle_with_prefetch_for_a_store_only(tmp_path):
    x = np.arange(400, dtype=np.float32).reshape(200, 2)
    np.save(tmp_path / "x.npy", x)
    mapped = sl.Dataset(np.load(tmp_path / "x.npy", mmap_mode="r"), np.arange(200) % 2)
    assert mapped.is_mapped
    assert resolve_sampling("auto", mapped) == ("block-shuffle", True)
    assert resolve_sampling("auto", sl.Dataset(x, np.arange(200) % 2)) == ("shuffle", False)
    assert resolve_sampling("shuffle", mapped) == ("shuffle", False)  # an explicit mode is kept
    trainer = sl.Trainer(sl.MLP([2, 3, 2]), mapped, sl.optimizers.SGD(), batch_size=10)
    assert trainer.sampler.mode == "block-shuffle" and type(trainer.loader).__name__ == "PrefetchLoader"


def test_train_prints_and_records_the_sampling_auto_chose(tmp_path):
    result = sgdlab("train", "--dataset", "blobs", "--layers", "4", "--epochs", "1", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sampling auto -> shuffle") == 1
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["sampling"] == "shuffle" and config["train_metrics"] == "running"
    assert config["lr"] == TUNED_LR["momentum"]  # the lr it trained with, not null


def test_fit_trainer_and_evaluate_take_arrays():
    x, t = sl.datasets.make_blobs(100, seed=1).x, sl.datasets.make_blobs(100, seed=1).t
    a, b = sl.MLP([2, 6, 3], seed=0), sl.MLP([2, 6, 3], seed=0)
    ha = sl.fit(a, (x, t), sl.optimizers.SGD(lr=0.1), batch_size=20, epochs=2, validation=(x, t))
    hb = sl.fit(b, sl.Dataset(x, t), sl.optimizers.SGD(lr=0.1), batch_size=20, epochs=2,
                validation=sl.Dataset(x, t))
    np.testing.assert_array_equal(a.params, b.params)
    drop = [{k: v for k, v in r.items() if k != "seconds"} for r in ha.rows + hb.rows]
    assert drop[: len(ha.rows)] == drop[len(ha.rows):] and a.evaluate((x, t)) == b.evaluate(sl.Dataset(x, t))
    with pytest.raises(ConfigError, match="give a sgdlab.Dataset or a pair"):
        sl.fit(a, x, sl.optimizers.SGD())


def test_top_level_names_and_dir():
    for name in ("Dataset", "Trainer", "Callback", "Dense", "ReLU", "Sigmoid", "Tanh", "Dropout", "BatchNorm",
                 "optimizers", "layers", "ConfigError", "DataError", "CheckpointError", "SgdlabError", "fit",
                 "save_model", "load_model", "EarlyStopping"):
        assert name in dir(sl), name
        assert getattr(sl, name) is not None
    assert sl.Trainer is sl.training.Trainer and sl.Dense is sl.layers.Dense
    assert issubclass(sl.ConfigError, ValueError)
    assert set(sl.__all__) <= set(dir(sl))


def test_save_model_takes_model_then_path_and_names_the_old_order(tmp_path):
    model = sl.MLP([2, 3, 2], seed=4)
    sl.save_model(model, tmp_path / "m.safetensors")
    np.testing.assert_array_equal(sl.load_model(tmp_path / "m.safetensors").params, model.params)
    with pytest.raises(ConfigError, match=r"call save_model\(model, path\)"):
        sl.save_model(tmp_path / "n.safetensors", model)
    assert not (tmp_path / "n.safetensors").exists()


# --------------------------------------------------------------------------- optimizers and schedules


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_trains_at_its_own_default_lr(name):
    config = TrainConfig(optimizer=name)
    expected = TUNED_LR.get(name, setting_defaults(OPTIMIZERS[name])["lr"])
    assert config.learning_rate() == expected and build_optimizer(config).lr == expected
    assert TrainConfig(optimizer=name, lr=0.3).learning_rate() == 0.3
    assert TrainConfig(optimizer="adam").learning_rate() == 1e-3


def test_adamw_decay_is_weight_decay_and_not_also_l2():
    config = TrainConfig(optimizer="adamw", weight_decay=0.2)
    assert build_optimizer(config).weight_decay == 0.2
    assert build_model(config, 4, 3, "classification").weight_decay == 0.0
    assert build_optimizer(TrainConfig(optimizer="adamw")).weight_decay == 0.0
    l2 = TrainConfig(optimizer="adam", weight_decay=0.2)
    assert build_model(l2, 4, 3, "classification").weight_decay == 0.2


def test_every_optimizer_and_schedule_setting_is_a_config_field():
    """Each constructor setting of every registered optimizer and schedule can be set from flags and TOML."""
    derived = {"lr", "base_lr", "weight_decay", "mode"}  # lr fields, --weight-decay, plateau mode from --monitor
    for registry, fields in ((OPTIMIZERS, OPTIMIZER_FIELDS), (SCHEDULES, SCHEDULE_FIELDS)):
        for key, cls in registry.items():
            missing = set(setting_defaults(cls)) - derived - set(fields.values())
            assert not missing, f"{key}: settings {missing} have no TrainConfig field (config.py)"
    config = TrainConfig(optimizer="adam", beta1=0.8, beta2=0.99, eps=1e-6, schedule="cosine", min_lr=1e-5,
                         warmup_iterations=7)
    opt, sched = build_optimizer(config), build_schedule(config)
    assert opt.betas == (0.8, 0.99) and opt.eps == 1e-6
    assert sched.min_lr == 1e-5 and sched.warmup_iterations == 7
    plateau = build_schedule(TrainConfig(schedule="plateau", plateau_factor=0.5, plateau_patience=2,
                                         plateau_min_delta=0.01, monitor="val_acc"))
    assert (plateau.factor, plateau.patience, plateau.min_delta, plateau.mode) == (0.5, 2, 0.01, "max")
    assert build_schedule(TrainConfig(schedule="step", step_epochs=3, gamma=0.5)).gamma == 0.5
    assert build_optimizer(TrainConfig(optimizer="rmsprop", alpha=0.9)).alpha == 0.9
    with pytest.raises(ConfigError, match="beta1=0.8 is not a setting of optimizer 'sgd'"):
        TrainConfig(optimizer="sgd", beta1=0.8)
    with pytest.raises(ConfigError, match="beta2=1.5 is not allowed"):
        TrainConfig(optimizer="adam", beta2=1.5)


def test_optimizer_and_schedule_settings_from_toml_and_flags(tmp_path):
    (tmp_path / "c.toml").write_text('optimizer = "adam"\nbeta1 = 0.85\nschedule = "step"\ngamma = 0.5\n')
    result = sgdlab("train", "--config", tmp_path / "c.toml", "--dataset", "blobs", "--layers", "4",
                    "--epochs", "1", "--step-epochs", "2", "--eps", "1e-7", "--quiet", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (config["beta1"], config["gamma"], config["step_epochs"], config["eps"]) == (0.85, 0.5, 2, 1e-7)


def test_train_help_lists_every_registered_choice():
    """--help is generated from the registries: a new loss, activation, optimizer, schedule or sampling shows."""
    text = " ".join(sgdlab("train", "--help").stdout.split()).split("options:", 1)[1]
    registries = {"loss": LOSSES, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
                  "sampling": ("auto", *SAMPLING)}
    for field, registry in registries.items():
        assert CHOICES[field] == tuple(registry), field
        flag = f"--{field} {field.upper()}"
        section = text[text.index(flag) + len(flag):].split(" --", 1)[0]
        for name in registry:
            assert re.search(rf"(^|[ :|]){re.escape(name)}( |$|\))", section), f"{name} missing from {flag} help"
    for name in OPTIMIZERS:
        if name not in TUNED_LR:
            assert f"{name} {setting_defaults(OPTIMIZERS[name])['lr']:g}" in text.split("--lr LR", 1)[1]


# --------------------------------------------------------------------------- targets, predict_proba, memory


def test_one_dimensional_float_targets_are_one_output(tmp_path):
    x, t = regression_data()
    ds = sl.Dataset(x, t)
    assert ds.t.shape == (len(x), 1) and not ds.is_classification
    model = sl.MLP([3, 8, 1], loss="mse", seed=0)
    history = sl.fit(model, (x, t), sl.optimizers.Adam(), batch_size=20, epochs=3)
    assert history.status == "completed"
    np.savez(tmp_path / "r.npz", x=x, t=t)
    result = sgdlab("train", "--dataset", tmp_path / "r.npz", "--loss", "mse", "--layers", "8", "--epochs", "2",
                    "--batch-size", "20", "--quiet", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert load_model(tmp_path / "run" / "model.safetensors").n_out == 1


def test_predict_proba_of_a_regressor_is_a_config_error(tmp_path):
    x, _ = regression_data(10)
    model = sl.MLP([3, 4, 1], loss="mse")
    with pytest.raises(ConfigError, match="predict_proba is for classifiers"):
        model.predict_proba(x)
    sl.save_model(model, tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", x)
    result = sgdlab("predict", "--model", tmp_path / "m.safetensors", tmp_path / "x.npy", "--proba")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "sgdlab: error: predict_proba is for classifiers: this model is a regressor (loss 'mse'); use predict "
        "for its outputs"]


def test_a_network_too_large_for_memory_is_refused_before_allocation(tmp_path):
    result = sgdlab("train", "--dataset", "blobs", "--layers", "200000,200000", "--out", tmp_path / "r")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(r"needs [\d.]+ GiB but this machine has [\d.]+ GiB of memory", result.stderr)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("layers", ["10,,10", ",10", "10,", "10,x"])
def test_malformed_layer_lists_are_refused(layers):
    with pytest.raises(ConfigError, match="layers="):
        TrainConfig(layers=layers)
    assert TrainConfig(layers="").layers == () and TrainConfig(layers=" 16, 8 ").layers == (16, 8)


# --------------------------------------------------------------------------- resume


def test_resume_a_folder_with_only_config_json_starts_from_the_beginning(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = TrainConfig(dataset="blobs", layers=(4,), epochs=2, seed=3)
    (out / "config.json").write_text(json.dumps(config.to_dict()))
    result = sgdlab("train", "--resume", out)
    assert result.returncode == 0, result.stderr
    assert "no checkpoint was written before the run stopped: starting it from the beginning" in result.stdout
    fresh = sgdlab("train", "--dataset", "blobs", "--layers", "4", "--epochs", "2", "--seed", "3", "--quiet",
                   "--out", tmp_path / "fresh")
    assert fresh.returncode == 0, fresh.stderr
    np.testing.assert_array_equal(load_model(out / "model.safetensors").params,
                                  load_model(tmp_path / "fresh" / "model.safetensors").params)


def test_sigkill_half_a_second_after_start_then_resume_is_bit_for_bit(tmp_path):
    """A run killed with SIGKILL 0.5 s after it started, then resumed (from a checkpoint written by
    --checkpoint-seconds, or from the beginning if none was yet), ends with the uninterrupted run's model."""
    args = ["--dataset", "digits", "--layers", "128", "--epochs", "100", "--batch-size", "8", "--seed", "5",
            "--checkpoint-seconds", "0.1", "--quiet"]
    whole = sgdlab("train", *args, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab", "train", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (out / "config.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists(), "the run ended before the kill: make it longer"
    assert (out / "checkpoint.safetensors").exists(), "no checkpoint within 0.5 s: --checkpoint-seconds was ignored"
    resumed = sgdlab("train", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr
    a, _ = read_safetensors(out / "model.safetensors")
    b, _ = read_safetensors(tmp_path / "whole" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert (out / "metrics.csv").read_text().count("\n") == (tmp_path / "whole" / "metrics.csv").read_text().count(
        "\n")


def test_checkpoint_seconds_writes_mid_epoch_checkpoints(tmp_path, monkeypatch):
    import types

    from sgdlab import training
    from sgdlab.checkpoint import load_checkpoint, save_checkpoint

    # The trainer's clock advances 10 ms per reading, so the test does not depend on how fast the machine is
    # (a fast CI machine ran the whole epoch inside 0.05 s of wall time).
    clock = iter(range(10**9))
    monkeypatch.setattr(training, "time", types.SimpleNamespace(perf_counter=lambda: next(clock) * 0.01))

    x, t = sl.datasets.make_spirals(3000, seed=0).x, sl.datasets.make_spirals(3000, seed=0).t
    iterations = []

    def checkpoint(trainer):
        iterations.append(trainer.iteration)
        save_checkpoint(tmp_path / "c.safetensors", trainer.state_dict())

    trainer = sl.Trainer(sl.MLP([2, 256, 256, 3]), (x, t), sl.optimizers.SGD(lr=0.05), batch_size=10, epochs=1,
                         checkpoint=checkpoint, checkpoint_seconds=0.05)
    trainer.run()
    # one reading per iteration: 0.05 s pass every 5 iterations, so 60 checkpoints by the clock in 300 iterations
    assert len(iterations) > 2 and iterations[0] < trainer.iterations_per_epoch  # mid-epoch, by the clock
    state, _ = load_checkpoint(tmp_path / "c.safetensors")
    assert state["iteration"] == trainer.iteration
    assert os.path.getsize(tmp_path / "c.safetensors") > 0
