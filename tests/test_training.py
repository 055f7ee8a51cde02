import math

import numpy as np
import pytest

from sgdlab import MLP
from sgdlab.data import Dataset
from sgdlab.errors import ConfigError, DataError
from sgdlab.optimizers import SGD, Momentum
from sgdlab.training import METRIC_COLUMNS, EarlyStopping, History, Trainer, fit


def test_fit_learns_spirals_and_records_every_epoch(spirals):
    train, val = spirals
    model = MLP([2, 32, 32, 3], seed=0)
    history = fit(model, train, Momentum(lr=0.1), batch_size=16, epochs=40, validation=val, progress=False)
    assert len(history.rows) == 40
    assert [r["epoch"] for r in history.rows] == list(range(1, 41))
    iterations_per_epoch = math.ceil(len(train) / 16)
    assert [r["iteration"] for r in history.rows] == [iterations_per_epoch * e for e in range(1, 41)]
    assert len(history.iteration_loss) == 40 * iterations_per_epoch
    assert history.rows[-1]["train_acc"] > 0.9
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"] / 3
    assert history.status == "completed"
    assert set(METRIC_COLUMNS) <= set(history.rows[0])


def test_iterations_and_eval_every(spirals):
    train, val = spirals
    history = fit(MLP([2, 8, 3]), train, SGD(0.1), batch_size=50, iterations=25, eval_every=10,
                  validation=val, progress=False)
    assert [r["iteration"] for r in history.rows] == [10, 20, 25]
    assert history.rows[0]["epoch"] == pytest.approx(10 / math.ceil(len(train) / 50), abs=1e-3)


@pytest.mark.parametrize("gradient", ["backprop", "numerical"])
def test_running_train_metrics_are_the_batches_seen_since_the_last_evaluation(spirals, gradient):
    """train_metrics="running": each row's train loss and accuracy are those of its batches, each measured by
    the forward pass that gave its gradient, weighted by batch size (the last batch of an epoch is smaller)."""
    from sgdlab.batches import BatchLoader, BatchSampler

    train, val = spirals
    batch, epochs = 32, 3                               # 240 samples: 7 batches of 32, then one of 16
    model = MLP([2, 8, 3], seed=2, dtype="float64")
    replay = model.copy()
    history = fit(model, train, SGD(0.2), batch_size=batch, epochs=epochs, validation=val, seed=5,
                  gradient=gradient, train_metrics="running", progress=False)
    loader, optimizer = BatchLoader(train, BatchSampler(len(train), batch, seed=5), dtype=np.float64), SGD(0.2)
    per_epoch = math.ceil(len(train) / batch)
    for row in history.rows:
        total = correct = seen = 0
        for _ in range(per_epoch):
            x, t = loader.next()
            loss = replay.loss(x, t, train=True)                # no Dropout: every forward pass is the same
            correct += int(np.count_nonzero(replay.forward(x).argmax(axis=1) == t))
            if gradient == "backprop":
                replay.gradient(x, t)
            else:
                replay.grads[...] = replay.numerical_gradient(x, t)
            total, seen = total + loss * len(t), seen + len(t)
            optimizer.update(replay.params, replay.grads)
        assert row["train_loss"] == pytest.approx(total / seen, rel=1e-12)
        assert row["train_acc"] == correct / seen
    assert np.array_equal(model.params, replay.params)
    full = fit(MLP([2, 8, 3], seed=2, dtype="float64"), train, SGD(0.2), batch_size=batch, epochs=epochs,
               validation=val, seed=5, gradient=gradient, train_metrics="full", progress=False)
    assert [r["val_loss"] for r in full.rows] == [r["val_loss"] for r in history.rows]  # validation: unchanged
    assert [r["train_loss"] for r in full.rows] != [r["train_loss"] for r in history.rows]


def test_running_train_metrics_of_a_regression_have_no_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    data = Dataset(x, x @ np.array([[1.0], [-2.0], [0.5]], np.float32))
    model = MLP([3, 8, 1], loss="mse", seed=0)
    history = fit(model, data, SGD(0.05), batch_size=16, epochs=4, train_metrics="running", progress=False)
    assert [r["train_acc"] for r in history.rows] == [None] * 4
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]


def test_same_seed_gives_identical_history(spirals):
    train, val = spirals
    runs = []
    for _ in range(2):
        h = fit(MLP([2, 16, 3], seed=1), train, Momentum(0.05), batch_size=10, epochs=3, validation=val,
                seed=4, progress=False)
        runs.append([{k: v for k, v in r.items() if k != "seconds"} for r in h.rows] + h.iteration_loss)
    assert runs[0] == runs[1]


def test_early_stopping_restores_best_parameters_bit_for_bit(spirals):
    train, val = spirals
    model = MLP([2, 64, 3], seed=0)
    snapshots = []

    class Snapshot(EarlyStopping.__mro__[1]):
        def on_evaluation(self, trainer, row):
            snapshots.append((row["val_loss"], trainer.model.params.copy()))

    stopper = EarlyStopping(monitor="val_loss", patience=2, min_delta=0.0)
    history = fit(model, train, SGD(2.0), batch_size=5, epochs=60, validation=val,
                  callbacks=[Snapshot(), stopper], progress=False)
    best = min(range(len(snapshots)), key=lambda i: snapshots[i][0])
    assert history.status == "early_stopped"
    assert "val_loss did not improve" in history.stopped_reason
    assert history.best_epoch == best + 1
    np.testing.assert_array_equal(model.params, snapshots[best][1])
    assert len(history.rows) == best + 1 + 2


def test_restore_best_also_when_training_completes(spirals):
    train, val = spirals
    model = MLP([2, 64, 3], seed=0)
    seen = []

    class Snapshot(EarlyStopping.__mro__[1]):
        def on_evaluation(self, trainer, row):
            seen.append((row["val_acc"], trainer.model.params.copy()))

    history = fit(model, train, SGD(1.0), batch_size=5, epochs=8, validation=val,
                  callbacks=[Snapshot(), EarlyStopping(monitor="val_acc", patience=100)], progress=False)
    assert history.status == "completed"
    best = max(range(len(seen)), key=lambda i: (seen[i][0], -i))
    np.testing.assert_array_equal(model.params, seen[best][1])


def test_divergence_stops_with_hint_and_finite_parameters(spirals):
    train, val = spirals
    model = MLP([2, 32, 3], seed=0)
    history = fit(model, train, SGD(50.0), batch_size=10, epochs=20, validation=val, progress=False)
    assert history.status == "diverged"
    assert "lr=50 diverged at iteration" in history.stopped_reason
    assert "try lr <= 5" in history.stopped_reason
    assert np.all(np.isfinite(model.params))
    assert len(history.iteration_loss) < 20 * 30


def test_early_stopping_needs_validation_for_val_metrics(spirals):
    train, _ = spirals
    with pytest.raises(ConfigError, match="no validation set"):
        fit(MLP([2, 4, 3]), train, SGD(0.1), epochs=1, callbacks=[EarlyStopping()], progress=False)


@pytest.mark.parametrize("kwargs,match", [
    ({"monitor": "accuracy"}, "monitor='accuracy'"),
    ({"patience": 0}, "patience=0"),
    ({"mode": "up"}, "mode='up'"),
])
def test_bad_early_stopping_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EarlyStopping(**kwargs)


def test_data_that_does_not_fit_the_model_is_refused():
    data = Dataset(np.zeros((10, 3), np.float32), np.arange(10) % 5)
    with pytest.raises(DataError, match="3 features per sample but the model's input layer has 4"):
        fit(MLP([4, 2, 5]), data, SGD(0.1), progress=False)
    with pytest.raises(DataError, match="label 4 but the model has only 3 outputs"):
        fit(MLP([3, 2, 3]), data, SGD(0.1), progress=False)


def test_bad_loop_settings(spirals):
    train, _ = spirals
    for kwargs, match in [({"gradient": "symbolic"}, "gradient='symbolic'"), ({"epochs": 0}, "epochs=0"),
                          ({"iterations": -3}, "iterations=-3"), ({"epochs": 2, "iterations": 3}, "not both"),
                          ({"eval_every": 0}, "eval_every=0"), ({"batch_size": 10_000}, "larger than"),
                          ({"train_metrics": "exact"}, "train_metrics='exact' is unknown: use full or running")]:
        with pytest.raises(ConfigError, match=match):
            Trainer(MLP([2, 4, 3]), train, SGD(0.1), **kwargs)


def test_stop_request_ends_after_the_current_iteration(spirals):
    train, _ = spirals
    trainer = Trainer(MLP([2, 4, 3]), train, SGD(0.1), batch_size=10, epochs=5, progress=False)

    class StopAtFirstEvaluation(EarlyStopping.__mro__[1]):
        def on_evaluation(self, t, row):
            t.stop("interrupted", "test")

    trainer.callbacks.append(StopAtFirstEvaluation())
    history = trainer.run()
    assert history.status == "interrupted" and trainer.iteration == trainer.iterations_per_epoch


def test_history_csv_has_the_contract_columns(tmp_path, spirals):
    train, val = spirals
    history = fit(MLP([2, 4, 3]), train, SGD(0.1), batch_size=30, epochs=2, validation=val, progress=False)
    path = tmp_path / "metrics.csv"
    history.to_csv(path)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(METRIC_COLUMNS)
    assert len(lines) == 3
    restored = History()
    restored.load_state_dict(history.state_dict())
    assert restored.rows == history.rows and restored.best_epoch == history.best_epoch


# -- the one loop, its events and its rules ------------------------------------------------------------


def test_estimators_and_the_playground_train_through_the_trainer(monkeypatch):
    """A spy on the Trainer's step 2 sees every batch of a scikit-learn fit and of the board's playground:
    they train through training.Trainer, not through loops of their own."""
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning

    from sgdlab import board
    from sgdlab.sklearn import MLPClassifier, MLPRegressor

    seen = []
    step_two = Trainer._gradient

    def spy(self, xb, tb):
        seen.append((type(self.sampler).__name__, len(xb)))
        return step_two(self, xb, tb)

    monkeypatch.setattr(Trainer, "_gradient", spy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    with pytest.warns(ConvergenceWarning):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, batch_size=20, random_state=0).fit(x, x[:, 0] > 0)
    assert seen == [("SklearnBatches", 20), ("SklearnBatches", 20), ("SklearnBatches", 10)] * 3
    seen.clear()
    MLPRegressor(hidden_layer_sizes=(4,), batch_size=25, random_state=0).partial_fit(x, x[:, 1])
    assert seen == [("SklearnBatches", 25)] * 2
    seen.clear()
    session = board.Session(board.parse_play_settings({"layers": [4], "batch_size": 30, "optimizer": "sgd"}))
    session.train_for(5)
    report = session.step()
    assert seen == [("BatchSampler", 30)] * 6 and session.iteration == report["iteration"] == 6
    assert report["batch"]["indices"] == session.trainer.indices.tolist()


def test_events_fire_in_order_and_a_hook_can_cancel_a_batch_or_the_fit(spirals):
    from sgdlab.callbacks import Callback, CancelBatch

    train, _ = spirals
    events = []

    class Recorder(Callback):
        def on_train_begin(self, trainer):
            events.append("begin")

        def before_batch(self, trainer):
            events.append("before_batch")

        def after_gradient(self, trainer):
            events.append("after_gradient")
            if trainer.iteration == 1:
                self.frozen = trainer.model.params.copy()
                raise CancelBatch

        def after_step(self, trainer):
            events.append("after_step")
            if trainer.iteration == 2:
                np.testing.assert_array_equal(trainer.model.params, self.frozen)   # batch 2 was not applied

        def on_evaluation(self, trainer, row):
            events.append("evaluation")

        def after_epoch(self, trainer):
            events.append("epoch")
            trainer.stop("early_stopped", "asked to")

        def on_train_end(self, trainer):
            events.append("end")

    n = math.ceil(len(train) / 100)
    history = fit(MLP([2, 8, 3]), train, SGD(0.1), batch_size=100, epochs=3, callbacks=[Recorder()], progress=False)
    assert events == ["begin"] + ["before_batch", "after_gradient", "after_step"] * n + ["evaluation", "epoch", "end"]
    assert history.status == "early_stopped" and len(history.iteration_loss) == n


def test_run_in_pieces_is_the_same_run(spirals):
    """run(iterations=k) returns after k more iterations, status "running"; the pieces make the whole run."""
    train, _ = spirals
    whole, pieces = MLP([2, 8, 3], seed=1), MLP([2, 8, 3], seed=1)
    fit(whole, train, SGD(0.1), batch_size=40, iterations=25, progress=False)
    trainer = Trainer(pieces, train, SGD(0.1), batch_size=40, iterations=25, progress=False)
    assert trainer.run(iterations=10).status == "running" and trainer.iteration == 10
    assert trainer.run(iterations=10).status == "running"
    assert trainer.run(iterations=10).status == "completed" and trainer.iteration == 25
    np.testing.assert_array_equal(whole.params, pieces.params)


def test_one_divergence_rule():
    from sgdlab.training import divergence

    assert divergence(2.0, 1.0) is None and divergence(99.0, 1.0) is None
    assert divergence(101.0, 1.0) == "101 > 100 x initial 1"
    assert divergence(101.0, 1.0, factor=None) is None                    # scikit-learn's rules: no explosion rule
    for bad in (math.nan, math.inf, -math.inf):
        assert divergence(bad, 1.0, factor=None) is not None               # non-finite, in either direction
    assert divergence(arrays=(np.array([1.0, -np.inf]),)) == "parameters hold NaN or infinity"
    assert divergence(arrays=(np.array([1.0, np.nan]),)) is not None
    assert divergence(1.0, None, arrays=(np.zeros(3),)) is None


def test_non_finite_parameters_with_a_finite_loss_stop_as_diverged(spirals):
    """A weight of -inf behind a ReLU can leave the loss finite; the parameters are checked at each evaluation."""
    from sgdlab.callbacks import Callback

    class Poison(Callback):
        def after_step(self, trainer):
            if trainer.iteration == 3:
                trainer.model.layers[0].b[0] = -np.inf     # that hidden unit is off for every input

    train, _ = spirals
    model = MLP([2, 8, 3], seed=0)
    history = fit(model, train, SGD(0.1), batch_size=100, epochs=2, callbacks=[Poison()], progress=False)
    assert history.status == "diverged" and "diverged by iteration" in history.stopped_reason
    assert np.isfinite(model.params).all()


def test_early_stopping_rules_keras_and_sklearn():
    """keras: the best moves only on an improvement by more than min_delta; sklearn: the best is the best seen
    and reaching best - tol counts as an improvement (scikit-learn's tol / n_iter_no_change)."""
    from sgdlab.callbacks import early_stop_epoch

    rows = [{"epoch": e + 1, "train_loss": v} for e, v in enumerate([1.0, 0.9, 0.85, 0.84])]
    settings = dict(monitor="train_loss", patience=2, min_delta=0.1)
    assert early_stop_epoch(rows, **settings) is None
    assert early_stop_epoch(rows, rule="sklearn", **settings) == 4
    with pytest.raises(ConfigError, match="rule='fastai' is unknown"):
        EarlyStopping(rule="fastai")


def test_reduce_lr_by_divides_the_lr_until_min_lr_then_stops(spirals):
    train, _ = spirals
    stopper = EarlyStopping(monitor="train_loss", patience=1, min_delta=100.0, reduce_lr_by=5.0, min_lr=0.005)
    optimizer = SGD(0.1)
    history = fit(MLP([2, 4, 3]), train, optimizer, batch_size=100, epochs=10, callbacks=[stopper], progress=False)
    # epochs 2, 3: lr 0.1 -> 0.02 -> 0.004; epoch 4: lr <= min_lr, stop
    assert [row["lr"] for row in history.rows] == pytest.approx([0.1, 0.1, 0.02, 0.004])
    assert history.status == "early_stopped" and optimizer.lr == pytest.approx(0.004)  # 0.004 <= min_lr


def test_metrics_join_the_rows_and_can_be_monitored(spirals):
    train, val = spirals
    metrics = {"val_error": lambda trainer: 1 - trainer.model.evaluate(val)[1]}
    stopper = EarlyStopping(monitor="val_error", mode="min", patience=100)
    history = Trainer(MLP([2, 8, 3]), train, SGD(0.5), batch_size=20, epochs=4, callbacks=[stopper],
                      metrics=metrics, progress=False).run()
    errors = [row["val_error"] for row in history.rows]
    assert len(errors) == 4 and history.best_epoch == 1 + int(np.argmin(errors))
