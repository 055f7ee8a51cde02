"""Hooks into the one loop (``training.Trainer``): the events, early stopping, the epoch log.

A callback overrides the events it needs; the Trainer calls only those, so an
unused event costs nothing per iteration.  Events, in the order they happen:

- ``on_train_begin(trainer)``: before the first iteration of ``run()``;
- ``before_batch(trainer)``: before a mini-batch is drawn (``trainer.iteration`` is the one about to run);
- ``after_gradient(trainer)``: ``trainer.xb``, ``trainer.tb``, ``trainer.loss`` and ``model.grads`` are this
  batch's; a hook may change ``trainer.loss`` and the gradient in place (penalties, clipping, logging);
- ``after_step(trainer)``: after the update; ``trainer.iteration`` counts it;
- ``on_evaluation(trainer, row)``: after each evaluation (every epoch, or ``eval_every`` iterations);
- ``after_epoch(trainer)``: at each epoch boundary, after its evaluation;
- ``on_train_end(trainer)``: once, when the run has ended (completed, stopped, diverged, interrupted).

``trainer.stop(status, reason)`` ends the fit after the current iteration.
``CancelBatch`` raised in ``before_batch`` skips the batch before it is drawn
(no iteration); raised in ``after_gradient`` it skips the update (the iteration
counts and its loss is recorded).
"""

import sys
import types

import numpy as np

from .errors import ConfigError
from .history import METRIC_COLUMNS, is_better
from .validation import check_number, check_whole_number

EVENTS = ("on_train_begin", "before_batch", "after_gradient", "after_step", "on_evaluation", "after_epoch",
          "on_train_end")
EARLY_STOPPING_RULES = ("keras", "sklearn")


class CancelBatch(Exception):
    """Raised by a ``before_batch`` or ``after_gradient`` hook: no update for this batch."""


class Callback:
    """Hooks into the loop (see the module docstring); override the events you need."""

    def on_train_begin(self, trainer):
        pass

    def before_batch(self, trainer):
        pass

    def after_gradient(self, trainer):
        pass

    def after_step(self, trainer):
        pass

    def on_evaluation(self, trainer, row):
        pass

    def after_epoch(self, trainer):
        pass

    def on_train_end(self, trainer):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def hooks(callbacks, event):
    """The bound ``event`` methods of the callbacks that override it (plain objects: any they have)."""
    found = []
    for cb in callbacks:
        method = getattr(type(cb), event, None)
        if method is not None and method is not getattr(Callback, event):
            found.append(getattr(cb, event))
    return found


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` evaluations.

    ``mode`` "min" (losses), "max" (accuracies) or "auto" (from the name; a metric of your own, added
    to the rows by ``Trainer(metrics=...)``, needs "min" or "max").  Evaluations before epoch
    ``start_from_epoch`` are ignored (neither best nor counted).  ``restore_best`` puts the best
    evaluation's parameters and state (BatchNorm averages) back at the end, bit for bit, however
    training ended (patience, epochs done, divergence); History's best epoch is then the restored one
    and its ``stopped_reason`` says so.

    ``rule`` "keras": the best moves only on an improvement by more than ``min_delta``, which also
    resets the count.  "sklearn" (scikit-learn's ``tol`` / ``n_iter_no_change``): the best is the best
    value seen; the count resets when a value reaches best -/+ min_delta.  ``reduce_lr_by``: when
    patience runs out, divide the optimizer's lr by it and carry on, stopping only once lr <= ``min_lr``
    (scikit-learn's ``learning_rate="adaptive"``).  ``report(event, stopper, trainer)`` is told of each
    "stop", "lr_floor" (stopped at min_lr) and "reduce_lr".
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best=True,
                 start_from_epoch=0, rule="keras", reduce_lr_by=None, min_lr=0.0, report=None):
        known = METRIC_COLUMNS[2:6]
        if mode == "auto":
            if monitor not in known:
                raise ConfigError(f"monitor={monitor!r} is unknown: use one of {', '.join(known)} (or give mode "
                                  f"'min' or 'max' for a metric of your own)")
            mode = "min" if monitor.endswith("loss") else "max"
        if mode not in ("min", "max"):
            raise ConfigError(f"mode={mode!r} is unknown: use 'min', 'max' or 'auto'")
        if not isinstance(monitor, str):
            raise ConfigError(f"monitor={monitor!r} is not allowed: name a metric, such as {', '.join(known)}")
        check_whole_number("patience", patience)
        check_number("min_delta", min_delta, low=0)
        check_number("start_from_epoch", start_from_epoch, low=0)
        if not isinstance(restore_best, bool):
            raise ConfigError(f"restore_best={restore_best!r} is not allowed: use True or False")
        if rule not in EARLY_STOPPING_RULES:
            raise ConfigError(f"rule={rule!r} is unknown: use {' or '.join(EARLY_STOPPING_RULES)}")
        check_number("reduce_lr_by", reduce_lr_by, low=1, low_open=True, optional=True)
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, float(min_delta), mode
        self.restore_best, self.start_from_epoch, self.rule = restore_best, start_from_epoch, rule
        self.reduce_lr_by, self.min_lr = reduce_lr_by, check_number("min_lr", min_lr, low=0)
        self.report = report
        self.best_value, self.best_index, self.best_params, self.best_buffers, self.wait = None, None, None, None, 0

    def on_train_begin(self, trainer):
        trainer.history.monitor, trainer.history.mode = self.monitor, self.mode
        if self.monitor.startswith("val") and trainer.validation is None and self.monitor not in trainer.metrics:
            raise ConfigError(f"early stopping monitors {self.monitor!r} but no validation set was given")

    def on_evaluation(self, trainer, row):
        if row["epoch"] < self.start_from_epoch:
            return
        value = row.get(self.monitor)
        sklearn = self.rule == "sklearn"
        improved = is_better(value, self.best_value, self.mode, self.min_delta, inclusive=sklearn)
        if improved or (sklearn and is_better(value, self.best_value, self.mode)):
            self.best_value, self.best_index = value, len(trainer.history.rows) - 1
            if self.restore_best:
                self.best_params = trainer.model.params.copy()
                self.best_buffers = {k: v.copy() for k, v in trainer.model.state_buffers().items()}
        if improved:
            self.wait = 0
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        if self.reduce_lr_by is not None and trainer.optimizer.lr > self.min_lr:
            trainer.optimizer.lr /= self.reduce_lr_by
            self.wait = 0
            self._report("reduce_lr", trainer)
            return
        self._report("stop" if self.reduce_lr_by is None else "lr_floor", trainer)
        best = "none" if self.best_value is None else f"{self.best_value:.6g}"
        trainer.stop("early_stopped", f"{self.monitor} did not improve by more than {self.min_delta:g} "
                     f"for {self.patience} evaluations (best {best})")

    def _report(self, event, trainer):
        if self.report is not None:
            self.report(event, self, trainer)

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


def early_stop_epoch(rows, **settings):
    """The epoch at which ``EarlyStopping(**settings)`` would end a run with these evaluation rows, or None.

    The rule is replayed on the rows as the Trainer would feed them (what a finished run says about
    where early stopping would have stopped it).
    """
    stopper = EarlyStopping(**{**settings, "restore_best": False})

    replay = types.SimpleNamespace(history=types.SimpleNamespace(rows=[]), stopped=None)
    replay.stop = lambda status, reason: setattr(replay, "stopped", status)
    for row in rows:
        replay.history.rows.append(row)
        stopper.on_evaluation(replay, row)
        if replay.stopped:
            return row["epoch"]
    return None
