"""Pictures of a run, drawn with matplotlib's Agg backend (no display needed).

Every function returns a ``Figure``; call ``.savefig(path)``.  pyplot is never
imported, so nothing here opens a window or touches global figure state.
"""

import numpy as np

from .smoothing import smooth


def _figure(width=6.4, height=4.0):
    # A bare Figure draws with Agg when saved, whatever pyplot's backend: no matplotlib.use(), which
    # would switch a notebook's inline backend (or a GUI's) to Agg for the user's own plots too.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


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
    if history.status == "early_stopped" and history.rows:
        ax.axvline(history.rows[-1]["epoch"], color="tab:gray", linestyle="-.",
                   label=f"early stop at epoch {history.rows[-1]['epoch']}")
    if onset_epoch is not None:
        ax.axvline(onset_epoch, color="tab:purple", linestyle="--", label=f"overfitting onset {onset_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy" if metric == "acc" else "loss")
    ax.set_title(f"{title} ({history.status})")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def sweep_results(rows, curves, param="lr"):
    """Left: best val accuracy against ``param`` (log x when positive; trial number when None), status marked.
    Right: every trial's smoothed mini-batch loss, coloured by ``param`` (log colour scale)."""
    from matplotlib import cm, colors

    fig = _figure(11, 4.2)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    if param is None:
        param, values = "trial number", np.arange(1, len(rows) + 1, dtype=float)
    else:
        values = np.array([float(r[param]) for r in rows])
    log = values.size and np.all(values > 0) and values.max() / values.min() > 20
    styles = {"ok": ("o", "tab:blue"), "too slow": ("s", "tab:orange"), "diverged": ("X", "tab:red"),
              "failed": ("D", "tab:gray")}
    order = np.argsort(values, kind="stable")
    acc = np.array([np.nan if r["best_val_acc"] is None else r["best_val_acc"] for r in rows])
    left.plot(values[order], acc[order], "-", color="0.7", linewidth=1)
    for status, (marker, colour) in styles.items():
        mask = np.array([r["status"] == status for r in rows], dtype=bool)
        if mask.any():
            y = np.where(np.isnan(acc[mask]), 0.0, acc[mask])  # a trial without an evaluation sits at 0
            left.scatter(values[mask], y, marker=marker, color=colour, s=50, label=status, zorder=3)
    if log:
        left.set_xscale("log")
    left.set_xlabel(param)
    left.set_ylabel("best validation accuracy")
    left.set_title(f"Sweep: validation accuracy vs {param}")
    left.grid(alpha=0.3)
    left.legend()
    norm = (colors.LogNorm if log else colors.Normalize)(vmin=values.min(), vmax=values.max()) if values.size \
        else colors.Normalize()
    cmap = cm.viridis
    top = 0.0
    for row, value in zip(rows, values):
        loss = np.asarray(curves.get(row["trial"], []), dtype=float)
        if loss.size:
            curve = smooth(loss, max(1, loss.size // 50))
            top = max(top, float(curve[0]))
            right.plot(np.arange(1, loss.size + 1), curve, color=cmap(norm(value)), linewidth=1.2,
                       linestyle="--" if row["status"] == "diverged" else "-")
    right.set_ylim(0, 2.5 * top if top > 0 else None)
    right.set_xlabel("iteration")
    right.set_ylabel("mini-batch loss (moving average)")
    right.set_title("Loss of every trial (dashed: diverged)")
    right.grid(alpha=0.3)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=right, label=param)
    return fig


def lr_range_test(lrs, losses, smoothed, suggested_lr, end=None):
    """LR range test: mini-batch loss against the exponentially growing lr (log x), smoothed, suggestion marked."""
    fig = _figure()
    ax = fig.add_subplot()
    lrs, losses, smoothed = (np.asarray(a, dtype=float) for a in (lrs, losses, smoothed))
    ax.plot(lrs, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="mini-batch loss")
    ax.plot(lrs, smoothed, color="tab:blue", linewidth=1.8, label="smoothed (EMA)")
    if end is not None and end < lrs.size:
        ax.axvline(lrs[end], color="tab:red", linestyle=":", label=f"blows up at lr={lrs[end]:.3g}")
    ax.axvline(suggested_lr, color="tab:green", linestyle="--", label=f"suggested lr={suggested_lr:.3g}")
    ax.set_xscale("log")
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:
        ax.set_ylim(0, 1.5 * max(finite[: max(1, min(end or finite.size, finite.size))].max(), 1e-12))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("LR range test")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def confusion_matrix(report, title="Confusion matrix (test split)"):
    """A ``metrics.classification_report``'s confusion matrix: counts per (true, predicted) class."""
    cm = np.asarray(report["confusion_matrix"])
    names = report["labels"]
    size = min(12.0, 2.5 + 0.5 * len(names))
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if len(names) <= 20:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > threshold else "black", fontsize=9)
    return fig
