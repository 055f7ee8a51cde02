"""LivePlot: one notebook output, updated in place once per evaluation; harmless outside a notebook."""

import sys
import types
import warnings

import numpy as np
import pytest

import sgdlab as sl
from sgdlab import liveplot
from sgdlab.optimizers import SGD


class Handle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


@pytest.fixture
def ipython_display(monkeypatch):
    """A stand-in for IPython inside a kernel: records every display() call and every handle update."""
    shown = []
    ipython, display_module = types.ModuleType("IPython"), types.ModuleType("IPython.display")
    shell = types.SimpleNamespace(kernel=object(), config={})
    ipython.get_ipython = lambda: shell
    ipython.version_info = (9, 0, 0, "")  # matplotlib asks

    def display(obj, display_id=None):
        handle = Handle() if display_id else None
        shown.append((obj, handle))
        return handle

    class Image:
        def __init__(self, data=None, format=None):
            self.data, self.format = data, format

    class HTML:
        def __init__(self, data=None):
            self.data = data

    display_module.display, display_module.Image, display_module.HTML = display, Image, HTML
    ipython.display = display_module
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    return shown


@pytest.mark.parametrize("eval_every", [None, 7])
def test_one_display_handle_updated_once_per_evaluation(spirals, ipython_display, eval_every):
    train, val = spirals
    plot = sl.LivePlot()
    history = sl.fit(sl.MLP([2, 16, 3], seed=0), train, SGD(lr=0.3), batch_size=20, epochs=4, validation=val,
                     callbacks=[plot], eval_every=eval_every, progress=False)
    evaluations = len(history.rows)
    assert evaluations == (4 if eval_every is None else 7)  # 12 iterations an epoch: 7, 14, ..., 42, 48
    assert len(ipython_display) == 1, "LivePlot must make one output and update it, not add outputs"
    handle = ipython_display[0][1]
    assert len(handle.updates) == plot.updates == evaluations
    assert all(image.format == "png" and image.data.startswith(b"\x89PNG\r\n\x1a\n") for image in handle.updates)
    assert handle.updates[0].data != handle.updates[-1].data  # the curves grew


def test_outside_a_notebook_it_warns_once_and_changes_nothing(spirals, monkeypatch):
    monkeypatch.setattr(liveplot, "_warned", False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    train, val = spirals

    def run(callbacks):
        model = sl.MLP([2, 16, 3], seed=0)
        history = sl.fit(model, train, SGD(lr=0.3), batch_size=20, epochs=2, validation=val, callbacks=callbacks,
                         progress=False)
        return model, history

    with pytest.warns(RuntimeWarning, match="LivePlot draws only in a Jupyter notebook"):
        watched, history = run([sl.LivePlot()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run([sl.LivePlot()])  # a second run says nothing more
    plain, plain_history = run([])
    np.testing.assert_array_equal(watched.params, plain.params)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in history.rows] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in plain_history.rows]


def png_width(data):
    return int.from_bytes(data[16:20], "big")


def test_regression_draws_the_loss_alone(ipython_display):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    t = x @ np.array([[1.0], [-2.0], [0.5]])
    data = sl.datasets.Dataset(x, t)
    plot = sl.LivePlot(width=10.0, dpi=50)
    sl.fit(sl.MLP([3, 8, 1], loss="mse"), data, SGD(lr=0.05), batch_size=10, epochs=2, callbacks=[plot],
           progress=False)
    updates = ipython_display[0][1].updates
    assert plot.updates == len(updates) == 2
    assert png_width(updates[-1].data) == 10.0 / 2 * 50  # one panel, half the width: no accuracy to draw
