"""The LR range test (not a sweep): one run whose lr grows exponentially, and the lr it suggests."""

import os

import numpy as np

from ..checkpoint import write_json_atomic
from ..errors import ConfigError
from ..schedules import ExponentialRamp
from ..smoothing import smoothed_loss


def range_beta(n):
    """EMA factor for an n-iteration range test: a window of about n/20 iterations, beta in [0.8, 0.98]."""
    return min(0.98, max(0.8, 1 - 20 / max(n, 1)))


def suggest_lr(lrs, losses, blowup=4.0, skip=10):
    """The lr of steepest descent of the smoothed loss against log lr, before its minimum and the blow-up.

    Blow-up: a short EMA (beta 0.8) exceeds ``blowup`` x its running minimum.  The slope is taken
    on an EMA (``range_beta``) run forward then backward over the part before it (zero lag: a
    one-way EMA would put the steepest point late).
    Returns (suggested lr, index where the loss blew up or len(lrs)).
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    fast = smoothed_loss(losses, beta=0.8)
    over = np.nonzero(~(fast <= blowup * np.minimum.accumulate(fast)))[0]
    end = int(over[0]) if over.size else len(losses)
    skip = min(skip, max(0, end - 3))
    if end - skip < 3:
        raise ConfigError(f"the LR range test blew up after {end} iterations: lower --lr-min "
                          f"(now {lrs[0]:g})")
    beta = range_beta(len(losses))
    both_ways = smoothed_loss(smoothed_loss(losses[:end], beta)[::-1], beta)[::-1]
    bottom = max(skip + 3, skip + int(np.argmin(both_ways[skip:end])) + 1)  # descent happens before the minimum
    slope = np.gradient(both_ways[skip:bottom], np.log(lrs[skip:bottom]))
    return float(lrs[skip + int(np.argmin(slope))]), end


def lr_range_test(config, lr_min=1e-6, lr_max=10.0, iterations=200):
    """One run whose lr grows exponentially per iteration; returns {lrs, losses, smoothed, suggested_lr, end}."""
    from threadpoolctl import threadpool_limits

    from ..run import build_model, build_optimizer, load_splits
    from ..training import Trainer

    if not (0 < lr_min < lr_max):
        raise ConfigError(f"lr range {lr_min:g}..{lr_max:g} is not allowed: use 0 < --lr-min < --lr-max")
    if not (isinstance(iterations, int) and iterations >= 10):
        raise ConfigError(f"range_iterations={iterations!r} is not allowed: use a whole number >= 10")
    train, val, _ = load_splits(config)
    task = "classification" if train.is_classification else "regression"
    n_outputs = train.n_classes if task == "classification" else train.t.shape[1]
    model = build_model(config, train.x.shape[1:], n_outputs, task)
    schedule = ExponentialRamp(lr_min, lr_max, iterations)
    trainer = Trainer(model, train, build_optimizer(config.replace(lr=lr_min)), batch_size=config.batch_size,
                      iterations=iterations, validation=None, sampling=config.sampling, seed=config.seed,
                      eval_every=iterations, schedule=schedule, clip_norm=config.clip_norm, progress=False,
                      train_metrics=config.train_metrics)
    with threadpool_limits(limits=config.threads):
        history = trainer.run()
    losses = np.asarray(history.iteration_loss, dtype=float)
    lrs = np.array([schedule.lr_at(i, 0, iterations) for i in range(losses.size)])
    suggested, end = suggest_lr(lrs, losses)
    return {"lrs": lrs, "losses": losses, "smoothed": smoothed_loss(losses, range_beta(losses.size)),
            "suggested_lr": suggested,
            "end": end, "status": history.status}


def write_range_test(out, result):
    """range_test.csv (iteration, lr, loss, smoothed_loss) and range_test.png in ``out``."""
    from .. import plots
    from ..checkpoint import write_text_atomic
    from ..tables import format_rows

    rows = [[i, f"{lr:.6g}", f"{loss:.6g}", f"{s:.6g}"] for i, (lr, loss, s) in
            enumerate(zip(result["lrs"], result["losses"], result["smoothed"]))]
    columns = ["iteration", "lr", "loss", "smoothed_loss"]
    write_text_atomic(os.path.join(out, "range_test.csv"), format_rows(columns, rows))
    write_json_atomic(os.path.join(out, "range_test.json"),
                      {"suggested_lr": result["suggested_lr"], "blowup_iteration": result["end"],
                       "iterations": int(result["losses"].size), "status": result["status"]})
    plots.lr_range_test(result["lrs"], result["losses"], result["smoothed"], result["suggested_lr"],
                        result["end"]) \
        .savefig(os.path.join(out, "range_test.png"), dpi=110)
