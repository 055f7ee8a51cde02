"""Rich display in notebooks: History as an HTML table, the notebook probe."""

import sys
import types

import sgdlab as sl
from sgdlab.display import ROWS_SHOWN, format_cell, html_table, in_notebook
from sgdlab.optimizers import SGD


def test_history_renders_one_row_per_evaluation_with_the_best_in_bold(spirals):
    train, val = spirals
    history = sl.fit(sl.MLP([2, 16, 3], seed=0), train, SGD(lr=0.3), batch_size=20, epochs=5, validation=val,
                     progress=False)
    page = history._repr_html_()
    assert page.count("<tr") == 1 + 5
    for column in ("epoch", "iteration", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
        assert f">{column}</th>" in page
    best = history.best_row
    assert page.count('style="font-weight:bold"') == 1
    bold_row = page.split('<tr style="font-weight:bold">')[1].split("</tr>")[0]
    assert f">{best['epoch']}</td>" in bold_row and f">{format_cell(best['val_loss'])}</td>" in bold_row
    assert f"best epoch {history.best_epoch} by val_loss" in page and "status completed" in page


def test_long_tables_show_both_ends_and_escape_cells():
    rows = [[k, f"<b>{k}</b>"] for k in range(100)]
    page = html_table(["n", "text"], rows, caption="a & b")
    assert page.count("<tr") == 1 + ROWS_SHOWN + 1 and "…" in page
    assert ">0</td>" in page and ">99</td>" in page and ">50</td>" not in page
    assert "&lt;b&gt;7&lt;/b&gt;" in page and "a &amp; b" in page and "<b>" not in page


def test_format_cell():
    assert [format_cell(v) for v in (None, float("nan"), 0.91234567, 1.0, 0.05, 3e-5, 12, "ok")] == \
        ["", "", "0.9123", "1", "0.05", "3e-05", "12", "ok"]


def test_in_notebook_needs_a_kernel(monkeypatch):
    ipython = types.ModuleType("IPython")
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    ipython.get_ipython = lambda: None  # plain Python with IPython imported
    assert not in_notebook()
    ipython.get_ipython = lambda: types.SimpleNamespace()  # the terminal IPython shell: no kernel
    assert not in_notebook()
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    assert in_notebook()
    monkeypatch.delitem(sys.modules, "IPython")
    assert not in_notebook()


def test_sweep_results_render_ranked_with_the_winner_in_bold():
    from sgdlab.sweep import SweepResults, format_table

    def row(trial, lr, status, acc):
        return {"trial": trial, "rung": 0, "lr": lr, "epochs": 5, "status": status, "best_val_acc": acc,
                "best_val_loss": None if acc is None else 1 - acc, "best_epoch": "5", "initial_loss": 1.1,
                "test_acc": None, "run_status": "completed", "reason": "r<1>", "seconds": 0.5}

    results = SweepResults([row("b", 10.0, "diverged", 0.3), row("a", 0.1, "ok", 0.9), row("c", 1e-3, "ok", 0.5)])
    page = results._repr_html_()
    assert page.count("<tr") == 1 + 3 and ">lr</th>" in page and "r&lt;1&gt;" in page
    bold_row = page.split('<tr style="font-weight:bold">')[1].split("</tr>")[0]
    assert ">0.1</td>" in bold_row and ">0.9</td>" in bold_row  # the first ok row, not the first row
    assert str(results) == format_table(results)
    assert SweepResults([])._repr_html_() == "<p>(no trials)</p>"


def test_fit_shows_a_progress_bar_in_a_notebook_and_none_in_a_log(spirals, monkeypatch):
    from sgdlab.training import Trainer

    train, _ = spirals

    def shows_a_bar():
        trainer = Trainer(sl.MLP([2, 4, 3]), train, SGD(lr=0.1), epochs=1)  # progress=None: the default
        progress = trainer._progress_bar()
        shown = not progress.disable
        progress.close()
        return shown

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not shows_a_bar()  # pytest's stderr is not a terminal: no bar in a log file
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object(), config={})
    ipython.version_info = (9, 0, 0, "")
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert shows_a_bar()


def test_sgdlab_figures_leave_a_notebooks_pyplot_backend_alone():
    """Drawing with sgdlab.plots must not switch the kernel's inline backend to Agg (the user's plt plots vanish)."""
    import os
    import subprocess

    code = ("import matplotlib, matplotlib.pyplot as plt, sgdlab as sl\n"
            "h = sl.History(); h.iteration_loss = [2.0, 1.0]\n"
            "sl.plots.loss_curve(h)\n"
            "print(matplotlib.get_backend())")
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("module://matplotlib_inline.backend_inline")
