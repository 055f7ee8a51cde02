"""Overfitting: Dropout and BatchNorm (forward, backward checked numerically), weight decay in the loss,
EarlyStopping's settings and restore, the onset detector, the CLI flags, and the overfitting demo."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import central_difference, relative_error
from sgdlab.checkpoint import load_model, read_safetensors, save_model
from sgdlab.data import make_spirals, train_val_split
from sgdlab.errors import ConfigError
from sgdlab.layers import BatchNorm, Dense, Dropout, layer_from_description
from sgdlab.model import MLP
from sgdlab.optimizers import SGD
from sgdlab.training import Callback, EarlyStopping, History, fit, overfitting_onset


def sgdlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def freeze_dropout(model):
    for layer in model.layers:
        if isinstance(layer, Dropout):
            layer.freeze_mask = True


# -- Dropout ---------------------------------------------------------------------------------------------

def test_dropout_is_inverted_in_training_and_identity_at_evaluation():
    layer = Dropout(0.25, seed=3)
    x = np.random.default_rng(0).standard_normal((400, 50)) + 3.0
    y = layer.forward(x, train=True).copy()  # the output buffer is reused by the next call
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01  # 20,000 draws: std of the fraction is 0.003
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-15)
    assert layer.forward(x, train=False) is x
    assert layer.forward(x, train=True).tolist() != y.tolist()  # a new mask per call


def test_dropout_trains_in_float32():
    layer = Dropout(0.5, seed=0)
    x = np.ones((50, 40), np.float32)
    y = layer.forward(x, train=True)
    assert y.dtype == np.float32 and set(np.unique(y).tolist()) == {0.0, 2.0}
    assert layer.backward(np.ones_like(x)).dtype == np.float32


def test_dropout_masks_come_from_the_seed_not_the_global_rng():
    x = np.ones((20, 30))
    np.random.seed(1)
    first = Dropout(0.5, seed=7).forward(x, train=True).copy()
    np.random.seed(2)
    second = Dropout(0.5, seed=7).forward(x, train=True).copy()
    other = Dropout(0.5, seed=8).forward(x, train=True)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    a, b = MLP([4, 8, 8, 3], dropout=0.5, seed=0), MLP([4, 8, 8, 3], dropout=0.5, seed=1)
    seeds = [layer.seed for layer in a.layers if isinstance(layer, Dropout)]
    assert len(set(seeds)) == 2 and seeds != [layer.seed for layer in b.layers if isinstance(layer, Dropout)]


def test_dropout_backward_with_a_frozen_mask_matches_central_differences():
    rng = np.random.default_rng(5)
    x, r = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    layer = Dropout(0.4, seed=1)
    layer.forward(x, train=True)
    layer.freeze_mask = True
    dx = layer.backward(r).copy()
    numerical = central_difference(lambda: float(np.sum(layer.forward(x, train=True) * r)), x)
    assert relative_error(dx, numerical) < 1e-9
    assert np.count_nonzero(dx == 0) > 0  # the mask really dropped something
    with pytest.raises(ValueError, match=r"frozen mask has shape \(6, 7\) but the input has \(3, 7\)"):
        layer.forward(x[:3], train=True)


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), True])
def test_bad_dropout_rate_is_refused(rate):
    with pytest.raises(ConfigError, match="dropout rate=.* is not allowed: use a number >= 0 and < 1"):
        Dropout(rate)


# -- BatchNorm -------------------------------------------------------------------------------------------

def bound_batch_norm(n, seed=0, dtype=np.float64):
    layer = BatchNorm(n)
    params, grads = np.zeros(layer.size, dtype), np.zeros(layer.size, dtype)
    layer.bind(params, grads)
    layer.init(None)
    rng = np.random.default_rng(seed)
    layer.gamma[...] = rng.uniform(0.5, 2.0, n)
    layer.beta[...] = rng.standard_normal(n)
    return layer, params, grads


def test_batch_norm_normalises_with_batch_statistics_and_updates_running_averages():
    layer, _, _ = bound_batch_norm(5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 5)) * 3 + 2
    y = layer.forward(x, train=True)
    np.testing.assert_allclose(y.mean(axis=0), layer.beta, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), layer.gamma * np.sqrt(x.var(axis=0) / (x.var(axis=0) + 1e-5)),
                               rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=0), rtol=1e-12)
    x2 = rng.standard_normal((32, 5))
    expected = layer.gamma * (x2 - layer.running_mean) / np.sqrt(layer.running_var + 1e-5) + layer.beta
    before = layer.running_mean.copy()
    np.testing.assert_allclose(layer.forward(x2, train=False), expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, before)  # evaluation leaves the averages alone


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_backward_matches_central_differences(train):
    layer, params, grads = bound_batch_norm(4, seed=2)
    layer.running_mean[...] = [0.3, -0.2, 0.1, 0.0]
    layer.running_var[...] = [1.5, 0.7, 2.0, 1.0]
    rng = np.random.default_rng(3)
    x, r = rng.standard_normal((7, 4)) * 2 + 1, rng.standard_normal((7, 4))

    def f():
        return float(np.sum(layer.forward(x, train=train) * r))

    layer.forward(x, train=train)
    dx = layer.backward(r).copy()
    assert relative_error(grads, central_difference(f, params)) < 1e-8
    assert relative_error(dx, central_difference(f, x)) < 1e-8
    if train:  # the simplified formula that ignores d(mu)/dx and d(var)/dx is far off
        simplified = r * layer.gamma / np.sqrt(x.var(axis=0) + layer.eps)
        assert relative_error(simplified, dx) > 0.1


@pytest.mark.parametrize("settings", [{"dropout": 0.3}, {"batch_norm": True},
                                      {"dropout": 0.2, "batch_norm": True, "weight_decay": 0.05}])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_whole_model_gradient_with_dropout_and_batch_norm_matches_numerical(settings, activation):
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    model = MLP([5, 6, 7, 3], activation=activation, dtype=np.float64, seed=1, **settings)
    model.params += 0.1 * rng.standard_normal(model.params.size)
    model.gradient(x, t)  # draws the masks
    freeze_dropout(model)
    loss, grads = model.gradient(x, t)
    grads = grads.copy()
    numerical = central_difference(lambda: model.loss(x, t, train=True), model.params)
    assert relative_error(grads, numerical) < 1e-6
    assert loss == model.loss(x, t, train=True)  # a frozen mask makes the train-mode loss a fixed function


def test_numerical_gradient_and_gradient_check_see_the_training_loss():
    from sgdlab.gradients import gradient_check

    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((10, 5)), rng.integers(0, 3, 10)
    model = MLP([5, 6, 7, 3], dtype=np.float64, seed=2, dropout=0.3, batch_norm=True)
    _, grads = model.gradient(x, t)
    grads = grads.copy()
    before = {k: v.copy() for k, v in model.state_buffers().items()}
    assert relative_error(grads, model.numerical_gradient(x, t)) < 1e-6
    for name, value in model.state_buffers().items():  # running averages put back, masks unfrozen again
        np.testing.assert_array_equal(value, before[name])
    assert not any(getattr(layer, "freeze_mask", False) for layer in model.layers)
    report = gradient_check(model.copy(dtype=np.float32), x, t)
    # a Dense bias right before BatchNorm has gradient exactly 0 (the batch mean is subtracted):
    # both sides are rounding noise there, so only its absolute error means something
    before_bn = {"0:Dense.b", "4:Dense.b"}
    assert all(row.passed for row in report.rows if row.name not in before_bn), report.table()
    assert all(row.max_abs_error < 1e-8 for row in report.rows if row.name in before_bn)


def test_numerical_training_matches_backprop_training_with_dropout_and_batch_norm():
    data = make_spirals(n_samples=40, n_classes=3, seed=1)
    models, histories = [], []
    for gradient in ("backprop", "numerical"):
        model = MLP([2, 5, 3], dtype=np.float64, seed=3, dropout=0.3, batch_norm=True)
        histories.append(fit(model, data, SGD(0.5), batch_size=10, iterations=6, gradient=gradient, seed=0,
                             progress=False))
        models.append(model)
    backprop, numerical = models
    assert relative_error(numerical.params, backprop.params) < 1e-7
    np.testing.assert_allclose(histories[1].iteration_loss, histories[0].iteration_loss, rtol=1e-7)
    np.testing.assert_allclose(numerical.layers[1].running_var, backprop.layers[1].running_var, rtol=1e-7)
    assert not np.allclose(backprop.params, MLP([2, 5, 3], dtype=np.float64, seed=3, dropout=0.3,
                                                 batch_norm=True).params)


def test_mlp_block_order_and_flat_parameter_order():
    model = MLP([3, 4, 2], batch_norm=True, dropout=0.5, seed=0)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "BatchNorm", "ReLU", "Dropout", "Dense"]
    dense, bn = model.layers[0], model.layers[1]
    assert model.params.size == (3 * 4 + 4) + (4 + 4) + (4 * 2 + 2)
    assert np.shares_memory(bn.gamma, model.params[16:20]) and np.shares_memory(bn.beta, model.params[20:24])
    assert np.shares_memory(dense.b, model.params[12:16])
    assert bn.gamma.tolist() == [1.0] * 4 and bn.beta.tolist() == [0.0] * 4
    rebuilt = layer_from_description(model.layers[3].describe())
    assert isinstance(rebuilt, Dropout) and (rebuilt.rate, rebuilt.seed) == (0.5, model.layers[3].seed)


def test_running_averages_are_saved_loaded_and_copied(tmp_path):
    train, _ = train_val_split(make_spirals(n_samples=200, n_classes=3, seed=0), 0.2, seed=0)
    model = MLP([2, 16, 16, 3], batch_norm=True, dropout=0.1, seed=0)
    fit(model, train, SGD(0.1), batch_size=20, epochs=2, progress=False)
    bn = model.layers[1]
    assert not np.allclose(bn.running_var, 1.0)
    save_model(model, tmp_path / "m.safetensors")
    tensors, _ = read_safetensors(tmp_path / "m.safetensors")
    assert {"layers.1.running_mean", "layers.1.running_var", "layers.5.running_mean"} <= set(tensors)
    assert "layers.1.gamma" in tensors
    loaded = load_model(tmp_path / "m.safetensors")
    copied = model.copy()
    for other in (loaded, copied):
        np.testing.assert_array_equal(other.layers[1].running_var, bn.running_var)
        np.testing.assert_array_equal(other.predict_proba(train.x), model.predict_proba(train.x))


def test_weight_decay_is_in_the_loss_value_and_its_gradient():
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((5, 3)), rng.integers(0, 2, 5)
    plain = MLP([3, 4, 2], dtype=np.float64, seed=0, batch_norm=True)
    decayed = plain.copy()
    decayed.weight_decay = 0.3
    squares = sum(float(np.sum(layer.W ** 2)) for layer in plain.layers if isinstance(layer, Dense))
    assert decayed.loss(x, t) == pytest.approx(plain.loss(x, t) + 0.15 * squares, rel=1e-12)
    _, g = decayed.gradient(x, t)
    g = g.copy()
    assert relative_error(g, central_difference(lambda: decayed.loss(x, t, train=True), decayed.params)) < 1e-6
    _, g_plain = plain.gradient(x, t)
    np.testing.assert_allclose(g[:12] - g_plain[:12], 0.3 * decayed.layers[0].W.ravel(), rtol=1e-10)
    np.testing.assert_array_equal(g[16:24], g_plain[16:24])  # gamma, beta are not decayed


# -- EarlyStopping ---------------------------------------------------------------------------------------

@pytest.fixture
def spirals_split():
    return train_val_split(make_spirals(n_samples=300, n_classes=3, noise=0.1, seed=0), 0.2, seed=0)


class Snapshots(Callback):
    def __init__(self):
        self.items = []

    def on_evaluation(self, trainer, row):
        self.items.append((dict(row), trainer.model.params.copy(),
                           {k: v.copy() for k, v in trainer.model.state_buffers().items()}))


def test_early_stopping_start_from_epoch_and_restore_with_batch_norm_state(spirals_split):
    train, val = spirals_split
    model = MLP([2, 32, 3], batch_norm=True, seed=0)
    snaps = Snapshots()
    stopper = EarlyStopping(monitor="val_acc", mode="max", patience=3, start_from_epoch=4)
    history = fit(model, train, SGD(0.5), batch_size=10, epochs=60, validation=val,
                  callbacks=[snaps, stopper], progress=False)
    counted = [i for i, (row, _, _) in enumerate(snaps.items) if row["epoch"] >= 4]
    best = max(counted, key=lambda i: (snaps.items[i][0]["val_acc"], -i))
    assert history.status == "early_stopped" and history.best_epoch == snaps.items[best][0]["epoch"] >= 4
    assert len(history.rows) == best + 1 + 3
    np.testing.assert_array_equal(model.params, snaps.items[best][1])
    for name, value in snaps.items[best][2].items():
        np.testing.assert_array_equal(model.state_buffers()[name], value)
    assert model.evaluate(val)[1] == history.best_row["val_acc"]
    assert history.stopped_reason.endswith(f"restored epoch {history.best_epoch} (val_acc "
                                           f"{history.best_row['val_acc']:.6g})")


def test_early_stopping_every_n_iterations_with_min_delta(spirals_split):
    train, val = spirals_split
    model = MLP([2, 32, 3], seed=0)
    history = fit(model, train, SGD(0.5), batch_size=10, iterations=600, eval_every=7, validation=val,
                  callbacks=[EarlyStopping(monitor="val_loss", patience=4, min_delta=0.01)], progress=False)
    assert [r["iteration"] for r in history.rows[:3]] == [7, 14, 21]
    losses = [r["val_loss"] for r in history.rows]
    best, wait = None, 0
    for i, value in enumerate(losses):  # the rule by hand: improvements of more than 0.01 reset the count
        if best is None or value < best - 0.01:
            best, best_i, wait = value, i, 0
        else:
            wait += 1
            if wait == 4:
                break
    assert history.status == "early_stopped" and len(history.rows) == i + 1 < 600 // 7
    assert history.best_row["val_loss"] == losses[best_i] == model.evaluate(val)[0]


@pytest.mark.parametrize("good_epochs", [0, 2])
def test_divergence_puts_batch_norm_averages_back_with_the_parameters(spirals_split, good_epochs):
    train, val = spirals_split
    model = MLP([2, 16, 3], batch_norm=True, seed=0)
    snaps = Snapshots()

    class Explode(Callback):
        def on_evaluation(self, trainer, row):
            if len(trainer.history.rows) == good_epochs:
                trainer.optimizer.lr = 1e4

    history = fit(model, train, SGD(1e4 if good_epochs == 0 else 0.5), batch_size=10, epochs=30, validation=val,
                  callbacks=[snaps, Explode()], progress=False)
    assert history.status == "diverged" and len(snaps.items) == good_epochs
    expected = snaps.items[-1][2] if snaps.items else {"layers.1.running_mean": np.zeros(16),
                                                       "layers.1.running_var": np.ones(16)}
    for name, value in model.state_buffers().items():
        np.testing.assert_array_equal(value, expected[name])
    if snaps.items:
        np.testing.assert_array_equal(model.params, snaps.items[-1][1])


@pytest.mark.parametrize("kwargs,match", [
    ({"min_delta": -1}, "min_delta=-1 is not allowed"),
    ({"start_from_epoch": -2}, "start_from_epoch=-2 is not allowed"),
    ({"restore_best": "yes"}, "restore_best='yes' is not allowed"),
    ({"patience": True}, "patience=True is not allowed"),
])
def test_bad_early_stopping_settings_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EarlyStopping(**kwargs)


# -- the onset -------------------------------------------------------------------------------------------

def history_of(train_loss, val_loss, train_acc=None, val_acc=None):
    h = History()
    n = len(train_loss)
    train_acc, val_acc = train_acc or [None] * n, val_acc or [None] * n
    h.rows = [{"epoch": i + 1, "train_loss": a, "val_loss": b, "train_acc": c, "val_acc": d}
              for i, (a, b, c, d) in enumerate(zip(train_loss, val_loss, train_acc, val_acc))]
    return h


def test_overfitting_onset_is_where_validation_stops_improving_while_training_still_does():
    epochs = np.arange(1, 41)
    train_loss = list(2.0 * np.exp(-epochs / 8))                   # keeps falling
    val_loss = list(1.0 + 0.002 * (epochs - 15.0) ** 2)            # lowest at epoch 15
    assert overfitting_onset(history_of(train_loss, val_loss), window=1) == 15
    assert overfitting_onset(history_of(train_loss, val_loss)) == 15  # the centred mean keeps the minimum
    falling = list(1.0 + np.exp(-epochs / 10))
    assert overfitting_onset(history_of(train_loss, falling)) is None   # validation improves to the end
    worse_train = train_loss[:15] + [train_loss[14] + 0.01 * k for k in range(1, 26)]
    assert overfitting_onset(history_of(worse_train, val_loss), window=1) is None  # both get worse: no widening
    acc = history_of(train_loss, val_loss, train_acc=list(np.minimum(epochs / 20, 1.0)),
                     val_acc=list(0.7 - 0.001 * (epochs - 10.0) ** 2))
    assert overfitting_onset(acc, metric="acc", window=1) == 10
    assert overfitting_onset(history_of(train_loss, [None] * 40)) is None
    with pytest.raises(ConfigError, match="metric='f1' is unknown"):
        overfitting_onset(acc, metric="f1")


# -- the CLI ---------------------------------------------------------------------------------------------

def test_cli_trains_with_dropout_batch_norm_and_early_stopping(tmp_path):
    out = tmp_path / "run"
    result = sgdlab("train", "--dataset", "digits", "--layers", "32,32", "--lr", "0.1",
                    "--epochs", "30", "--dropout", "0.2", "--batch-norm", "--early-stopping", "3",
                    "--start-from-epoch", "5", "--monitor", "val_loss", "--monitor-mode", "min",
                    "--weight-decay", "0.001", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert (config["dropout"], config["batch_norm"], config["start_from_epoch"]) == (0.2, True, 5)
    assert summary["status"] == "early_stopped" and summary["best_epoch"] >= 5
    assert f"restored epoch {summary['best_epoch']}" in summary["stopped_reason"]
    with open(out / "metrics.csv", newline="") as f:
        history = History()
        history.rows = [{k: (float(v) if v else None) for k, v in row.items()} for row in csv.DictReader(f)]
    assert summary["overfitting_onset_epoch"] == overfitting_onset(history)
    model = load_model(out / "model.safetensors")
    names = [type(layer).__name__ for layer in model.layers]
    assert names == ["Dense", "BatchNorm", "ReLU", "Dropout"] * 2 + ["Dense"]
    assert model.weight_decay == 0.001
    assert os.path.getsize(out / "accuracy.png") > 10_000


@pytest.mark.parametrize("flag,value,message", [
    ("--dropout", "1.0", "dropout=1.0 is not allowed: use a number >= 0 and < 1"),
    ("--start-from-epoch", "-1", "start_from_epoch=-1 is not allowed"),
    ("--monitor-mode", "up", "monitor_mode='up' is unknown: choose one of auto, min, max"),
])
def test_cli_refuses_bad_regularisation_flags(tmp_path, flag, value, message):
    result = sgdlab("train", "--dataset", "digits", flag, value, "--out", tmp_path / "r")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"sgdlab: error: {message}"] or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


# -- the demo --------------------------------------------------------------------------------------------

@pytest.mark.slow  # MNIST
def test_overfitting_demo_quick(tmp_path):
    from sgdlab.demos.overfitting import PATIENCE, overfitting

    result = overfitting(tmp_path, quick=True)
    plain, decay, dropout = (result["variants"][k] for k in ("plain", "weight_decay", "dropout"))
    assert result["epochs"] == 125 and result["n_train"] == 300
    assert plain["train_accuracy"] >= 0.99 and plain["gap"] >= 0.2
    assert decay["gap"] <= 0.75 * plain["gap"] and dropout["gap"] <= 0.75 * plain["gap"]
    assert decay["gap_ratio"] == decay["gap"] / plain["gap"]
    assert plain["onset_epoch"] is not None and 90 <= plain["onset_epoch"] <= 120
    assert decay["onset_epoch"] is None and dropout["onset_epoch"] is None
    early = result["early_stopping"]  # the plain run again, with EarlyStopping(val_loss, PATIENCE, restore_best)
    assert early["status"] == "early_stopped"
    assert early["stopped_epoch"] == plain["early_stop_epoch"] == early["best_epoch"] + PATIENCE
    assert early["restored_val_loss"] == early["best_val_loss"]
    assert early["restored_test_accuracy"] != early["last_epoch_test_accuracy"]  # really another model
    assert os.path.getsize(result["files"][0]) > 30_000
