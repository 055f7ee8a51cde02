"""The results table: a finished trial's row (its sweep status from its run folder), ranking, sweep.csv."""

import csv
import json
import math
import os

from ..checkpoint import write_text_atomic
from ..errors import ConfigError, SgdlabError
from ..history import best_row_index
from ..tables import format_rows, read_records, records
from ..training import divergence
from .space import _field_types, _parse_scalar

DIVERGED_FACTOR = 10.0
STATUS_ORDER = {"ok": 0, "too slow": 1, "diverged": 2, "failed": 3}
RESULT_COLUMNS = ["status", "best_val_acc", "best_val_loss", "best_epoch", "initial_loss", "test_acc",
                  "run_status", "reason", "seconds"]


def trial_result(spec, result, slow_threshold):
    """The sweep.csv row of a finished trial: its settings, its best epoch with that epoch's val accuracy and
    loss, its sweep status, seconds.  The best epoch is the run's own (``summary.json``'s, by its monitored
    metric: ``history.best_row_index``'s rule); divergence is ``training.divergence`` with ``DIVERGED_FACTOR``."""
    summary = result["summary"]
    metrics = [{**row, **{k: _float(row.get(k)) for k in ("train_loss", "val_loss", "val_acc")}}
               for row in records(result["files"]["metrics.csv"])]
    losses = json.loads(result["files"]["iteration_loss.json"])
    initial = losses[0] if losses else float("nan")
    best = _best_index(metrics, summary, spec["config"])
    best_row = metrics[best] if best is not None else {}
    best_loss = best_row.get("val_loss")
    spike = divergence(max(losses), initial, DIVERGED_FACTOR) if losses else None
    if summary["status"] == "diverged" or spike:
        status = "diverged"
        reason = summary["stopped_reason"] if summary["status"] == "diverged" else f"mini-batch loss reached {spike}"
    elif best_loss is None or not best_loss <= (1 - slow_threshold) * initial:
        status = "too slow"
        shown = "none" if best_loss is None else f"{best_loss:.4g}"
        reason = f"best val loss {shown} > {1 - slow_threshold:g} x initial loss {initial:.4g}"
    else:
        status, reason = "ok", summary["stopped_reason"]
    val_acc = best_row.get("val_acc")
    return {**_row_settings(spec), "status": status,
            "best_val_acc": None if val_acc is None else round(val_acc, 6),
            "best_val_loss": None if best_loss is None else round(best_loss, 6),
            "best_epoch": best_row.get("epoch"),
            "initial_loss": round(initial, 6) if losses else None,
            "test_acc": None if summary.get("test_accuracy") is None else round(summary["test_accuracy"], 6),
            "run_status": summary["status"], "reason": reason, "seconds": summary["seconds"]}


def _float(text):
    return None if text in (None, "") else float(text)


def _best_index(rows, summary, config):
    """The run's best evaluation: summary.json's best_epoch, else the monitored metric's best row."""
    epoch = summary.get("best_epoch")
    if epoch is not None:
        return next((i for i, row in enumerate(rows) if row["epoch"] == str(epoch)), None)
    monitor, mode = config.get("monitor", "val_loss"), config.get("monitor_mode", "auto")
    if mode == "auto":
        mode = "min" if monitor.endswith("loss") else "max"
    return best_row_index(rows, monitor, mode)


def failed_result(spec, reason):
    return {**_row_settings(spec), "status": "failed", "best_val_acc": None, "best_val_loss": None,
            "best_epoch": None, "initial_loss": None, "test_acc": None, "run_status": "failed",
            "reason": reason, "seconds": None}


def _row_settings(spec):
    return {"trial": spec["id"], "rung": spec["rung"], **spec["point"], "epochs": spec["config"]["epochs"]}


# -- the sweep ----------------------------------------------------------------------------------

def rank_key(row):
    """ok before too slow before diverged before failed; then higher best val accuracy, lower val loss, id."""
    acc = row.get("best_val_acc")
    loss = row.get("best_val_loss")
    return (-int(row["rung"]), STATUS_ORDER[row["status"]], -(acc if acc is not None else -1.0),
            loss if loss is not None else math.inf, row["trial"])


def write_table(path, rows):
    """sweep.csv: the ranked rows, written to a temporary name and renamed."""
    columns = ["rank", "trial", "rung"]
    for row in rows:
        columns += [k for k in row if k not in columns and k not in RESULT_COLUMNS]
    columns += RESULT_COLUMNS
    write_text_atomic(path, format_rows(columns, [{**row, "rank": rank} for rank, row in enumerate(rows, 1)]))


def read_table(path):
    """sweep.csv back to rows with numbers typed (the inverse of ``write_table``); a damaged table ->
    ConfigError naming the line (status known, rung a small whole number, numbers finite, header complete)."""
    kinds = _field_types()

    def cell(key, text):
        if text == "":
            return None
        if key == "rung":
            return _table_number(key, text, int)
        if key in ("best_val_acc", "best_val_loss", "initial_loss", "test_acc", "seconds"):
            return _table_number(key, text, float)
        if key in kinds and key not in ("layers", "best_epoch"):
            return _parse_scalar(key, text)
        return text

    try:
        rows = read_records(path, cell)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path!r} is not a readable sweep table ({exc}): start the sweep again with "
                          f"--overwrite") from None
    except SgdlabError as exc:
        raise ConfigError(f"{path!r}: {exc}") from None
    return SweepResults(_checked_row(row, path) for row in rows)


def _checked_row(row, path):
    row = {k: v for k, v in row.items() if k != "rank"}
    missing = [c for c in RESULT_COLUMNS if c not in row]
    if missing:
        raise ConfigError(f"{path!r}: the header lacks {', '.join(missing)}")
    if row.get("status") not in STATUS_ORDER or not isinstance(row.get("trial"), str) or row.get("rung") is None:
        raise ConfigError(f"{path!r} has a row with status {row.get('status')!r}, trial {row.get('trial')!r}, rung "
                          f"{row.get('rung')!r}: expected one of {', '.join(STATUS_ORDER)}, an id and a rung")
    return row


def _table_number(key, text, kind):
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{key}={text[:40]!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (kind is int and value > 1000):
        raise ConfigError(f"{key}={text[:40]!r} is not allowed: expected a finite number >= 0")
    return value


class SweepResults(list):
    """The ranked rows of a sweep (dicts, best first): prints as ``format_table``, renders as HTML in Jupyter."""

    def __str__(self):
        return format_table(self)

    def _repr_html_(self):
        from ..display import html_table

        if not self:
            return "<p>(no trials)</p>"
        settings = [k for k in self[0] if k not in RESULT_COLUMNS and k not in ("trial", "rung")]
        header = ["rank", *settings, "best_val_acc", "best_val_loss", "best_epoch", "status", "seconds", "reason"]
        rows = [[rank, *(row.get(k) for k in header[1:])] for rank, row in enumerate(self, 1)]
        winner = next((k for k, row in enumerate(self) if row["status"] == "ok" and row["rung"] == self[0]["rung"]),
                      None)  # as Sweep.winner: the best ok trial of the last rung
        caption = f"{len(self)} trials, best first" + ("" if winner is None else " (bold: the winner)")
        return html_table(header, rows, caption=caption, highlight=winner)


def format_table(rows, limit=None):
    """The ranked table as aligned text: rank, settings, best val accuracy, epoch, status, seconds."""
    if not rows:
        return "(no trials)"
    settings = [k for k in rows[0] if k not in RESULT_COLUMNS and k not in ("trial", "rung")]
    header = ["rank", *settings, "best_val_acc", "epoch", "status", "seconds"]
    lines = [header]
    for rank, row in enumerate(rows[:limit], 1):
        acc = "" if row["best_val_acc"] is None else f"{row['best_val_acc']:.4f}"
        secs = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        lines.append([str(rank), *(str(row.get(k)) for k in settings), acc, str(row["best_epoch"] or ""),
                      row["status"], secs])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)


def trial_losses(out, rows):
    """{trial id: per-iteration mini-batch losses} read from each trial's run folder."""
    curves = {}
    for row in rows:
        path = os.path.join(out, "trials", row["trial"], "iteration_loss.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                curves[row["trial"]] = json.load(f)
    return curves
