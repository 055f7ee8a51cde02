"""Step 4: repeat.  ``Trainer`` is THE mini-batch loop: ``fit``, the CLI's runs, sweeps, the LR range
test, the scikit-learn estimators and the board's playground all train through it.  It runs
draw -> gradient -> update for a number of iterations, evaluates at every epoch boundary (or every
``eval_every`` iterations), records a ``History``, and stops early, on divergence, or when asked to
(Ctrl-C).  What differs between its users is plugged in: the sampler, the optimizer (any
``update(params, grads)`` with an ``lr``), the schedule, extra metrics, and callbacks on the loop's
events (``sgdlab.callbacks``).

Train metrics at an evaluation are, with ``train_metrics="full"``, the loss and
accuracy of the whole training set under the current parameters (the tutorial's);
with ``"running"``, the mean loss and the accuracy of the mini-batches since the
previous evaluation, as each was seen before its update (what Keras and
scikit-learn report).  Running metrics cost nothing; a full pass over a large
training set can cost as much as training on it.

Epoch boundaries are integer iteration counts: an epoch is
ceil(n / batch_size) iterations, so no evaluation is skipped when the data size
is not a multiple of the batch.

Divergence has one rule, ``divergence``: a NaN or infinite loss (either sign), NaN or infinite
parameters, or a loss above ``factor`` x the first one (the explosion rule).
"""

import math
import time

import numpy as np

from .batches import BatchLoader, BatchSampler, PrefetchLoader, resolve_sampling
from .callbacks import EVENTS, Callback, CancelBatch, EarlyStopping, EpochLogger, hooks
from .data.checks import check_fits_dtype
from .errors import CheckpointError, ConfigError, DataError
from .history import METRIC_COLUMNS, History, overfitting_onset, row_is_better
from .losses import check_targets
from .validation import check_whole_number

__all__ = ["Trainer", "fit", "divergence", "check_data_fits", "DIVERGENCE_FACTOR", "GRADIENTS", "TRAIN_METRICS",
           "History", "METRIC_COLUMNS", "overfitting_onset", "Callback", "CancelBatch", "EarlyStopping",
           "EpochLogger"]

GRADIENTS = ("backprop", "numerical")
TRAIN_METRICS = ("full", "running")
DIVERGENCE_FACTOR = 100.0


def divergence(loss=None, initial_loss=None, factor=DIVERGENCE_FACTOR, arrays=()):
    """Why training has diverged, or None: THE rule (Trainer, sweeps, estimators and the board use it).

    Diverged: ``loss`` is NaN or +/-inf; or any of ``arrays`` (parameters) holds a NaN or an infinity; or
    loss > factor x initial_loss (the explosion rule; ``factor`` None turns it off).
    """
    if loss is not None and not math.isfinite(loss):
        return f"loss={loss:.4g}"
    if loss is not None and factor is not None and initial_loss is not None and loss > factor * initial_loss:
        return f"{loss:.4g} > {factor:g} x initial {initial_loss:.4g}"
    for a in arrays:
        if not np.isfinite(a).all():
            return "parameters hold NaN or infinity"
    return None


class Trainer:
    """The loop and all its state: model, optimizer, sampler, history, iteration counter.

    ``sampler``: any object with ``next()`` (a batch's row indices), ``batch_size``, ``n``, ``mode`` and
    ``iterations_per_epoch``; by default ``BatchSampler(len(train), batch_size, sampling, seed)``.
    ``metrics``: {name: function(trainer) -> number}, computed at each evaluation and added to its row
    (so early stopping may monitor them).  ``divergence_factor``: the explosion rule's factor (None: off).
    ``param_check_every``: also check the parameters for NaN/inf every that many iterations (they are
    always checked at each evaluation).
    """

    def __init__(self, model, train, optimizer, batch_size=100, epochs=None, iterations=None, validation=None,
                 callbacks=(), gradient="backprop", sampling="auto", seed=0, eval_every=None, schedule=None,
                 clip_norm=None, progress=None, divergence_factor=DIVERGENCE_FACTOR, prefetch=False, checkpoint=None,
                 checkpoint_every=None, train_metrics="running", sampler=None, metrics=None, param_check_every=None,
                 checkpoint_seconds=None):
        if gradient not in GRADIENTS:
            raise ConfigError(f"gradient={gradient!r} is unknown: use {' or '.join(GRADIENTS)}")
        if train_metrics not in TRAIN_METRICS:
            raise ConfigError(f"train_metrics={train_metrics!r} is unknown: use {' or '.join(TRAIN_METRICS)}")
        if epochs is None and iterations is None:
            epochs = 1
        if epochs is not None and iterations is not None:
            raise ConfigError("give epochs or iterations, not both")
        from .data import as_dataset

        train = as_dataset(train, "training")
        check_data_fits(model, train, "training")
        if validation is not None:
            validation = as_dataset(validation, "validation")
            check_data_fits(model, validation, "validation")
        if model.is_classifier and model.classes is None and getattr(train, "classes", None) is not None:
            model.classes = np.asarray(train.classes)      # the labels the data came with: predict gives them back
        self.model, self.train, self.optimizer, self.validation = model, train, optimizer, validation
        self.callbacks = list(callbacks)
        self.metrics = dict(metrics or {})
        self.gradient, self.schedule, self.clip_norm = gradient, schedule, clip_norm
        self.progress, self.divergence_factor = progress, divergence_factor
        if sampler is None:
            sampling, prefetch = resolve_sampling(sampling, train, prefetch)  # auto: block-shuffle for a store
            sampler = BatchSampler(len(train), batch_size, mode=sampling, seed=seed)
        self.sampler = sampler
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
        self.checkpoint_seconds = checkpoint_seconds  # also when this many seconds passed since the last one
        self.param_check_every = check_whole_number("param_check_every", param_check_every, optional=True)
        self.history = History()
        # train_metrics="running": [sum of batch losses, correct predictions, samples] since the last evaluation
        self.running = [0.0, 0, 0] if train_metrics == "running" else None
        self.count_accuracy = train.is_classification  # running accuracy too (off: no train_acc, ~1% faster)
        self.iteration = 0
        self.seconds = 0.0
        self.initial_loss = None
        self.last_good_params = model.params.copy()
        self.last_good_buffers = _copies(model.state_buffers())  # BatchNorm averages go back with the params
        self.xb = self.tb = self.loss = None                    # the current batch, for the hooks
        self.correct = 0
        self._stop = None
        self._begun = False

    # -- control -----------------------------------------------------------------------------------

    def stop(self, status, reason):
        """Ask the loop to end after the current iteration."""
        if self._stop is None:
            self._stop = (status, reason)

    @property
    def epoch(self):
        """Completed epochs, fractional between boundaries."""
        return self.iteration / self.iterations_per_epoch

    @property
    def indices(self):
        """The current batch's row indices in the training set."""
        return self.loader.indices

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

    def run(self, iterations=None):
        """Train to the end; returns the History.  ``iterations``: run at most that many more and return
        (``history.status`` stays "running" while the end is not reached; the playground steps this way)."""
        hook = {event: hooks(self.callbacks, event) for event in EVENTS}
        if not self._begun:
            self._begun = True
            for on_train_begin in hook["on_train_begin"]:
                on_train_begin(self)
        until = self.total_iterations
        if iterations is not None:
            until = min(until, self.iteration + check_whole_number("iterations", iterations))
        bar = self._progress_bar()
        model, optimizer = self.model, self.optimizer
        check_every = self.param_check_every
        start = time.perf_counter() - self.seconds
        last_checkpoint = time.perf_counter()
        try:
            while self.iteration < until and self._stop is None:
                if self.schedule is not None:
                    optimizer.lr = self.schedule.lr_at(self.iteration, self.iterations_per_epoch,
                                                       self.total_iterations)
                try:
                    for before_batch in hook["before_batch"]:
                        before_batch(self)
                except CancelBatch:
                    continue                                                  # nothing drawn: not an iteration
                cancelled = False
                try:
                    self.xb, self.tb = self.loader.next()                     # 1. draw a mini-batch
                    self.loss = self._gradient(self.xb, self.tb)              # 2. compute the gradient
                    for after_gradient in hook["after_gradient"]:
                        after_gradient(self)
                except CancelBatch:
                    cancelled = True
                loss = self.loss
                if not cancelled:
                    reason = divergence(loss, self.initial_loss, self.divergence_factor)
                    if self.initial_loss is None and math.isfinite(loss):
                        self.initial_loss = max(abs(loss), 1e-8)
                    if reason is not None:
                        self._diverged(f"at iteration {self.iteration} (loss={loss:.4g})")
                        break
                    self._tally(loss, self.tb)
                    if self.clip_norm is not None:
                        from .optimizers import clip_grad_norm

                        clip_grad_norm(model.grads, self.clip_norm)
                    optimizer.update(model.params, model.grads)               # 3. update the parameters
                self.iteration += 1                                           # 4. repeat
                self.history.iteration_loss.append(loss)
                if check_every and self.iteration % check_every == 0 and divergence(arrays=(model.params,)):
                    self._diverged(f"at iteration {self.iteration} (parameters hold NaN or infinity)")
                    break
                for after_step in hook["after_step"]:
                    after_step(self)
                if bar is not None:
                    bar.update(1)
                    if self.iteration % 50 == 0:
                        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                if self.iteration % self.eval_every == 0 or self.iteration == self.total_iterations:
                    self.seconds = time.perf_counter() - start
                    self._evaluate(hook["on_evaluation"])
                if self.iteration % self.iterations_per_epoch == 0:
                    for after_epoch in hook["after_epoch"]:
                        after_epoch(self)
                now = time.perf_counter()
                if self.checkpoint is not None and (self.iteration % self.iterations_per_epoch == 0 or (
                        self.checkpoint_every and self.iteration % self.checkpoint_every == 0) or (
                        self.checkpoint_seconds and now - last_checkpoint >= self.checkpoint_seconds)):
                    self.seconds, last_checkpoint = now - start, now
                    self.checkpoint(self)
            if self._stop is None and self.iteration >= self.total_iterations:
                self._stop = ("completed", f"trained {self.iteration} iterations ({self._epoch_label()} epochs)")
        except KeyboardInterrupt:
            self.stop("interrupted", f"interrupted at iteration {self.iteration}")
        finally:
            self.loader.close()
            if bar is not None:
                bar.close()
        self.seconds = time.perf_counter() - start
        if self._stop is None:
            self.history.status = "running"
            return self.history
        if self.checkpoint is not None:
            self.checkpoint(self)  # before on_train_end: restore_best must not leak into the resumable state
        self.history.status, self.history.stopped_reason = self._stop
        for on_train_end in hook["on_train_end"]:
            on_train_end(self)
        return self.history

    def _gradient(self, xb, tb):
        """Step 2, backprop or central differences (the one place that chooses); returns the batch loss.

        With running train metrics it also counts the batch's correct predictions from its forward pass.
        """
        model = self.model
        if self.gradient == "backprop":
            loss, _ = model.gradient(xb, tb)
            self._count(tb)
            return loss
        loss = model.loss(xb, tb, train=True)  # as backprop: draws this batch's Dropout masks, moves BatchNorm's
        self._count(tb)                        # averages; differences reuse those masks
        model.grads[...] = model.numerical_gradient(xb, tb)
        return loss

    def _count(self, tb):
        if self.running is not None and self.count_accuracy:
            self.correct = self.model.count_correct(self.model.output, tb)

    def _tally(self, loss, tb):
        """Running train metrics: add this batch's loss (after the hooks) and its correct predictions."""
        running = self.running
        if running is not None:
            running[0] += loss * len(tb)
            running[1] += self.correct
            running[2] += len(tb)

    def _diverged(self, where):
        """Stop as ``diverged``: the last good parameters (and BatchNorm state) back, and a hint."""
        lr = self.optimizer.lr
        self.model.params[...] = self.last_good_params
        self.model.load_state_buffers(self.last_good_buffers)
        self.stop("diverged", f"lr={lr:g} diverged {where}; try lr <= {lr / 10:g}")

    def _train_metrics(self):
        """(train loss, train accuracy or None) for this evaluation; restarts the running sums."""
        if self.running is None or not self.running[2]:
            return self.model.evaluate(self.train)
        total, correct, seen = self.running
        self.running = [0.0, 0, 0]
        return total / seen, correct / seen if self.train.is_classification and self.count_accuracy else None

    def _evaluate(self, on_evaluation=None):
        model = self.model
        train_loss, train_acc = self._train_metrics()
        row = {"epoch": self._epoch_label(), "iteration": self.iteration, "train_loss": train_loss,
               "train_acc": train_acc, "val_loss": None, "val_acc": None, "lr": float(self.optimizer.lr),
               "seconds": round(self.seconds, 3)}
        if self.validation is not None:
            row["val_loss"], row["val_acc"] = model.evaluate(self.validation)
        for name, metric in self.metrics.items():
            row[name] = metric(self)
        history = self.history
        history.rows.append(row)
        if divergence(train_loss, arrays=(model.params,)) is not None:
            self._diverged(f"by iteration {self.iteration} (train loss={train_loss:.4g})")
            return
        self.last_good_params[...] = model.params
        self.last_good_buffers = _copies(model.state_buffers())
        best = None if history.best_index is None else history.rows[history.best_index]
        if row_is_better(row, best, history.monitor, history.mode):
            history.best_index = len(history.rows) - 1
        if self.schedule is not None:
            self.schedule.observe(row.get(history.monitor if row.get(history.monitor) is not None
                                          else "train_loss"))
        for hook in hooks(self.callbacks, "on_evaluation") if on_evaluation is None else on_evaluation:
            hook(self, row)

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
    check_targets(model.loss_layer.name, t, role)
    check_fits_dtype(dataset.x, model.dtype, f"the {role} data", dataset.scale)


def fit(model, train, optimizer, batch_size=100, epochs=None, iterations=None, validation=None, callbacks=(),
        gradient="backprop", sampling="auto", seed=0, eval_every=None, schedule=None, clip_norm=None,
        progress=None, prefetch=False, train_metrics="running"):
    """Train ``model`` on ``train`` by mini-batch gradient descent; returns the History.

    ``gradient`` is "backprop" or "numerical" (the tutorial's central differences).
    ``progress``: None shows a bar on a terminal or in a notebook, False never, True always.
    ``prefetch``: gather the next batch on a background thread while the current one trains.
    ``train``, ``validation``: Datasets or pairs ``(x, t)`` of arrays.
    ``sampling``: "auto" (exact shuffle in memory, block-shuffle with prefetch for an on-disk store), "shuffle",
    "replacement" or "block-shuffle".
    ``train_metrics``: "running" (the batches' since the last evaluation, free) or "full" (the whole training
    set at each evaluation, the tutorial's; costs a pass over it).
    """
    trainer = Trainer(model, train, optimizer, batch_size=batch_size, epochs=epochs, iterations=iterations,
                      validation=validation, callbacks=callbacks, gradient=gradient, sampling=sampling, seed=seed,
                      eval_every=eval_every, schedule=schedule, clip_norm=clip_norm, progress=progress,
                      prefetch=prefetch, train_metrics=train_metrics)
    return trainer.run()
