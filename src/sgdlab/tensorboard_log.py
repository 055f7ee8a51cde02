"""TensorBoard logging: every evaluation's metrics as scalars, the weights as histograms once per epoch.

Written with tensorboardX (``pip install 'sgdlab[tensorboard]'``): it needs only
numpy, protobuf and packaging (0.65 MB + protobuf's 2.2 MB), where the ``tensorboard`` package's own
writer comes with the whole TensorBoard server (grpcio, werkzeug, markdown,
tensorboard-data-server: ~55 MB).  Viewing the files still needs ``tensorboard``,
wherever it is installed: ``tensorboard --logdir DIR``.

Scalars use step = iteration and hold the values metrics.csv holds (rounded the
same way), under the tags in ``SCALAR_TAGS``.  Histograms are the model file's
tensors (``layers.K.W``, ``layers.K.b``, BatchNorm's gamma, beta and running
averages), written at each epoch's end (and at the end of a run that stops between epochs).
"""

import os

from .checkpoint import model_tensors
from .errors import ConfigError
from .callbacks import Callback
from .history import csv_value

SCALAR_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
               "val_acc": "accuracy/val", "lr": "lr"}


def run_log_dir(root, run_folder):
    """ROOT/NAME for the run folder .../NAME: one folder per run under one root, so TensorBoard compares them."""
    name = os.path.basename(os.path.normpath(os.path.abspath(run_folder)))
    return os.path.join(os.fspath(root), name)


def event_files(log_dir):
    """The TensorBoard event files directly in ``log_dir`` (none when it does not exist)."""
    if not os.path.isdir(log_dir):
        return []
    return sorted(name for name in os.listdir(log_dir) if name.startswith("events.out.tfevents."))


class TensorBoard(Callback):
    """Write event files into ``log_dir`` that TensorBoard reads (one folder per run, to compare runs).

    ``histograms=False`` writes the scalars only.  A fresh run refuses a ``log_dir`` that already holds
    event files unless ``overwrite=True`` (then they are deleted when training starts).  A resumed run
    (trainer past iteration 0) appends and discards the events its first run wrote after the
    checkpoint, so no step appears twice.
    """

    def __init__(self, log_dir, histograms=True, overwrite=False):
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ConfigError(f"log_dir={log_dir!r} is not allowed: give a folder path")
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError("TensorBoard logging needs tensorboardX: pip install 'sgdlab[tensorboard]'") from None
        self.summary_writer = SummaryWriter
        self.log_dir, self.histograms, self.overwrite = os.fspath(log_dir), bool(histograms), bool(overwrite)
        self.writer, self.histogram_step = None, None

    def check_fresh(self):
        """Refuse a log_dir with event files of an earlier run (unless overwrite): its curves would mix with ours."""
        found = event_files(self.log_dir)
        if found and not self.overwrite:
            raise ConfigError(f"TensorBoard folder {self.log_dir!r} already holds event files ({found[0]}...): "
                              f"pass --overwrite (overwrite=True) to replace them or choose another folder")
        return found

    def on_train_begin(self, trainer):
        if trainer.iteration == 0:
            for name in self.check_fresh():
                os.unlink(os.path.join(self.log_dir, name))
        # purge_step: a resumed run hides the first run's events after the checkpoint's iteration
        # the suffix keeps a resume within the same second from reopening (and truncating) the first file
        self.writer = self.summary_writer(logdir=self.log_dir, purge_step=trainer.iteration + 1 if trainer.iteration
                                          else None, flush_secs=10,
                                          filename_suffix=f".{os.getpid()}.{trainer.iteration:012d}")
        self.histogram_step = trainer.iteration if trainer.iteration else None

    def on_evaluation(self, trainer, row):
        for column, tag in SCALAR_TAGS.items():
            if row.get(column) is not None:
                self.writer.add_scalar(tag, csv_value(row[column]), global_step=row["iteration"])
        self.writer.flush()

    def after_epoch(self, trainer):
        if self.histograms:
            self._write_histograms(trainer)

    def on_train_end(self, trainer):
        if self.writer is None:
            return
        if self.histograms and self.histogram_step != trainer.iteration:  # ended between epoch boundaries
            self._write_histograms(trainer)
        self.writer.close()
        self.writer = None

    def _write_histograms(self, trainer):
        for name, values in model_tensors(trainer.model).items():
            self.writer.add_histogram(name, values, global_step=trainer.iteration)
        self.writer.flush()
        self.histogram_step = trainer.iteration
