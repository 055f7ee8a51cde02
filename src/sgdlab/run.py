"""A run is a folder: train from a TrainConfig and write config.json, metrics.csv,
summary.json, model.safetensors and the plots into ``runs/<name>/``.

This is what ``sgdlab train`` and every sweep trial call.
"""

import json
import os
import shutil
import signal
import sys
import threading
from contextlib import contextmanager

from .checkpoint import save_model, write_json_atomic
from .config import TrainConfig
from .errors import ConfigError, RunExistsError

SUMMARY_KEYS = ("status", "best_epoch", "stopped_reason", "epochs_run", "train_accuracy", "val_accuracy",
                "test_accuracy", "seconds")
EXIT_CODES = {"completed": 0, "early_stopped": 0, "diverged": 1, "interrupted": 130}


def prepare_run_dir(out, overwrite=False):
    """Create ``out``; refuse an existing non-empty folder unless ``overwrite`` (then empty it first)."""
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunExistsError(f"run folder {out!r} is a file: choose another --out")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise RunExistsError(f"run folder {out!r} already exists: pass --overwrite to replace it or "
                                 f"--out to choose another")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    return out


def build_model(config, n_features, n_outputs, task):
    from .model import MLP

    return MLP([n_features, *config.layers, n_outputs], activation=config.activation, loss=config.loss,
               seed=config.seed, dtype=config.dtype, weight_decay=config.weight_decay, task=task)


def build_optimizer(config):
    from .optimizers import get_optimizer

    settings = {"momentum": config.momentum} if config.optimizer in ("momentum", "nesterov") else {}
    return get_optimizer(config.optimizer, config.lr, **settings)


def build_schedule(config):
    if config.schedule == "constant":
        return None
    from .optimizers import make_schedule

    return make_schedule(config.schedule, config.lr)


def load_splits(config, cache_dir=None):
    """(train, val, test) for the config's dataset; val carved from train when the dataset has none."""
    from .data import load_dataset, train_val_split

    splits = load_dataset(config.dataset, seed=config.seed, val_fraction=config.val_fraction,
                          label_column=config.label_column, cache_dir=cache_dir)
    train, val = splits.train, splits.val
    if val is None:
        train, val = train_val_split(train, config.val_fraction, seed=config.seed)
    return train, val, splits.test


@contextmanager
def stop_on_signals(trainer):
    """SIGINT/SIGTERM finish the current iteration and stop the trainer as ``interrupted``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def handler(signum, frame):
        name = signal.Signals(signum).name
        received.append(signum)
        trainer.stop("interrupted", f"{name} received at iteration {trainer.iteration}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def train_run(config, out, overwrite=False, quiet=False, stream=None, cache_dir=None):
    """Train as ``config`` says and write the run folder ``out``; returns summary.json's dict."""
    from threadpoolctl import threadpool_limits

    from .training import EarlyStopping, EpochLogger, Trainer

    if not isinstance(config, TrainConfig):
        raise ConfigError("train_run needs a TrainConfig")
    config.validate()
    out = os.fspath(out)
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        prepare_run_dir(out, overwrite=False)  # raises before any data is loaded
    train, val, test = load_splits(config, cache_dir=cache_dir)
    task = "classification" if train.is_classification else "regression"
    n_outputs = train.n_classes if task == "classification" else train.t.shape[1]
    model = build_model(config, train.n_features, n_outputs, task)
    optimizer = build_optimizer(config)
    callbacks = []
    if config.patience:
        callbacks.append(EarlyStopping(monitor=config.monitor, patience=config.patience,
                                       min_delta=config.min_delta, restore_best=config.restore_best))
    if not quiet:
        callbacks.append(EpochLogger(stream))
    trainer = Trainer(model, train, optimizer, batch_size=config.batch_size,
                      epochs=None if config.iterations else config.epochs, iterations=config.iterations,
                      validation=val, callbacks=callbacks, gradient=config.gradient, sampling=config.sampling,
                      seed=config.seed, eval_every=config.eval_every, schedule=build_schedule(config),
                      clip_norm=config.clip_norm, progress=False if quiet else None)
    out = prepare_run_dir(out, overwrite=overwrite)
    write_json_atomic(os.path.join(out, "config.json"), config.to_dict())
    with threadpool_limits(limits=config.threads), stop_on_signals(trainer) as received:
        history = trainer.run()
    summary = finish_run(out, config, model, history, trainer, train, val, test)
    if received:
        summary["signal"] = received[0]
        write_json_atomic(os.path.join(out, "summary.json"), summary)
    return summary


def finish_run(out, config, model, history, trainer, train, val, test):
    """Evaluate the final (possibly restored) model and write metrics, summary, model and plots."""
    history.to_csv(os.path.join(out, "metrics.csv"))
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
    }
    save_model(os.path.join(out, "model.safetensors"), model,
               metadata={"config": config.to_dict(), "status": history.status})
    write_json_atomic(os.path.join(out, "summary.json"), summary)
    write_json_atomic(os.path.join(out, "iteration_loss.json"), [round(x, 6) for x in history.iteration_loss])
    from . import plots

    plots.loss_curve(history).savefig(os.path.join(out, "loss.png"), dpi=110)
    plots.accuracy_curves(history).savefig(os.path.join(out, "accuracy.png"), dpi=110)
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
    print(f"run folder: {out} (config.json, metrics.csv, summary.json, model.safetensors, loss.png, accuracy.png)",
          file=stream)
