"""Step 4: repeat.  ``fit`` runs draw -> gradient -> update for a number of
iterations, evaluates at every epoch boundary (or every ``eval_every``
iterations), records a ``History``, and stops early, on divergence, or when
asked to (Ctrl-C).

Train metrics at an evaluation are, with ``train_metrics="full"``, the loss and
accuracy of the whole training set under the current parameters (the tutorial's);
with ``"running"``, the mean loss and the accuracy of the mini-batches since the
previous evaluation, as each was seen before its update (what Keras and
scikit-learn report).  Running metrics cost nothing; a full pass over a large
training set can cost as much as training on it.

Epoch boundaries are integer iteration counts: an epoch is
ceil(n / batch_size) iterations, so no evaluation is skipped when the data size
is not a multiple of the batch.
"""

import math
import sys
import time

import numpy as np

from .batches import BatchLoader, BatchSampler, PrefetchLoader
from .errors import CheckpointError, ConfigError, DataError
from .smoothing import centred_mean
from .tables import format_rows
from .validation import check_whole_number

METRIC_COLUMNS = ["epoch", "iteration", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
GRADIENTS = ("backprop", "numerical")
TRAIN_METRICS = ("full", "running")


class History:
    """What happened: one row per evaluation (metrics.csv), the loss of every iteration, and how it ended."""

    def __init__(self):
        self.rows = []
        self.iteration_loss = []
        self.status = "running"
        self.stopped_reason = ""
        self.monitor = "val_loss"
        self.mode = "min"
        self.best_index = None

    def column(self, name):
        """One metric over the evaluations, as a float array (NaN where missing)."""
        return np.array([np.nan if r.get(name) is None else r[name] for r in self.rows], dtype=float)

    @property
    def best_epoch(self):
        return None if self.best_index is None else self.rows[self.best_index]["epoch"]

    @property
    def best_row(self):
        return None if self.best_index is None else self.rows[self.best_index]

    def is_better(self, value, best, min_delta=0.0):
        if value is None or not math.isfinite(value):
            return False
        if best is None:
            return True
        return value < best - min_delta if self.mode == "min" else value > best + min_delta

    def to_csv(self, path):
        """metrics.csv: METRIC_COLUMNS, empty cells where a metric was not measured."""
        cells = ([None if row.get(c) is None else _fmt(row[c]) for c in METRIC_COLUMNS] for row in self.rows)
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(format_rows(METRIC_COLUMNS, cells, line_end="\r\n"))   # csv.writer's default, kept

    def state_dict(self):
        return {"rows": [dict(r) for r in self.rows], "iteration_loss": list(self.iteration_loss),
                "status": self.status, "stopped_reason": self.stopped_reason, "monitor": self.monitor,
                "mode": self.mode, "best_index": self.best_index}

    def load_state_dict(self, state):
        for key, value in state.items():
            setattr(self, key, list(value) if isinstance(value, list) else value)

    def _repr_html_(self):
        from .display import history_html

        return history_html(self, METRIC_COLUMNS)

    def __repr__(self):
        return (f"History({len(self.rows)} evaluations, {len(self.iteration_loss)} iterations, "
                f"status={self.status!r}, best_epoch={self.best_epoch})")


def _fmt(value):
    if isinstance(value, float):
        return repr(round(value, 6)) if abs(value) >= 1e-3 or value == 0 else f"{value:.6e}"
    return str(value)


class Callback:
    """Hooks into the loop; call ``trainer.stop(status, reason)`` to end it."""

    def on_train_begin(self, trainer):
        pass

    def on_evaluation(self, trainer, row):
        pass

    def on_train_end(self, trainer):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` evaluations.

    ``mode`` "min" (losses), "max" (accuracies) or "auto" (from the name).  Evaluations before
    epoch ``start_from_epoch`` are ignored (neither best nor counted).  ``restore_best`` puts the
    best evaluation's parameters and state (BatchNorm averages) back at the end, bit for bit,
    however training ended (patience, epochs done, divergence); History's best epoch is then the
    restored one and its ``stopped_reason`` says so.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best=True,
                 start_from_epoch=0):
        if monitor not in METRIC_COLUMNS[2:6]:
            raise ConfigError(f"monitor={monitor!r} is unknown: use one of {', '.join(METRIC_COLUMNS[2:6])}")
        if mode == "auto":
            mode = "min" if monitor.endswith("loss") else "max"
        if mode not in ("min", "max"):
            raise ConfigError(f"mode={mode!r} is unknown: use 'min', 'max' or 'auto'")
        check_whole_number("patience", patience)
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ConfigError(f"min_delta={min_delta!r} is not allowed: use a number >= 0")
        if isinstance(start_from_epoch, bool) or not isinstance(start_from_epoch, (int, float)) \
                or not start_from_epoch >= 0:
            raise ConfigError(f"start_from_epoch={start_from_epoch!r} is not allowed: use a number >= 0")
        if not isinstance(restore_best, bool):
            raise ConfigError(f"restore_best={restore_best!r} is not allowed: use True or False")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, float(min_delta), mode
        self.restore_best, self.start_from_epoch = restore_best, start_from_epoch
        self.best_value, self.best_index, self.best_params, self.best_buffers, self.wait = None, None, None, None, 0

    def on_train_begin(self, trainer):
        trainer.history.monitor, trainer.history.mode = self.monitor, self.mode
        if self.monitor.startswith("val") and trainer.validation is None:
            raise ConfigError(f"early stopping monitors {self.monitor!r} but no validation set was given")

    def on_evaluation(self, trainer, row):
        if row["epoch"] < self.start_from_epoch:
            return
        value = row.get(self.monitor)
        if trainer.history.is_better(value, self.best_value, self.min_delta):
            self.best_value, self.best_index, self.wait = value, len(trainer.history.rows) - 1, 0
            if self.restore_best:
                self.best_params = trainer.model.params.copy()
                self.best_buffers = {k: v.copy() for k, v in trainer.model.state_buffers().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop("early_stopped", f"{self.monitor} did not improve by more than {self.min_delta:g} "
                             f"for {self.patience} evaluations (best {self.best_value:.6g})")

    def on_train_end(self, trainer):
        history = trainer.history
        if self.best_index is None:
            return
        history.best_index = self.best_index
        if self.restore_best and self.best_params is not None:
            trainer.model.params[...] = self.best_params
            trainer.model.load_state_buffers(self.best_buffers)
            history.stopped_reason += f"; restored epoch {history.best_epoch} ({self.monitor} {self.best_value:.6g})"

    def state_dict(self):
        return {"best_value": self.best_value, "best_index": self.best_index, "wait": self.wait,
                "best_params": None if self.best_params is None else self.best_params.copy(),
                "best_buffers": None if self.best_buffers is None else dict(self.best_buffers)}

    def load_state_dict(self, state):
        self.best_value, self.wait = state["best_value"], state["wait"]
        self.best_index = state.get("best_index")
        self.best_params = None if state["best_params"] is None else np.array(state["best_params"])
        buffers = state.get("best_buffers")
        self.best_buffers = None if buffers is None else {k: np.array(v) for k, v in buffers.items()}


def overfitting_onset(history, metric="loss", min_delta=0.0, window=5):
    """The epoch where overfitting begins: from it on, validation no longer improves while training still does.

    ``metric`` "loss" (default: accuracies saturate at 100% on small sets while the losses keep
    diverging) or "acc".  Both curves are smoothed by a centred ``window``-evaluation mean.  Onset =
    the first evaluation e with val(e') not better than val(e) by more than ``min_delta`` for all
    e' > e, and train(e') better than train(e) by more than ``min_delta`` for some e' > e (the gap
    widens).  None when there is no such evaluation or no validation curve.
    """
    if metric not in ("loss", "acc"):
        raise ConfigError(f"metric={metric!r} is unknown: use 'loss' or 'acc'")
    rows = history.rows
    sign = -1.0 if metric == "loss" else 1.0  # larger is better below
    train = sign * centred_mean(history.column(f"train_{metric}"), window)
    val = sign * centred_mean(history.column(f"val_{metric}"), window)
    if len(rows) < 2 or not np.all(np.isfinite(val)) or not np.all(np.isfinite(train)):
        return None
    best_val_after = np.maximum.accumulate(val[::-1])[::-1]
    best_train_after = np.maximum.accumulate(train[::-1])[::-1]
    for e in range(len(rows) - 1):
        if best_val_after[e + 1] <= val[e] + min_delta and best_train_after[e + 1] > train[e] + min_delta:
            return rows[e]["epoch"]
    return None


class EpochLogger(Callback):
    """Prints one line per evaluation: epoch, losses, accuracies, seconds."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_evaluation(self, trainer, row):
        parts = [f"epoch {row['epoch']:>3}", f"iter {row['iteration']:>6}", f"train_loss {row['train_loss']:.4f}"]
        for key in ("train_acc", "val_loss", "val_acc"):
            if row.get(key) is not None:
                parts.append(f"{key} {row[key]:.4f}")
        parts.append(f"lr {row['lr']:.3g}")
        parts.append(f"{row['seconds']:.1f}s")
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


class Trainer:
    """The loop and all its state: model, optimizer, sampler, history, iteration counter."""

    def __init__(self, model, train, optimizer, batch_size=100, epochs=None, iterations=None, validation=None,
                 callbacks=(), gradient="backprop", sampling="shuffle", seed=0, eval_every=None, schedule=None,
                 clip_norm=None, progress=None, divergence_factor=100.0, prefetch=False, checkpoint=None,
                 checkpoint_every=None, train_metrics="full"):
        if gradient not in GRADIENTS:
            raise ConfigError(f"gradient={gradient!r} is unknown: use {' or '.join(GRADIENTS)}")
        if train_metrics not in TRAIN_METRICS:
            raise ConfigError(f"train_metrics={train_metrics!r} is unknown: use {' or '.join(TRAIN_METRICS)}")
        if epochs is None and iterations is None:
            epochs = 1
        if epochs is not None and iterations is not None:
            raise ConfigError("give epochs or iterations, not both")
        check_data_fits(model, train, "training")
        if validation is not None:
            check_data_fits(model, validation, "validation")
        if model.is_classifier and model.classes is None and getattr(train, "classes", None) is not None:
            model.classes = np.asarray(train.classes)      # the labels the data came with: predict gives them back
        self.model, self.train, self.optimizer, self.validation = model, train, optimizer, validation
        self.callbacks = list(callbacks)
        self.gradient, self.schedule, self.clip_norm = gradient, schedule, clip_norm
        self.progress, self.divergence_factor = progress, divergence_factor
        self.sampler = BatchSampler(len(train), batch_size, mode=sampling, seed=seed)
        self.loader = (PrefetchLoader if prefetch else BatchLoader)(train, self.sampler, dtype=model.params.dtype)
        self.iterations_per_epoch = self.sampler.iterations_per_epoch
        if iterations is not None:
            check_whole_number("iterations", iterations)
            self.total_iterations = iterations
        else:
            check_whole_number("epochs", epochs)
            self.total_iterations = epochs * self.iterations_per_epoch
        check_whole_number("eval_every", eval_every, optional=True)
        self.eval_every = eval_every or self.iterations_per_epoch
        check_whole_number("checkpoint_every", checkpoint_every, optional=True)
        self.checkpoint, self.checkpoint_every = checkpoint, checkpoint_every  # checkpoint(trainer) writes one
        self.history = History()
        # train_metrics="running": [sum of batch losses, correct predictions, samples] since the last evaluation
        self.running = [0.0, 0, 0] if train_metrics == "running" else None
        self.iteration = 0
        self.seconds = 0.0
        self.initial_loss = None
        self.last_good_params = model.params.copy()
        self.last_good_buffers = _copies(model.state_buffers())  # BatchNorm averages go back with the params
        self._stop = None

    # -- control -----------------------------------------------------------------------------------

    def stop(self, status, reason):
        """Ask the loop to end after the current iteration."""
        if self._stop is None:
            self._stop = (status, reason)

    @property
    def epoch(self):
        """Completed epochs, fractional between boundaries."""
        return self.iteration / self.iterations_per_epoch

    # -- checkpoints -------------------------------------------------------------------------------

    def state_dict(self):
        """Everything the loop needs to continue bit for bit: NumPy arrays and JSON-able values."""
        model = self.model
        history = self.history.state_dict()
        history["iteration_loss"] = np.array(history["iteration_loss"], dtype=np.float64)
        counts, callbacks = {}, {}
        for cb in self.callbacks:
            name = type(cb).__name__
            counts[name] = counts.get(name, -1) + 1
            callbacks[f"{name}.{counts[name]}"] = cb.state_dict()
        return {
            "iteration": self.iteration, "seconds": self.seconds, "initial_loss": self.initial_loss,
            "stop": None if self._stop is None or self._stop[0] == "interrupted" else list(self._stop),
            "params": model.params.copy(), "last_good_params": self.last_good_params.copy(),
            "buffers": _copies(model.state_buffers()), "last_good_buffers": _copies(self.last_good_buffers),
            "layer_rngs": {str(k): layer.rng.bit_generator.state for k, layer in enumerate(model.layers)
                           if isinstance(getattr(layer, "rng", None), np.random.Generator)},
            "optimizer": self.optimizer.state_dict(), "sampler": self.sampler.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "history": history, "callbacks": callbacks,
            "running": None if self.running is None else list(self.running),
        }

    def load_state_dict(self, state):
        """Continue from ``state_dict()``: refuses state whose sizes do not fit this model and data."""
        model = self.model
        try:
            params, sampler = np.asarray(state["params"]), state["sampler"]
            if params.shape != model.params.shape:
                raise CheckpointError(f"the checkpoint holds {params.size} parameters but this model has "
                                      f"{model.params.size}: it is for another architecture")
            if len(sampler["order"]) != self.sampler.n or sampler["mode"] != self.sampler.mode:
                raise CheckpointError(f"the checkpoint's sampler is {sampler['mode']} over {len(sampler['order'])} "
                                      f"samples but this run's is {self.sampler.mode} over {self.sampler.n}")
            self.optimizer.load_state_dict(state["optimizer"])  # validates before it changes anything
            if self.schedule is not None:
                self.schedule.load_state_dict(state["schedule"])
            model.params[...] = params
            self.last_good_params[...] = state["last_good_params"]
            model.load_state_buffers(state["buffers"])
            self.last_good_buffers = _copies(state["last_good_buffers"])
            for k, rng_state in state["layer_rngs"].items():
                model.layers[int(k)].rng.bit_generator.state = rng_state
            self.sampler.load_state_dict(sampler)
            history = dict(state["history"])
            history["iteration_loss"] = np.asarray(history["iteration_loss"]).tolist()
            self.history.load_state_dict(history)
            counts = {}
            for cb in self.callbacks:
                name = type(cb).__name__
                counts[name] = counts.get(name, -1) + 1
                saved = state["callbacks"].get(f"{name}.{counts[name]}")
                if saved:
                    cb.load_state_dict(saved)
            self.iteration, self.seconds = int(state["iteration"]), float(state["seconds"])
            self.initial_loss = state["initial_loss"]
            if self.running is not None:
                running = state.get("running")  # absent: saved with full train metrics
                self.running = [0.0, 0, 0] if running is None else [float(running[0]), int(running[1]),
                                                                   int(running[2])]
            self._stop = None if state["stop"] is None else tuple(state["stop"])
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise CheckpointError(f"the checkpoint's training state is incomplete or malformed ({exc!r})") from None

    # -- the loop ------------------------------------------------------------------------------------

    def run(self):
        for cb in self.callbacks:
            cb.on_train_begin(self)
        bar = self._progress_bar()
        model, optimizer = self.model, self.optimizer
        start = time.perf_counter() - self.seconds
        try:
            while self.iteration < self.total_iterations and self._stop is None:
                if self.schedule is not None:
                    optimizer.lr = self.schedule.lr_at(self.iteration, self.iterations_per_epoch,
                                                       self.total_iterations)
                xb, tb = self.loader.next()                                   # 1. draw a mini-batch
                loss = self._gradient(xb, tb)                                 # 2. compute the gradient
                if not self._check_divergence(loss):
                    break
                if self.clip_norm is not None:
                    from .optimizers import clip_grad_norm

                    clip_grad_norm(model.grads, self.clip_norm)
                optimizer.update(model.params, model.grads)                   # 3. update the parameters
                self.iteration += 1                                           # 4. repeat
                self.history.iteration_loss.append(loss)
                if bar is not None:
                    bar.update(1)
                    if self.iteration % 50 == 0:
                        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                if self.iteration % self.eval_every == 0 or self.iteration == self.total_iterations:
                    self.seconds = time.perf_counter() - start
                    self._evaluate()
                if self.checkpoint is not None and (self.iteration % self.iterations_per_epoch == 0 or (
                        self.checkpoint_every and self.iteration % self.checkpoint_every == 0)):
                    self.seconds = time.perf_counter() - start
                    self.checkpoint(self)
            if self._stop is None:
                self._stop = ("completed", f"trained {self.iteration} iterations ({self._epoch_label()} epochs)")
        except KeyboardInterrupt:
            self.stop("interrupted", f"interrupted at iteration {self.iteration}")
        finally:
            self.loader.close()
            if bar is not None:
                bar.close()
        self.seconds = time.perf_counter() - start
        if self.checkpoint is not None:
            self.checkpoint(self)  # before on_train_end: restore_best must not leak into the resumable state
        self.history.status, self.history.stopped_reason = self._stop
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _gradient(self, xb, tb):
        model = self.model
        if self.gradient == "backprop":
            loss, _ = model.gradient(xb, tb)
            self._tally(loss, tb)
            return loss
        loss = model.loss(xb, tb, train=True)  # as backprop: draws this batch's Dropout masks, moves BatchNorm's
        self._tally(loss, tb)                  # averages; differences reuse those masks
        model.grads[...] = model.numerical_gradient(xb, tb)
        return loss

    def _tally(self, loss, tb):
        """Running train metrics: add this batch's loss and correct predictions (its forward pass's output)."""
        running = self.running
        if running is not None:
            running[0] += loss * len(tb)
            running[1] += self.model.count_correct(self.model.output, tb)
            running[2] += len(tb)

    def _check_divergence(self, loss):
        """False (and stop as ``diverged``) when the loss is NaN/inf or far above where it began."""
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = max(abs(loss), 1e-8)
        if math.isfinite(loss) and loss <= self.divergence_factor * (self.initial_loss or 1.0):
            return True
        lr = self.optimizer.lr
        self.model.params[...] = self.last_good_params
        self.model.load_state_buffers(self.last_good_buffers)
        self.stop("diverged", f"lr={lr:g} diverged at iteration {self.iteration} (loss={loss:.4g}); "
                              f"try lr <= {lr / 10:g}")
        return False

    def _train_metrics(self):
        """(train loss, train accuracy or None) for this evaluation; restarts the running sums."""
        if self.running is None or not self.running[2]:
            return self.model.evaluate(self.train)
        total, correct, seen = self.running
        self.running = [0.0, 0, 0]
        return total / seen, correct / seen if self.train.is_classification else None

    def _evaluate(self):
        model = self.model
        train_loss, train_acc = self._train_metrics()
        row = {"epoch": self._epoch_label(), "iteration": self.iteration, "train_loss": train_loss,
               "train_acc": train_acc, "val_loss": None, "val_acc": None, "lr": float(self.optimizer.lr),
               "seconds": round(self.seconds, 3)}
        if self.validation is not None:
            row["val_loss"], row["val_acc"] = model.evaluate(self.validation)
        history = self.history
        history.rows.append(row)
        if not math.isfinite(train_loss):
            self.model.params[...] = self.last_good_params
            self.model.load_state_buffers(self.last_good_buffers)
            self.stop("diverged", f"lr={self.optimizer.lr:g} diverged by iteration {self.iteration} "
                                  f"(train loss={train_loss:.4g}); try lr <= {self.optimizer.lr / 10:g}")
            return
        self.last_good_params[...] = model.params
        self.last_good_buffers = _copies(model.state_buffers())
        monitor = history.monitor if row.get(history.monitor) is not None else "train_loss"
        best = None if history.best_index is None else history.rows[history.best_index].get(monitor)
        if history.is_better(row.get(monitor), best):
            history.best_index = len(history.rows) - 1
        if self.schedule is not None:
            self.schedule.observe(row.get(monitor))
        for cb in self.callbacks:
            cb.on_evaluation(self, row)

    def _epoch_label(self):
        """Whole epochs at epoch boundaries, else the fraction (three decimals)."""
        if self.iteration % self.iterations_per_epoch == 0:
            return self.iteration // self.iterations_per_epoch
        return round(self.iteration / self.iterations_per_epoch, 3)

    def _progress_bar(self):
        if self.progress is False:
            return None
        from tqdm.auto import tqdm

        from .display import in_notebook

        # None: a bar on a terminal or in a notebook (tqdm.auto draws a notebook bar there), none in a log file
        disable = not self.progress if self.progress is not None else (False if in_notebook() else None)
        return tqdm(total=self.total_iterations, initial=self.iteration, unit="it", leave=False,
                    disable=disable, dynamic_ncols=True)


def _copies(arrays):
    return {name: value.copy() for name, value in arrays.items()}


def check_data_fits(model, dataset, role):
    """Refuse data whose features or labels the model cannot take, with the numbers."""
    if dataset.n_features != model.n_in:
        raise DataError(f"the {role} data has {dataset.n_features} features per sample but the model's "
                        f"input layer has {model.n_in}")
    t = dataset.t
    if model.is_classifier and t.ndim == 1:
        top = int(t.max()) if len(t) else 0
        if top >= model.n_out:
            raise DataError(f"the {role} data has label {top} but the model has only {model.n_out} outputs "
                            f"(labels 0..{model.n_out - 1})")
    elif t.ndim == 2 and t.shape[1] != model.n_out:
        raise DataError(f"the {role} targets have {t.shape[1]} columns but the model has {model.n_out} outputs")


def fit(model, train, optimizer, batch_size=100, epochs=None, iterations=None, validation=None, callbacks=(),
        gradient="backprop", sampling="shuffle", seed=0, eval_every=None, schedule=None, clip_norm=None,
        progress=None, prefetch=False, train_metrics="full"):
    """Train ``model`` on ``train`` by mini-batch gradient descent; returns the History.

    ``gradient`` is "backprop" or "numerical" (the tutorial's central differences).
    ``progress``: None shows a bar on a terminal or in a notebook, False never, True always.
    ``prefetch``: gather the next batch on a background thread while the current one trains.
    ``train_metrics``: "full" (the whole training set at each evaluation) or "running" (the batches' since the last).
    """
    trainer = Trainer(model, train, optimizer, batch_size=batch_size, epochs=epochs, iterations=iterations,
                      validation=validation, callbacks=callbacks, gradient=gradient, sampling=sampling, seed=seed,
                      eval_every=eval_every, schedule=schedule, clip_norm=clip_norm, progress=progress,
                      prefetch=prefetch, train_metrics=train_metrics)
    return trainer.run()
