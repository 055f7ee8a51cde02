"""A run is a folder: train from a TrainConfig and write config.json, metrics.csv,
summary.json, model.safetensors and the plots into ``runs/<name>/``.

This is what ``sgdlab train`` and every sweep trial call.
"""

import json
import math
import os
import shlex
import signal
import sys
import threading
from contextlib import contextmanager

import numpy as np

from .checkpoint import (CHECKPOINT_NAME, atomic_path, load_checkpoint, remove_stale_temporaries, save_checkpoint,
                         save_model, write_json_atomic)
from .config import TrainConfig
from .errors import CheckpointError, ConfigError, SgdlabError
from .runfolder import check_location, check_replaceable, claim_folder
from .safetensors_io import load_json_text
from .training import Callback

SUMMARY_KEYS = ("status", "best_epoch", "stopped_reason", "epochs_run", "train_accuracy", "val_accuracy",
                "test_accuracy", "seconds")
EXIT_CODES = {"completed": 0, "early_stopped": 0, "diverged": 1, "interrupted": 130}


def build_model(config, sample_shape, n_outputs, task, dataset_name=None, train=None):
    """The config's network for samples of ``sample_shape`` (a dataset's ``x.shape[1:]``, or a feature count).

    Conv/pool items in ``config.layers`` need images: (C, H, W), or (H, W) as one channel.  An MLP whose
    training cannot fit in memory is refused before anything is allocated.  Given the training split, the
    model also keeps the data's classes and column encoding, and (``standardize``) its Standardize layer
    measures the mean and std on it.
    """
    model = _network(config, sample_shape, n_outputs, task, dataset_name)
    if train is not None:
        if task == "classification" and train.classes is not None:
            model.classes = np.asarray(train.classes)
        if train.columns is not None:
            model.inputs = train.columns.describe()
        if config.standardize:
            model.layers[0].adapt(train)
    return model


def _network(config, sample_shape, n_outputs, task, dataset_name):
    from .layerspec import has_images, image_layers
    from .memory import check_training_fits
    from .model import MLP, Sequential
    from .optimizers import OPTIMIZERS

    shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
    n_features = math.prod(shape)
    weight_decay = config.model_weight_decay()
    if not has_images(config.layers):
        sizes = [n_features, *config.layers, n_outputs]
        check_training_fits(sizes, config.batch_size, np.dtype(config.dtype).itemsize,
                            len(OPTIMIZERS[config.optimizer].buffers))
        return MLP(sizes, activation=config.activation, loss=config.loss, seed=config.seed, dtype=config.dtype,
                   weight_decay=weight_decay, task=task, dropout=config.dropout, batch_norm=config.batch_norm,
                   standardize=config.standardize)
    if config.standardize:
        raise ConfigError("standardize scales flat features (tables): drop it for a conv net on images")
    if len(shape) not in (2, 3):
        raise ConfigError(f"layers={','.join(map(str, config.layers))!r} need images, but dataset "
                          f"{dataset_name or config.dataset!r} has flat samples of {n_features} features: use mnist, "
                          f"digits, or a file of (N, H, W) or (N, C, H, W) images")
    shape = shape if len(shape) == 3 else (1, *shape)
    layers = image_layers(config.layers, shape, n_outputs, activation=config.activation, dropout=config.dropout,
                          batch_norm=config.batch_norm, seed=config.seed)
    return Sequential(layers, loss=config.loss, dtype=config.dtype, seed=config.seed,
                      weight_decay=weight_decay, task=task, input_shape=shape)


SCALE_HINT_RATIO = 100.0


def scale_hint(train):
    """A one-line hint when float features' magnitudes (max |x| of each non-constant column) differ by more
    than SCALE_HINT_RATIO (a column in the thousands beside columns near 1), else None."""
    if train.scale is not None or train.x.dtype.kind != "f":
        return None
    sample = train.batch(np.arange(min(len(train), 20_000)))[0]    # a look, not a pass over a large store
    varies = sample.max(axis=0) > sample.min(axis=0)
    size = np.abs(sample[:, varies]).max(axis=0) if varies.any() else np.empty(0)
    if len(size) < 2 or size.max() <= SCALE_HINT_RATIO * size.min():
        return None
    return (f"hint: feature scales differ by {size.max() / size.min():.0f}x (largest |x| per column from "
            f"{size.min():.3g} to {size.max():.3g}): pass --standardize to scale them inside the model")


def build_optimizer(config):
    from .optimizers import get_optimizer

    return get_optimizer(config.optimizer, config.learning_rate(), **config.optimizer_settings())


def build_schedule(config):
    if config.schedule == "constant":
        return None
    from .optimizers import make_schedule

    return make_schedule(config.schedule, config.learning_rate(), **config.schedule_settings())


def load_splits(config, cache_dir=None):
    """(train, val, test) for the config's dataset; val carved from train when the dataset has none."""
    from .data import load_dataset, train_val_split
    from .layerspec import has_images

    splits = load_dataset(config.dataset, seed=config.seed, val_fraction=config.val_fraction,
                          label_column=config.label_column, cache_dir=cache_dir,
                          flatten=not has_images(config.layers), test_fraction=config.test_fraction,
                          features=config.features, drop=config.drop, impute=config.impute)
    train, val = splits.train, splits.val
    if val is None:
        train, val = train_val_split(train, config.val_fraction, seed=config.seed)
    return train, val, splits.test


@contextmanager
def handle_stop_signals(on_signal):
    """SIGINT/SIGTERM call ``on_signal(signum, count)`` (main thread only; elsewhere nothing is installed);
    yields the list of signals received.  The previous handlers come back at the end."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        received.append(signum)
        on_signal(signum, len(received))

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def stop_on_signals(trainer):
    """SIGINT/SIGTERM finish the current iteration and stop the trainer as ``interrupted``."""
    return handle_stop_signals(lambda signum, count: trainer.stop(
        "interrupted", f"{signal.Signals(signum).name} received at iteration {trainer.iteration}"))


def read_resume_checkpoint(out):
    """(state, metadata, config) of ``out``'s checkpoint.safetensors, or a one-line error.

    A run killed before its first checkpoint holds only config.json: (None, None, that config), so it
    starts again from the beginning.
    """
    path = os.path.join(out, CHECKPOINT_NAME)
    if not os.path.isdir(out):
        raise CheckpointError(f"cannot resume {out!r}: no such run folder")
    if not os.path.isfile(path):
        config_path = os.path.join(out, "config.json")
        if not os.path.isfile(config_path):
            raise CheckpointError(f"cannot resume {out!r}: it holds neither {CHECKPOINT_NAME} nor config.json")
        try:
            return None, None, TrainConfig.from_json(config_path)
        except (ValueError, OSError) as exc:
            raise CheckpointError(f"cannot resume {out!r}: its config.json is not usable ({exc})") from None
    state, metadata = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(load_json_text(metadata["config"], f"{path!r}'s config"))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path!r} has no usable config ({exc})") from None
    return state, metadata, config


def train_run(config, out, overwrite=False, quiet=False, stream=None, cache_dir=None, resume=False,
              pictures=True, callbacks=()):
    """Train as ``config`` says and write the run folder ``out``; returns summary.json's dict.

    ``pictures=False`` skips loss.png and accuracy.png (sweep trials: drawing them costs more than
    training a small network).  ``callbacks`` run after the run's own (e.g. ``TensorBoard``).

    ``resume=True`` continues ``out`` from its checkpoint.safetensors with the config saved there
    (``config`` may be None; when given it must equal the saved one).
    The folder is claimed (``runfolder.claim_folder``) for the whole run.
    """
    out = check_location(out, "--resume" if resume else "--out")
    if not resume:
        if not isinstance(config, TrainConfig):
            raise ConfigError("train_run needs a TrainConfig")
        config.validate()
        check_replaceable(out, "run", overwrite)       # before any data is loaded
    with claim_folder(out, "run", overwrite=overwrite, resume=resume, command="sgdlab train",
                      what="--resume" if resume else "--out") as claim:
        return _train_in(claim, config, out, quiet, stream, cache_dir, resume, pictures, callbacks)


def _train_in(claim, config, out, quiet, stream, cache_dir, resume, pictures, callbacks):
    """``train_run``'s work, in a folder ``claim`` owns."""
    from threadpoolctl import threadpool_limits

    from .training import EarlyStopping, EpochLogger, Trainer

    checkpoint_path = os.path.join(out, CHECKPOINT_NAME)
    if resume:
        state, metadata, saved = read_resume_checkpoint(out)
        if state is None:
            print(f"{out}: no checkpoint was written before the run stopped: starting it from the beginning "
                  f"with its config.json", file=stream or sys.stdout)
            resume = False                         # its folder is then cleared and written afresh
        if config is not None and config.to_dict() != saved.to_dict():
            changed = sorted(k for k, v in config.to_dict().items() if saved.to_dict().get(k) != v)
            raise ConfigError(f"cannot resume {out!r} with changed settings ({', '.join(changed)}): a resumed run "
                              f"keeps the settings it started with")
        config = saved
        config.validate()
    train, val, test = load_splits(config, cache_dir=cache_dir)
    if config.sampling == "auto":
        config = auto_sampling(config, train, None if quiet else (stream or sys.stdout))
    if config.lr is None:
        config = config.replace(lr=config.learning_rate())  # config.json records the lr it trained with
    task = "classification" if train.is_classification else "regression"
    n_outputs = train.n_classes if task == "classification" else train.t.shape[1]
    model = build_model(config, train.x.shape[1:], n_outputs, task, train=train)
    if not quiet and not config.standardize and not resume:
        hint = scale_hint(train)
        if hint:
            print(hint, file=sys.stderr)
    optimizer = build_optimizer(config)
    extra_callbacks, callbacks = list(callbacks), []
    if config.patience:
        callbacks.append(EarlyStopping(monitor=config.monitor, patience=config.patience, mode=config.monitor_mode,
                                       min_delta=config.min_delta, restore_best=config.restore_best,
                                       start_from_epoch=config.start_from_epoch))
    if not quiet:
        callbacks.append(EpochLogger(stream))
    callbacks.append(LiveMetrics(os.path.join(out, "metrics.csv")))
    callbacks.extend(extra_callbacks)  # after early stopping: they see the restored model at the end
    trainer = Trainer(model, train, optimizer, batch_size=config.batch_size,
                      epochs=None if config.iterations else config.epochs, iterations=config.iterations,
                      validation=val, callbacks=callbacks, gradient=config.gradient, sampling=config.sampling,
                      seed=config.seed, eval_every=config.eval_every, schedule=build_schedule(config),
                      clip_norm=config.clip_norm, progress=False if quiet else None, prefetch=config.prefetch,
                      checkpoint=lambda t: save_checkpoint(checkpoint_path, t.state_dict(), metadata={
                          "config": config.to_dict(), "architecture": model.describe()}),
                      checkpoint_every=config.checkpoint_every, checkpoint_seconds=config.checkpoint_seconds,
                      train_metrics=config.train_metrics)
    if resume:
        if load_json_text(metadata.get("architecture", "null"), checkpoint_path) != model.describe():
            raise CheckpointError(f"{checkpoint_path!r} is for another architecture than the model its config "
                                  f"builds on this data (was the dataset changed?)")
        try:
            trainer.load_state_dict(state)
        except SgdlabError:
            raise
        except (ValueError, TypeError, OverflowError, KeyError, IndexError, AttributeError) as exc:
            raise CheckpointError(f"{checkpoint_path!r} holds a training state that does not fit this run "
                                  f"({type(exc).__name__}: {str(exc)[:120]})") from None
        check_history(trainer.history, checkpoint_path)
        remove_stale_temporaries(out)
    else:
        claim.clear()
        write_json_atomic(os.path.join(out, "config.json"), config.to_dict())
    with threadpool_limits(limits=config.threads), stop_on_signals(trainer) as received:
        history = trainer.run()
        # still under the handlers: a signal now lets the last files be written whole
        summary = finish_run(out, config, model, history, trainer, train, val, test, pictures=pictures)
    if received:
        summary["signal"] = received[0]
    if history.status == "interrupted":
        summary["checkpoint"] = checkpoint_path
        summary["resume_command"] = f"sgdlab train --resume {shlex.quote(out)}"
    if received or history.status == "interrupted":
        write_json_atomic(os.path.join(out, "summary.json"), summary)
    return summary


def auto_sampling(config, train, stream=None):
    """The config with sampling "auto" resolved for this data (what config.json records); says it once."""
    from .batches import resolve_sampling

    sampling, prefetch = resolve_sampling("auto", train, config.prefetch)
    if stream is not None:
        where = "an on-disk store: blocks of rows, read ahead" if sampling == "block-shuffle" else "data in memory"
        print(f"sampling auto -> {sampling}{' with prefetch' if prefetch else ''} ({where})", file=stream)
    return config.replace(sampling=sampling, prefetch=prefetch)


def check_history(history, where):
    """A resumed History's rows are dicts of the metric columns holding numbers (or None), its losses numbers."""
    from .history import METRIC_COLUMNS

    def number(v):
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    rows_ok = isinstance(history.rows, list) and all(
        isinstance(r, dict) and all(c in r and number(r[c]) for c in METRIC_COLUMNS) for r in history.rows)
    losses_ok = isinstance(history.iteration_loss, list) and all(number(v) for v in history.iteration_loss)
    if not (rows_ok and losses_ok):
        raise CheckpointError(f"{where!r} holds a history whose rows or losses are not numbers by metric: "
                              f"it was edited or damaged")


class LiveMetrics(Callback):
    """Rewrites metrics.csv atomically at every evaluation, so readers (sgdlab board) follow the run."""

    def __init__(self, path):
        self.path = path

    def on_evaluation(self, trainer, row):
        with atomic_path(self.path) as tmp:
            trainer.history.to_csv(tmp)


def finish_run(out, config, model, history, trainer, train, val, test, pictures=True):
    """Evaluate the final (possibly restored) model and write metrics, summary, model and plots."""
    from .training import overfitting_onset

    with atomic_path(os.path.join(out, "metrics.csv")) as tmp:
        history.to_csv(tmp)
    last = history.rows[-1] if history.rows else None
    if last and last["iteration"] == trainer.iteration and np.array_equal(model.params, trainer.last_good_params):
        train_acc, val_acc = last["train_acc"], last["val_acc"]  # the model the last evaluation measured
    else:
        _, train_acc = model.evaluate(train)
        val_acc = model.evaluate(val)[1] if val is not None else None
    test_loss, test_acc = model.evaluate(test) if test is not None else (None, None)
    summary = {
        "status": history.status,
        "best_epoch": history.best_epoch,
        "stopped_reason": history.stopped_reason,
        "epochs_run": history.rows[-1]["epoch"] if history.rows else 0,
        "train_accuracy": train_acc,
        "val_accuracy": val_acc,
        "test_accuracy": test_acc,
        "seconds": round(trainer.seconds, 3),
        "test_loss": test_loss,
        "iterations": trainer.iteration,
        "monitor": history.monitor,
        "n_params": int(model.params.size),
        "overfitting_onset_epoch": overfitting_onset(history),
    }
    report_split = test if test is not None else val
    report = None
    if report_split is not None:
        from .metrics import model_report

        report = model_report(model, report_split)
        summary["report_split"] = "test" if test is not None else "val"
        summary["classification_report" if model.is_classifier else "regression_report"] = report
    save_model(model, os.path.join(out, "model.safetensors"),
               metadata={"config": config.to_dict(), "status": history.status})
    write_json_atomic(os.path.join(out, "summary.json"), summary)
    write_json_atomic(os.path.join(out, "iteration_loss.json"), [round(x, 6) for x in history.iteration_loss])
    if not pictures:
        return summary
    from . import plots

    with atomic_path(os.path.join(out, "loss.png")) as tmp:
        plots.loss_curve(history).savefig(tmp, dpi=110, format="png")
    with atomic_path(os.path.join(out, "accuracy.png")) as tmp:
        plots.accuracy_curves(history, onset_epoch=summary["overfitting_onset_epoch"]).savefig(
            tmp, dpi=110, format="png")
    if report is not None and model.is_classifier:
        with atomic_path(os.path.join(out, "confusion.png")) as tmp:
            plots.confusion_matrix(report, title=f"Confusion matrix ({summary['report_split']} split)").savefig(
                tmp, dpi=110, format="png")
    return summary


def read_summary(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


def print_summary(summary, out, stream=None):
    stream = stream or sys.stdout
    acc = summary.get("test_accuracy")
    print(f"{summary['status']}: {summary['stopped_reason']}", file=stream)
    print(f"best epoch {summary['best_epoch']} ({summary.get('monitor')}), "
          f"test accuracy {'n/a' if acc is None else f'{acc:.4f}'}, {summary['seconds']:.1f}s of training",
          file=stream)
    report = summary.get("classification_report")
    if report:
        print(f"{summary['report_split']} macro F1 {report['macro avg']['f1']:.4f}, weighted F1 "
              f"{report['weighted avg']['f1']:.4f} (per class: summary.json, confusion.png)", file=stream)
    if summary.get("regression_report"):
        from .metrics import format_report

        print(f"{summary['report_split']} {format_report(summary['regression_report'])}", file=stream)
    written = sorted(name for name in os.listdir(out) if not name.startswith("."))
    print(f"run folder: {out} ({', '.join(written)})", file=stream)
    if summary.get("checkpoint"):
        print(f"checkpoint: {summary['checkpoint']}\nresume with: {summary['resume_command']}", file=stream)
