"""Watching a fit in Jupyter: loss and accuracy curves redrawn in place after every evaluation.

``LivePlot`` makes one output area when training begins (``display(..., display_id=True)``)
and replaces its picture through that handle at each evaluation (``handle.update``), the way
fastprogress draws its graphs: no widget extension, no ``clear_output`` flicker, and the
notebook holds one picture however long the run.  Outside a notebook kernel it says once that
it needs one, and does nothing.
"""

import io
import warnings

import numpy as np

from .display import in_notebook
from .callbacks import Callback

_warned = False


class LivePlot(Callback):
    """Callback: redraw loss (and accuracy) per epoch in one notebook output after each evaluation.

    Left: train and validation loss at each evaluation over the faint, smoothed mini-batch loss
    of every iteration; right: train and validation accuracy (classifiers).  The x axis spans the
    whole run from the start, so the curves grow left to right.
    """

    def __init__(self, width=10.0, height=3.6, dpi=80):
        self.width, self.height, self.dpi = width, height, dpi
        self.handle = None
        self.updates = 0  # pictures drawn into the handle this run
        self._figure = None

    def on_train_begin(self, trainer):
        global _warned
        self.handle, self.updates = None, 0
        if not in_notebook():
            if not _warned:
                warnings.warn("LivePlot draws only in a Jupyter notebook (an IPython kernel): here it does nothing",
                              RuntimeWarning, stacklevel=2)
                _warned = True
            return
        from IPython.display import HTML, display

        self.handle = display(HTML("<i>LivePlot: the curves appear at the first evaluation</i>"), display_id=True)

    def on_evaluation(self, trainer, row):
        if self.handle is None:
            return
        from IPython.display import Image

        self.handle.update(Image(data=self.render(trainer), format="png"))
        self.updates += 1

    def on_train_end(self, trainer):
        self._figure = None  # the picture stays in the notebook; the Figure is not needed any more

    def render(self, trainer):
        """The current curves as PNG bytes."""
        figure = self._draw(trainer)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def _draw(self, trainer):
        from matplotlib.figure import Figure

        history = trainer.history
        classifier = not np.all(np.isnan(history.column("train_acc")))
        if self._figure is None:
            self._figure = Figure(figsize=(self.width if classifier else self.width / 2, self.height),
                                  layout="constrained")
            self._figure.subplots(1, 2 if classifier else 1, squeeze=False)
        axes = self._figure.axes
        for ax in axes:
            ax.clear()
        per_epoch = trainer.iterations_per_epoch
        last_epoch = trainer.total_iterations / per_epoch
        epochs = np.array([r["iteration"] for r in history.rows], dtype=float) / per_epoch
        loss = np.asarray(history.iteration_loss, dtype=float)
        if loss.size:
            from .plots import smooth

            steps = np.arange(1, loss.size + 1) / per_epoch
            axes[0].plot(steps, smooth(loss, max(1, loss.size // 50)), color="tab:blue", alpha=0.3, linewidth=1,
                         label="mini-batch loss (smoothed)")
        self._curves(axes[0], epochs, history, "loss", last_epoch)
        if classifier:
            self._curves(axes[1], epochs, history, "acc", last_epoch)
        status = f"epoch {history.rows[-1]['epoch']} of {last_epoch:g}" if history.rows else "starting"
        self._figure.suptitle(f"{status} · {trainer.iteration} iterations")
        return self._figure

    @staticmethod
    def _curves(ax, epochs, history, metric, last_epoch):
        ax.plot(epochs, history.column(f"train_{metric}"), "o-", color="tab:green", markersize=3,
                label=f"train {metric}")
        val = history.column(f"val_{metric}")
        if not np.all(np.isnan(val)):
            ax.plot(epochs, val, "s--", color="tab:orange", markersize=3, label=f"validation {metric}")
        ax.set_xlim(0, max(last_epoch, 1e-9))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
