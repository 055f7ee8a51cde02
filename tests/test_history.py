"""sgdlab.history: the one definition of "best"."""

import math

from sgdlab.history import History, best_row_index, is_better


def test_is_better_by_mode_min_delta_and_inclusive():
    assert is_better(0.5, None) and not is_better(math.nan, None) and not is_better(None, 1.0)
    assert is_better(0.5, 1.0) and not is_better(1.5, 1.0) and is_better(1.5, 1.0, mode="max")
    assert not is_better(0.9, 1.0, min_delta=0.1) and is_better(0.9, 1.0, min_delta=0.1, inclusive=True)


def test_best_row_is_the_monitored_metrics_first_best_else_train_loss():
    rows = [{"train_loss": 3.0, "val_loss": 1.0, "val_acc": 0.5}, {"train_loss": 2.0, "val_loss": 1.2, "val_acc": 0.7},
            {"train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.7}]
    assert best_row_index(rows) == 0                                    # val_loss, first of equals
    assert best_row_index(rows, "val_acc", "max") == 1
    no_validation = [{"train_loss": v, "val_loss": None} for v in (3.0, 1.0, 2.0)]
    assert best_row_index(no_validation, "val_acc", "max") == 1         # falls back to train_loss, downwards
    assert best_row_index([]) is None


def test_history_best_follows_its_rows():
    history = History()
    history.rows = [{"epoch": 1, "val_loss": 2.0}, {"epoch": 2, "val_loss": 1.0}]
    history.best_index = best_row_index(history.rows, history.monitor, history.mode)
    assert history.best_epoch == 2 and history.best_row["val_loss"] == 1.0
