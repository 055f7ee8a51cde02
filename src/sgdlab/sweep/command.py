"""``sgdlab sweep``: the range test or the sweep, its table and picture, then optionally the winner."""

import os
import signal
import sys

from ..config import TrainConfig
from ..errors import ConfigError
from ..runfolder import check_location, check_replaceable, claim_folder
from ..validation import check_whole_number
from .executors import dask_client, local_executor_factory, threads_per_worker
from .range_test import lr_range_test, write_range_test
from .runner import Sweep
from .space import _field_types, build_space
from .table import format_table, trial_losses

# Where a sweep's trials differ from `sgdlab train` unless set: trials are ranked on validation metrics, so
# their train metrics are the batches' running means; a pass over the whole training set at every epoch
# took 40% of an MNIST trial.  (--set train_metrics=full restores it; --then-train uses train's defaults.)
TRIAL_DEFAULTS = {"train_metrics": "running"}


def sweep_command(settings, out, base_values=None, trials=8, grid=False, sweep_seed=0, workers=None, scheduler=None,
                  resume=False, overwrite=False, halving=None, min_epochs=1, slow_threshold=0.5, range_test=False,
                  lr_min=1e-6, lr_max=10.0, range_iterations=200, then_train=False, final_epochs=None, quiet=False,
                  tensorboard=None):
    """``sgdlab sweep``: the range test or the sweep, its table and picture, then optionally the winner; exit code.

    ``tensorboard``: a folder; each trial's events go to ``tensorboard/<sweep name>/<trial id>/`` (the winner's
    to ``.../winner/``), so TensorBoard shows the trials side by side.
    """
    if tensorboard is not None:
        from ..tensorboard_log import TensorBoard, run_log_dir

        tensorboard = run_log_dir(tensorboard, out)
        TensorBoard(tensorboard)  # without tensorboardX: one error now, not one per trial
        if not resume:  # a taken TensorBoard folder is refused before the sweep's own folder is made
            check_replaceable(check_location(tensorboard, "--tensorboard"), "tensorboard", overwrite,
                              what="--tensorboard")
    stream = None if quiet else sys.stdout
    fixed, space = build_space(settings, trials=trials, grid=grid, seed=sweep_seed)
    given = {**(base_values or {}), **fixed}
    base = TrainConfig.from_dict({**TRIAL_DEFAULTS, **given})
    check_whole_number("workers", workers, optional=True)
    check_whole_number("final_epochs", final_epochs, optional=True)
    final_epochs = final_epochs or max(base.epochs, TrainConfig.epochs)
    if range_test and space.dimensions:
        raise ConfigError(f"--range-test runs one lr ramp: give single values, not the range or list of "
                          f"{space.dimensions[0].name}")
    with claim_folder(out, "sweep", overwrite=overwrite, resume=resume and os.path.isdir(out),
                      command="sgdlab sweep") as claim:
        if range_test and not resume:
            claim.clear()
        try:
            with stop_on_signals() as received:
                return _sweep_in(out, given, base, space, final_epochs, workers, scheduler, resume, overwrite,
                                 halving, min_epochs, slow_threshold, range_test, lr_min, lr_max, range_iterations,
                                 then_train, quiet, stream, tensorboard)
        except SweepInterrupted:
            name = signal.Signals(received[0]).name
            print(f"sgdlab: sweep interrupted by {name}: the finished trials are in {os.path.join(out, 'sweep.csv')}; "
                  f"continue with the same command and --resume", file=sys.stderr)
            return 128 + received[0]


def _sweep_in(out, given, base, space, final_epochs, workers, scheduler, resume, overwrite, halving, min_epochs,
              slow_threshold, range_test, lr_min, lr_max, range_iterations, then_train, quiet, stream, tensorboard):
    """``sweep_command``'s work in the sweep folder it holds."""
    if range_test:
        result = lr_range_test(base, lr_min=lr_min, lr_max=lr_max, iterations=range_iterations)
        write_range_test(out, result)
        print(f"LR range test: {result['losses'].size} iterations, lr {lr_min:g} -> {lr_max:g}, loss blew up "
              f"at iteration {result['end']}; suggested lr {result['suggested_lr']:.3g} "
              f"(steepest descent of the smoothed loss)\nfiles: {out}/range_test.png, range_test.csv", file=sys.stdout)
        winner = {"lr": float(f"{result['suggested_lr']:.3g}")}
    else:
        winner = _run_sweep(base, space, out, workers, scheduler, resume, overwrite, halving, min_epochs,
                            slow_threshold, stream, tensorboard)
        if winner is None:
            return 1
    if then_train:
        from ..run import print_summary, train_run

        config = TrainConfig.from_dict(given).replace(**{**winner, "epochs": final_epochs})  # train's defaults
        folder = os.path.join(out, "winner")
        print(f"training the winner ({', '.join(f'{k}={v}' for k, v in winner.items())}) for {final_epochs} epochs",
              file=sys.stdout, flush=True)
        callbacks = []
        if tensorboard is not None:
            from ..tensorboard_log import TensorBoard

            callbacks.append(TensorBoard(os.path.join(tensorboard, "winner"), overwrite=True))
        summary = train_run(config, folder, overwrite=overwrite, quiet=quiet, callbacks=callbacks)
        print_summary(summary, folder)
    return 0


class SweepInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the sweep stops its workers and keeps the finished trials."""


def stop_on_signals():
    """SIGINT/SIGTERM raise SweepInterrupted in the main thread (``Sweep.run`` then stops the workers);
    a second signal while it cleans up is only counted."""
    from ..run import handle_stop_signals

    def interrupt(signum, count):
        if count == 1:
            raise SweepInterrupted

    return handle_stop_signals(interrupt)


def _run_sweep(base, space, out, workers, scheduler, resume, overwrite, halving, min_epochs, slow_threshold,
               stream, tensorboard=None):
    """Runs the sweep on local processes or Dask; prints the table, writes sweep.png; returns the winner's point."""
    client = cluster = None
    if scheduler:
        client, cluster = dask_client(scheduler, workers or os.cpu_count() or 1)
        factory, in_flight, threads = (lambda: client.get_executor(pure=False)), 10 ** 6, base.threads or 1
        where = f"Dask scheduler {client.scheduler.address} ({len(client.nthreads())} workers)"
    else:
        workers = workers or os.cpu_count() or 1
        factory, in_flight = local_executor_factory(workers), workers
        threads = base.threads or threads_per_worker(workers)
        where = f"{workers} local worker processes x {threads} BLAS threads"
    try:
        sweep = Sweep(base, space, out, factory, in_flight, threads=threads, slow_threshold=slow_threshold,
                      halving=halving, min_epochs=min_epochs, resume=resume, overwrite=overwrite, stream=stream,
                      tensorboard=tensorboard)
        if stream:
            print(f"sweep of {len(space.points())} trials on {where} -> {out}", file=stream, flush=True)
        rows = sweep.run()
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    names = [d.name for d in space.dimensions]
    param = next((n for n in names if n == "lr"), next((n for n in names if _field_types()[n] in (int, float)), None))
    plotted = [r for r in rows if r["rung"] == 0]
    from .. import plots

    plots.sweep_results(plotted, trial_losses(out, plotted), param=param) \
        .savefig(os.path.join(out, "sweep.png"), dpi=110)
    print(format_table(rows), file=sys.stdout)
    winner = sweep.winner()
    if winner is None:
        print(f"no trial ended ok: see {os.path.join(out, 'sweep.csv')}", file=sys.stdout)
        return None
    point = {n: winner[n] for n in names}
    print(f"winner: {', '.join(f'{k}={v}' for k, v in point.items()) or winner['trial']} "
          f"(best val acc {winner['best_val_acc']}, trial {winner['trial']})\n"
          f"files: {out}/sweep.csv, sweep.png, trials/<id>/", file=sys.stdout, flush=True)
    return point
