"""How sgdlab's objects show themselves in Jupyter: HTML tables for ``_repr_html_``, and
whether code runs inside a notebook kernel (where progress bars and live plots render).

Nothing here imports IPython unless it is already loaded: a script pays nothing.
"""

import html
import math
import sys

ROWS_SHOWN = 30  # a longer table shows its first and last ROWS_SHOWN // 2 rows around a "…" row


def in_notebook():
    """True inside a Jupyter kernel (ipykernel), where rich output and widgets render."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def format_cell(value):
    """A table cell as text: floats to 4 significant decimals, None and NaN as blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def html_table(header, rows, caption="", highlight=None, numeric=None):
    """A <table> of ``rows`` (lists of cells) under ``header``; row ``highlight`` in bold.

    Cells are escaped; numeric columns (those named in ``numeric``; by default those holding only
    numbers) are right-aligned.  Past ROWS_SHOWN rows, the middle ones are replaced by one "…" row.
    """
    if numeric is None:
        numeric = [name for k, name in enumerate(header)
                   if all(row[k] is None or isinstance(row[k], (int, float)) for row in rows)]
    numeric = set(numeric)
    align = ["right" if name in numeric else "left" for name in header]
    shown = list(enumerate(rows))
    if len(shown) > ROWS_SHOWN:
        half = ROWS_SHOWN // 2
        shown = shown[:half] + [(None, None)] + shown[-half:]
    parts = ['<table class="sgdlab">']
    if caption:
        parts.append(f'<caption style="text-align:left">{html.escape(caption)}</caption>')
    parts.append("<thead><tr>" + "".join(f'<th style="text-align:{a}">{html.escape(str(h))}</th>'
                                         for h, a in zip(header, align)) + "</tr></thead><tbody>")
    for index, row in shown:
        if row is None:
            parts.append(f'<tr><td colspan="{len(header)}" style="text-align:center">…</td></tr>')
            continue
        style = ' style="font-weight:bold"' if index == highlight else ""
        cells = "".join(f'<td style="text-align:{a}">{html.escape(format_cell(c))}</td>' for c, a in zip(row, align))
        parts.append(f"<tr{style}>{cells}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def history_html(history, columns):
    """A History as a table: one row per evaluation (``columns``: metrics.csv's), the best one in bold."""
    rows = [[row.get(c) for c in columns] for row in history.rows]
    caption = f"{len(history.rows)} evaluations, {len(history.iteration_loss)} iterations; status {history.status}"
    if history.best_epoch is not None:
        caption += f"; best epoch {history.best_epoch} by {history.monitor} (bold)"
    if history.stopped_reason:
        caption += f" — {history.stopped_reason}"
    return html_table(columns, rows, caption=caption, highlight=history.best_index, numeric=columns)
