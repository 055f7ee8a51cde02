"""Pictures of a run, drawn with matplotlib's Agg backend (no display needed).

Every function returns a ``Figure``; call ``.savefig(path)``.  pyplot is never
imported, so nothing here opens a window or touches global figure state.
"""

import numpy as np


def _figure(width=6.4, height=4.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def smooth(values, window):
    """Moving average over ``window`` points (shorter at the start), same length as ``values``."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def loss_curve(history, title="Training loss per iteration"):
    """Mini-batch loss of every iteration, raw (faint) and smoothed."""
    fig = _figure()
    ax = fig.add_subplot()
    loss = np.asarray(history.iteration_loss, dtype=float)
    iterations = np.arange(1, loss.size + 1)
    window = max(1, loss.size // 50)
    ax.plot(iterations, loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="mini-batch loss")
    ax.plot(iterations, smooth(loss, window), color="tab:blue", linewidth=1.8,
            label=f"moving average ({window} iterations)")
    if history.rows:
        ax.plot([r["iteration"] for r in history.rows], history.column("train_loss"), "o-", color="tab:green",
                markersize=3, label="train loss (whole set)")
        if not np.all(np.isnan(history.column("val_loss"))):
            ax.plot([r["iteration"] for r in history.rows], history.column("val_loss"), "s-", color="tab:orange",
                    markersize=3, label="validation loss")
    if loss.size and np.all(loss > 0) and loss.max() / max(loss.min(), 1e-12) > 50:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def accuracy_curves(history, title="Accuracy per epoch: train vs validation", onset_epoch=None):
    """Train and validation accuracy per evaluation, the best (early-stop) epoch marked.

    Where validation falls while training still rises is overfitting (the tutorial's picture).
    """
    fig = _figure()
    ax = fig.add_subplot()
    epochs = np.array([r["epoch"] for r in history.rows], dtype=float)
    metric = "acc" if not np.all(np.isnan(history.column("train_acc"))) else "loss"
    ax.plot(epochs, history.column(f"train_{metric}"), "o-", markersize=3, label=f"train {metric}")
    val = history.column(f"val_{metric}")
    if not np.all(np.isnan(val)):
        ax.plot(epochs, val, "s--", markersize=3, label=f"validation {metric}")
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="tab:red", linestyle=":",
                   label=f"best epoch {history.best_epoch} ({history.monitor})")
    if onset_epoch is not None:
        ax.axvline(onset_epoch, color="tab:purple", linestyle="--", label=f"overfitting onset {onset_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy" if metric == "acc" else "loss")
    ax.set_title(f"{title} ({history.status})")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
