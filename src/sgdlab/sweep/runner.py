"""Running trials: one trial in a worker (``run_trial``), and ``Sweep``, which keeps the executor busy,
retries trials whose worker died, halves rungs and rewrites sweep.csv as each trial ends."""

import json
import math
import os
import shutil
import tempfile

from ..checkpoint import write_json_atomic
from ..config import TrainConfig
from ..errors import ConfigError, SgdlabError
from ..runfolder import Claim, check_location, check_replaceable
from ..safetensors_io import load_json_text
from .executors import _shutdown, stop_workers
from .space import trial_id
from .table import SweepResults, failed_result, rank_key, read_table, trial_result, write_table


class TrialInterrupted(RuntimeError):
    """The worker was asked to stop mid-trial; the trial did not finish and is not a result."""


def run_trial(spec):
    """Train one trial in a private temporary folder; return its summary, history and the folder's files.

    No loss.png/accuracy.png per trial (drawing costs more than training a small net): sweep.png shows them all.

    Top-level so that process pools and Dask ship it by reference.
    """
    from ..run import train_run

    config = TrainConfig.from_dict(spec["config"]).replace(threads=spec.get("threads"))
    with tempfile.TemporaryDirectory(prefix="sgdlab-trial-") as tmp:
        out, events = os.path.join(tmp, "run"), os.path.join(tmp, "tensorboard")
        callbacks = []
        if spec.get("tensorboard"):
            from ..tensorboard_log import TensorBoard

            callbacks.append(TensorBoard(events))
        summary = train_run(config, out, overwrite=True, quiet=True, pictures=False, callbacks=callbacks)
        if summary["status"] == "interrupted":
            raise TrialInterrupted(f"trial {spec['id']} interrupted: {summary['stopped_reason']}")
        result = {"id": spec["id"], "summary": summary, "files": _read_folder(out), "pid": os.getpid()}
        if callbacks:
            result["tensorboard"] = _read_folder(events)  # shipped back: a Dask worker's disk is not ours
    return result


def _read_folder(folder):
    """{file name: bytes} of the files directly in ``folder``."""
    files = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            files[name] = f.read()
    return files


def _write_folder(folder, files):
    """Write {name: bytes} as ``folder``, replacing it whole (staged beside it, then renamed)."""
    staging = folder + ".part"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for name, data in files.items():
        with open(os.path.join(staging, name), "wb") as f:
            f.write(data)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)


class Sweep:
    """Runs a search space's trials on an Executor and keeps ``out/sweep.csv`` current.

    ``executor_factory()`` returns a fresh ``concurrent.futures.Executor`` (called
    again when a process pool breaks); ``max_in_flight`` bounds submitted trials.
    ``tensorboard``: a folder that gets each trial's TensorBoard events as ``<trial id>/``.
    """

    def __init__(self, base, space, out, executor_factory, max_in_flight, threads=None, slow_threshold=0.5,
                 halving=None, min_epochs=1, resume=False, overwrite=False, stream=None, tensorboard=None):
        if not 0 < slow_threshold < 1:
            raise ConfigError(f"slow_threshold={slow_threshold!r} is not allowed: use a number > 0 and < 1")
        if halving is not None and not (isinstance(halving, int) and halving >= 2):
            raise ConfigError(f"halving={halving!r} is not allowed: keep 1/ETA of the trials per rung, ETA >= 2")
        if not (isinstance(min_epochs, int) and 1 <= min_epochs <= base.epochs):
            raise ConfigError(f"min_epochs={min_epochs!r} is not allowed: use a whole number from 1 to "
                              f"--epochs ({base.epochs})")
        self.base, self.space, self.out = base, space, os.fspath(out)
        self.executor_factory, self.max_in_flight, self.threads = executor_factory, max_in_flight, threads
        self.slow_threshold, self.halving, self.min_epochs = slow_threshold, halving, min_epochs
        self.stream = stream
        self.tensorboard = None if tensorboard is None else os.fspath(tensorboard)
        self.rows = {}
        self.restarts = 0
        self._executor = None
        self._open(resume, overwrite)

    @property
    def csv_path(self):
        return os.path.join(self.out, "sweep.csv")

    def _open(self, resume, overwrite):
        description = {"base": self.base.to_dict(), "space": self.space.to_dict(), "halving": self.halving,
                       "min_epochs": self.min_epochs, "slow_threshold": self.slow_threshold}
        description["base"].pop("threads")
        description = json.loads(json.dumps(description))  # tuples become lists, as read back
        spec_path = os.path.join(self.out, "sweep.json")
        if resume and os.path.exists(spec_path):
            try:
                with open(spec_path, encoding="utf-8") as f:
                    previous = load_json_text(f.read(), repr(spec_path), error=ConfigError)
            except UnicodeDecodeError:
                previous = None
            if previous != description:
                raise ConfigError(f"--resume: {self.out!r} holds a different sweep (settings in its sweep.json); "
                                  f"give the same flags or another --out")
            self.rows = {(r["trial"]): r for r in read_table(self.csv_path)} if os.path.exists(self.csv_path) \
                else {}
        else:
            check_location(self.out)
            check_replaceable(self.out, "sweep", overwrite or resume)
            if self.tensorboard:
                check_location(self.tensorboard, "--tensorboard")
                check_replaceable(self.tensorboard, "tensorboard", overwrite or resume, what="--tensorboard")
            for folder, kind in ((self.out, "sweep"), (self.tensorboard, "tensorboard")):
                if folder and os.path.isdir(folder) and not resume:
                    Claim(folder, kind).clear()
            os.makedirs(os.path.join(self.out, "trials"), exist_ok=True)
            write_json_atomic(spec_path, description)

    def specs(self, points, epochs, rung):
        specs = []
        for point in points:
            config = self.base.replace(**{"epochs": epochs, **point, "threads": None})
            specs.append({"id": trial_id(config), "config": config.to_dict(), "point": point, "rung": rung,
                          "threads": self.threads, "tensorboard": self.tensorboard is not None})
        return specs

    def run(self):
        """Every rung's trials (one rung without halving); returns the ranked rows."""
        try:
            return self._run_rungs()
        finally:
            if self._executor is not None:
                _shutdown(self._executor, wait=True)
                self._executor = None

    def _run_rungs(self):
        points = self.space.points()
        if self.halving is None:
            self._run_rung(self.specs(points, self.base.epochs, 0))
            return self.table()
        epochs, rung = self.min_epochs, 0
        while True:
            specs = self._run_rung(self.specs(points, epochs, rung))
            ranked = sorted((self.rows[s["id"]] for s in specs), key=rank_key)
            alive = [r for r in ranked if r["status"] in ("ok", "too slow")]
            keep = max(1, math.ceil(len(specs) / self.halving))
            if epochs >= self.base.epochs or len(alive) <= 1:
                return self.table()
            by_id = {s["id"]: s["point"] for s in specs}
            points = [by_id[r["trial"]] for r in alive[:keep]]
            epochs, rung = min(self.base.epochs, epochs * self.halving), rung + 1

    def _run_rung(self, specs):
        todo = [s for s in specs if s["id"] not in self.rows]
        if len(todo) < len(specs):
            self._say(f"resuming: {len(specs) - len(todo)} of {len(specs)} trials already in {self.csv_path}")
        attempts = {s["id"]: 0 for s in todo}
        pending = list(todo)
        self._total, self._done = len(specs), len(specs) - len(todo)
        while pending:
            pending = self._run_pool(pending, attempts)
        return specs

    def _run_pool(self, pending, attempts):
        """Run ``pending`` on the executor; returns the trials to resubmit on a new one (after a broken pool)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        queue, running, retry = list(pending), {}, []
        if self._executor is None:
            self._executor = self.executor_factory()
        executor, broken = self._executor, False
        try:
            while queue or running:
                while queue and len(running) < self.max_in_flight and not broken:
                    spec = queue.pop(0)
                    attempts[spec["id"]] += 1
                    running[executor.submit(run_trial, spec)] = spec
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    spec = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool as exc:
                        broken = True
                        self._failed_attempt(spec, attempts, retry, f"worker process died ({exc})")
                        continue
                    except SgdlabError as exc:
                        self._record(spec, failed_result(spec, f"{type(exc).__name__}: {exc}"))
                        continue
                    except Exception as exc:  # a task error or Dask's KilledWorker: retried once
                        self._failed_attempt(spec, attempts, queue, f"{type(exc).__name__}: {exc}")
                        continue
                    self._record(spec, trial_result(spec, result, self.slow_threshold), result["files"],
                                 result.get("tensorboard"))
            retry.extend(queue)
        except BaseException:
            stop_workers(executor)                  # interrupted: no worker may go on training as an orphan
            self._executor = None
            raise
        if broken:
            _shutdown(executor, wait=False)
            self._executor = None
            self.restarts += 1
            self._say(f"a worker died: starting a new pool for {len(retry)} unfinished trials")
        return retry

    def _failed_attempt(self, spec, attempts, again, reason):
        if attempts[spec["id"]] >= 2:
            self._record(spec, failed_result(spec, f"failed twice, last: {reason}"))
        else:
            again.append(spec)

    def _record(self, spec, row, files=None, events=None):
        """Write the trial's run folder (and TensorBoard events), then rewrite sweep.csv atomically with the new row."""
        if files:
            _write_folder(os.path.join(self.out, "trials", spec["id"]), files)
        if events:
            os.makedirs(self.tensorboard, exist_ok=True)
            _write_folder(os.path.join(self.tensorboard, spec["id"]), events)
        self.rows[spec["id"]] = row
        write_table(self.csv_path, self.table())
        self._done += 1
        settings = " ".join(f"{k}={v}" for k, v in spec["point"].items())
        acc = "n/a" if row["best_val_acc"] is None else f"{row['best_val_acc']:.4f}"
        self._say(f"[{self._done}/{self._total}] {settings or spec['id']} epochs={row['epochs']}: {row['status']}, "
                  f"best val acc {acc}" + (f" ({row['reason']})" if row["status"] != "ok" else ""))

    def table(self):
        return SweepResults(sorted(self.rows.values(), key=rank_key))

    def winner(self):
        """The best ``ok`` trial of the last rung (None when every trial diverged, failed or was too slow)."""
        table = self.table()
        return next((r for r in table if r["status"] == "ok" and r["rung"] == table[0]["rung"]), None)

    def _say(self, text):
        if self.stream is not None:
            print(text, file=self.stream, flush=True)
