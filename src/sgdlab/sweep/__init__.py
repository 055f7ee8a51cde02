"""Choosing hyper-parameters: search spaces over any TrainConfig field, trials on an Executor, the LR range test.

``space`` (what varies), ``runner`` (one trial in a worker; ``Sweep`` keeps the
executor busy), ``executors`` (local processes or Dask), ``table`` (each
trial's row, ranking, sweep.csv), ``range_test`` (the LR range test, which is
one run, not a sweep) and ``command`` (``sgdlab sweep``).

A trial is ``run.train_run`` in a worker process (local processes or a Dask
cluster, through ``concurrent.futures.Executor``).  The worker trains into a
private temporary folder and sends the run folder's files back, so workers
share nothing but the dataset path; the sweep writes ``trials/<id>/`` and
appends a row to ``sweep.csv`` as each trial ends, so ``--resume`` skips
finished trials.

A trial's sweep status, from its initial loss L0 (the first mini-batch's loss,
before any update):

- ``diverged``: the run stopped as diverged (loss NaN/inf or > 100 L0), or some
  mini-batch loss exceeded ``DIVERGED_FACTOR`` x L0 (it blew up, even if it came back);
- ``too slow``: best val loss > (1 - slow_threshold) x L0, i.e. it did not
  remove even ``slow_threshold`` (default half) of the initial loss in its budget;
- ``failed``: its worker died twice (or it raised); the reason is recorded;
- ``ok``: otherwise.
"""

from ..schedules import ExponentialRamp
from ..smoothing import smoothed_loss
from .command import TRIAL_DEFAULTS, sweep_command
from .executors import dask_client, local_executor_factory, threads_per_worker
from .range_test import lr_range_test, range_beta, suggest_lr, write_range_test
from .runner import Sweep, TrialInterrupted, run_trial
from .space import EXCLUDED_FROM_ID, Dimension, SearchSpace, build_space, parse_values, trial_id
from .table import (DIVERGED_FACTOR, RESULT_COLUMNS, STATUS_ORDER, SweepResults, failed_result, format_table,
                    rank_key, read_table, trial_losses, trial_result, write_table)

__all__ = ["TRIAL_DEFAULTS", "sweep_command", "dask_client", "local_executor_factory", "threads_per_worker",
           "lr_range_test", "range_beta", "suggest_lr", "write_range_test", "Sweep", "TrialInterrupted", "run_trial",
           "EXCLUDED_FROM_ID", "Dimension", "SearchSpace", "build_space", "parse_values", "trial_id",
           "DIVERGED_FACTOR", "RESULT_COLUMNS", "STATUS_ORDER", "SweepResults", "failed_result", "format_table",
           "rank_key", "read_table", "trial_losses", "trial_result", "write_table", "ExponentialRamp", "smoothed_loss"]
