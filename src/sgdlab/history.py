"""What a run did: ``History`` (one row per evaluation, every iteration's loss, how it ended) and "best".

"Best" has one definition, ``is_better``: the monitored metric (``monitor``,
val_loss unless early stopping says otherwise; train_loss when there is no
validation set) improves on the best so far, downwards for a loss and upwards
for an accuracy or score.  ``History.best_index``, ``EarlyStopping`` and the
sweep's best epoch all use it.
"""

import math

import numpy as np

from .errors import ConfigError
from .smoothing import centred_mean
from .tables import format_rows

METRIC_COLUMNS = ["epoch", "iteration", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


def is_better(value, best, mode="min", min_delta=0.0, inclusive=False):
    """value < best - min_delta (mode "min") or value > best + min_delta ("max"); any finite value beats None.

    ``inclusive`` also counts reaching best -/+ min_delta exactly (scikit-learn's tol rule).  NaN never improves.
    """
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    if mode == "min":
        return value <= best - min_delta if inclusive else value < best - min_delta
    return value >= best + min_delta if inclusive else value > best + min_delta


def row_is_better(row, best_row, monitor="val_loss", mode="min"):
    """Whether evaluation ``row`` beats ``best_row`` on ``monitor`` (on train_loss, downwards, when the row lacks it)."""
    key = monitor if row.get(monitor) is not None else "train_loss"
    return is_better(row.get(key), None if best_row is None else best_row.get(key), mode if key == monitor else "min")


def best_row_index(rows, monitor="val_loss", mode="min"):
    """Index of the best of ``rows`` by ``row_is_better`` (the first of equals), or None."""
    best_index = None
    for i, row in enumerate(rows):
        if row_is_better(row, None if best_index is None else rows[best_index], monitor, mode):
            best_index = i
    return best_index


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

    def is_better(self, value, best, min_delta=0.0, inclusive=False):
        """Whether ``value`` of the monitored metric beats ``best`` (see ``is_better``)."""
        return is_better(value, best, self.mode, min_delta, inclusive)

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


def csv_value(value):
    """A metric as metrics.csv holds it, read back as a float (6 decimals; 6 significant digits below 1e-3)."""
    return float(_fmt(float(value)))


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
