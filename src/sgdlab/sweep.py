"""Choosing hyper-parameters: search spaces over any TrainConfig field, trials on an Executor, the LR range test.

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

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import typing

import numpy as np

from .checkpoint import write_json_atomic
from .config import TrainConfig
from .errors import ConfigError, RunExistsError, SgdlabError, check_whole_number

DIVERGED_FACTOR = 10.0
STATUS_ORDER = {"ok": 0, "too slow": 1, "diverged": 2, "failed": 3}
RESULT_COLUMNS = ["status", "best_val_acc", "best_val_loss", "best_epoch", "initial_loss", "test_acc",
                  "run_status", "reason", "seconds"]
EXCLUDED_FROM_ID = ("threads", "prefetch", "checkpoint_every")  # settings that change speed, not results
# Where a sweep's trials differ from `sgdlab train` unless set: trials are ranked on validation metrics, so
# their train metrics are the batches' running means; a pass over the whole training set at every epoch
# took 40% of an MNIST trial.  (--set train_metrics=full restores it; --then-train uses train's defaults.)
TRIAL_DEFAULTS = {"train_metrics": "running"}


# -- the search space ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Dimension:
    """One swept setting: explicit ``values``, or a range low..high drawn uniformly or log-uniformly."""

    name: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def is_range(self):
        return self.low is not None

    def grid(self, n):
        """n evenly (log-)spaced values including both ends."""
        if not self.is_range:
            return self.values
        points = np.geomspace(self.low, self.high, n) if self.log else np.linspace(self.low, self.high, n)
        return _dedupe(_cast(self.name, p) for p in points)

    def draw(self, rng):
        """One value: uniform on [low, high], log-uniform (uniform in log) with ``log``, or one of ``values``."""
        if not self.is_range:
            return self.values[rng.integers(len(self.values))]
        if self.log:
            return _cast(self.name, math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return _cast(self.name, rng.uniform(self.low, self.high))


def _field_types():
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            for f in dataclasses.fields(TrainConfig)}


def _cast(name, value):
    """A drawn number as the field's type: ints rounded, floats to 4 significant digits (readable, stable ids)."""
    kind = _field_types()[name]
    if kind is int:
        return int(round(value))
    return float(f"{value:.4g}")


def _dedupe(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return tuple(out)


def _parse_scalar(name, text):
    kind = _field_types()[name]
    text = text.strip()
    if text.lower() in ("none", "null") and name in _optional_fields():
        return None
    try:
        if kind is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        what = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
        raise ConfigError(f"{name}={text!r} is not allowed: give {what}, a list a,b,c or a range LOW:HIGH[:log]") \
            from None
    return text


def _optional_fields():
    hints = typing.get_type_hints(TrainConfig)
    return {n for n, h in hints.items() if type(None) in typing.get_args(h)}


def parse_values(name, text):
    """'0.1' -> 0.1; 'a,b,c' -> Dimension(values); 'LOW:HIGH' (uniform) or 'LOW:HIGH:log' -> range Dimension.

    ``layers`` alternatives are separated by '/' because one layers value is itself '256,128'.
    """
    kinds = _field_types()
    if name not in kinds:
        raise ConfigError(f"unknown setting {name!r}: allowed are {', '.join(sorted(kinds))}")
    text = str(text)
    if name == "layers":
        options = text.split("/")
        return options[0] if len(options) == 1 else Dimension(name, values=tuple(options))
    if ":" in text and kinds[name] in (int, float):
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "lin", "linear")):
            raise ConfigError(f"{name}={text!r} is not a range: write LOW:HIGH or LOW:HIGH:log")
        low, high = (float(_parse_scalar(name, p)) for p in parts[:2])
        log = len(parts) == 3 and parts[2] == "log"
        if not low < high:
            raise ConfigError(f"{name}={text!r} is not a range: LOW must be below HIGH")
        if log and low <= 0:
            raise ConfigError(f"{name}={text!r} is not allowed: a log range needs LOW > 0")
        return Dimension(name, low=low, high=high, log=log)
    values = _dedupe(_parse_scalar(name, p) for p in text.split(","))
    return values[0] if len(values) == 1 else Dimension(name, values=values)


@dataclasses.dataclass
class SearchSpace:
    """Swept dimensions and how to visit them.

    ``grid``: every range becomes ``trials`` evenly (log-)spaced values; the
    trials are the cartesian product of all dimensions.  Otherwise, with any
    range, ``trials`` seeded draws (lists drawn uniformly); with lists only,
    their cartesian product.
    """

    dimensions: list
    trials: int = 8
    grid: bool = False
    seed: int = 0

    def points(self):
        """The list of {name: value} the sweep runs, in a fixed order."""
        if not self.dimensions:
            return [{}]
        names = [d.name for d in self.dimensions]
        if self.grid or not any(d.is_range for d in self.dimensions):
            return [dict(zip(names, combo)) for combo in
                    itertools.product(*(d.grid(self.trials) for d in self.dimensions))]
        rng = np.random.default_rng(self.seed)
        points = []
        for _ in range(self.trials):
            point = {d.name: d.draw(rng) for d in self.dimensions}
            if point not in points:
                points.append(point)
        return points

    def to_dict(self):
        return {"trials": self.trials, "grid": self.grid, "seed": self.seed,
                "dimensions": [dataclasses.asdict(d) for d in self.dimensions]}


def build_space(settings, trials=8, grid=False, seed=0):
    """From {field: text} (CLI flags, --set) to (fixed settings dict, SearchSpace)."""
    check_whole_number("trials", trials)
    if grid and trials < 2 and any(isinstance(parse_values(n, t), Dimension) and parse_values(n, t).is_range
                                   for n, t in settings.items()):
        raise ConfigError(f"trials={trials} is too few for --grid: a grid needs both ends, use --trials >= 2")
    fixed, dims = {}, []
    for name, text in settings.items():
        parsed = parse_values(name, text)
        if isinstance(parsed, Dimension):
            dims.append(parsed)
        else:
            fixed[name] = parsed
    return fixed, SearchSpace(dims, trials=trials, grid=grid, seed=seed)


def trial_id(config):
    """A short stable name from the config's settings (not the thread count): same config, same id."""
    d = {k: v for k, v in config.to_dict().items() if k not in EXCLUDED_FROM_ID}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


# -- one trial, in a worker ------------------------------------------------------------------------

class TrialInterrupted(RuntimeError):
    """The worker was asked to stop mid-trial; the trial did not finish and is not a result."""


def run_trial(spec):
    """Train one trial in a private temporary folder; return its summary, history and the folder's files.

    No loss.png/accuracy.png per trial (drawing costs more than training a small net): sweep.png shows them all.

    Top-level so that process pools and Dask ship it by reference.
    """
    from .run import train_run

    config = TrainConfig.from_dict(spec["config"]).replace(threads=spec.get("threads"))
    with tempfile.TemporaryDirectory(prefix="sgdlab-trial-") as tmp:
        out = os.path.join(tmp, "run")
        summary = train_run(config, out, overwrite=True, quiet=True, pictures=False)
        if summary["status"] == "interrupted":
            raise TrialInterrupted(f"trial {spec['id']} interrupted: {summary['stopped_reason']}")
        files = {}
        for name in sorted(os.listdir(out)):
            with open(os.path.join(out, name), "rb") as f:
                files[name] = f.read()
    return {"id": spec["id"], "summary": summary, "files": files, "pid": os.getpid()}


def trial_result(spec, result, slow_threshold):
    """The sweep.csv row of a finished trial: its settings, best val accuracy, epoch, sweep status, seconds."""
    summary = result["summary"]
    metrics = list(csv.DictReader(io.StringIO(result["files"]["metrics.csv"].decode())))
    losses = json.loads(result["files"]["iteration_loss.json"])
    initial = losses[0] if losses else float("nan")
    val_acc = [float(r["val_acc"]) for r in metrics if r.get("val_acc")]
    val_loss = [float(r["val_loss"]) for r in metrics if r.get("val_loss")]
    best = max(range(len(val_acc)), key=lambda i: (val_acc[i], -i)) if val_acc else None
    best_loss = min(val_loss) if val_loss else float("nan")
    if summary["status"] == "diverged" or (losses and max(losses) > DIVERGED_FACTOR * initial):
        status = "diverged"
        worst = max(losses) if losses else float("nan")
        reason = summary["stopped_reason"] if summary["status"] == "diverged" else \
            f"mini-batch loss reached {worst:.4g} > {DIVERGED_FACTOR:g} x initial {initial:.4g}"
    elif not (best_loss <= (1 - slow_threshold) * initial):
        status = "too slow"
        reason = f"best val loss {best_loss:.4g} > {1 - slow_threshold:g} x initial loss {initial:.4g}"
    else:
        status, reason = "ok", summary["stopped_reason"]
    return {**_row_settings(spec), "status": status,
            "best_val_acc": None if best is None else round(val_acc[best], 6),
            "best_val_loss": None if not val_loss else round(best_loss, 6),
            "best_epoch": None if best is None else metrics[best]["epoch"],
            "initial_loss": round(initial, 6) if losses else None,
            "test_acc": None if summary.get("test_accuracy") is None else round(summary["test_accuracy"], 6),
            "run_status": summary["status"], "reason": reason, "seconds": summary["seconds"]}


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


class Sweep:
    """Runs a search space's trials on an Executor and keeps ``out/sweep.csv`` current.

    ``executor_factory()`` returns a fresh ``concurrent.futures.Executor`` (called
    again when a process pool breaks); ``max_in_flight`` bounds submitted trials.
    """

    def __init__(self, base, space, out, executor_factory, max_in_flight, threads=None, slow_threshold=0.5,
                 halving=None, min_epochs=1, resume=False, overwrite=False, stream=None):
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
            with open(spec_path, encoding="utf-8") as f:
                previous = json.load(f)
            if previous != description:
                raise ConfigError(f"--resume: {self.out!r} holds a different sweep (settings in its sweep.json); "
                                  f"give the same flags or another --out")
            self.rows = {(r["trial"]): r for r in read_table(self.csv_path)} if os.path.exists(self.csv_path) \
                else {}
        else:
            if os.path.isdir(self.out) and os.listdir(self.out):
                if not overwrite:
                    raise RunExistsError(f"sweep folder {self.out!r} already exists: pass --resume to continue it, "
                                         f"--overwrite to replace it, or --out to choose another")
                shutil.rmtree(self.out)
            os.makedirs(os.path.join(self.out, "trials"), exist_ok=True)
            write_json_atomic(spec_path, description)

    def specs(self, points, epochs, rung):
        specs = []
        for point in points:
            config = self.base.replace(**{"epochs": epochs, **point, "threads": None})
            specs.append({"id": trial_id(config), "config": config.to_dict(), "point": point, "rung": rung,
                          "threads": self.threads})
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
                    self._record(spec, trial_result(spec, result, self.slow_threshold), result["files"])
            retry.extend(queue)
        except BaseException:
            _shutdown(executor, wait=False)
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

    def _record(self, spec, row, files=None):
        """Write the trial's run folder, then rewrite sweep.csv atomically with the new row."""
        if files:
            folder = os.path.join(self.out, "trials", spec["id"])
            staging = folder + ".part"
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
            for name, data in files.items():
                with open(os.path.join(staging, name), "wb") as f:
                    f.write(data)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
        self.rows[spec["id"]] = row
        write_table(self.csv_path, self.table())
        self._done += 1
        settings = " ".join(f"{k}={v}" for k, v in spec["point"].items())
        acc = "n/a" if row["best_val_acc"] is None else f"{row['best_val_acc']:.4f}"
        self._say(f"[{self._done}/{self._total}] {settings or spec['id']} epochs={row['epochs']}: {row['status']}, "
                  f"best val acc {acc}" + (f" ({row['reason']})" if row["status"] != "ok" else ""))

    def table(self):
        return sorted(self.rows.values(), key=rank_key)

    def winner(self):
        """The best ``ok`` trial of the last rung (None when every trial diverged, failed or was too slow)."""
        table = self.table()
        return next((r for r in table if r["status"] == "ok" and r["rung"] == table[0]["rung"]), None)

    def _say(self, text):
        if self.stream is not None:
            print(text, file=self.stream, flush=True)


def _shutdown(executor, wait):
    """Stop an executor, dropping trials not yet started (a Dask ClientExecutor cancels its futures)."""
    from concurrent.futures import ProcessPoolExecutor

    if isinstance(executor, ProcessPoolExecutor):
        executor.shutdown(wait=wait, cancel_futures=True)
    else:
        executor.shutdown(wait=False)


def write_table(path, rows):
    """sweep.csv: the ranked rows, written to a temporary name and renamed."""
    columns = ["rank", "trial", "rung"]
    for row in rows:
        columns += [k for k in row if k not in columns and k not in RESULT_COLUMNS]
    columns += RESULT_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for rank, row in enumerate(rows, 1):
        row = {**row, "rank": rank}
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    from .checkpoint import write_text_atomic

    write_text_atomic(path, buffer.getvalue())


def read_table(path):
    """sweep.csv back to rows with numbers typed (the inverse of ``write_table``)."""
    kinds = _field_types()
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row = {}
            for key, text in raw.items():
                if key == "rank":
                    continue
                if text == "":
                    row[key] = None
                elif key in ("rung",):
                    row[key] = int(text)
                elif key in ("best_val_acc", "best_val_loss", "initial_loss", "test_acc", "seconds"):
                    row[key] = float(text)
                elif key in ("best_epoch",):
                    row[key] = text
                elif key in kinds and key != "layers":
                    row[key] = _parse_scalar(key, text)
                else:
                    row[key] = text
            rows.append(row)
    return rows


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


# -- executors -------------------------------------------------------------------------------------

def local_executor_factory(workers):
    """Fresh ProcessPoolExecutors (spawned processes: no inherited BLAS threads or locks)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def make():
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    return make


def dask_client(scheduler, workers):
    """A dask.distributed Client for ``tcp://HOST:PORT``, or a new LocalCluster for 'local'."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--scheduler needs Dask: pip install 'sgdlab[dask]'") from None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="10s"), None
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {scheduler!r}: cannot reach a Dask scheduler there ({exc})") from None


def threads_per_worker(workers, cores=None):
    """BLAS threads for each of ``workers`` processes so that workers x threads = cores (at least 1)."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


# -- the LR range test -------------------------------------------------------------------------------

class ExponentialRamp:
    """lr_i = lr_min * (lr_max / lr_min) ** (i / (n - 1)): the LR range test's schedule (a Trainer schedule)."""

    def __init__(self, lr_min, lr_max, iterations):
        self.lr_min, self.lr_max, self.iterations = lr_min, lr_max, iterations

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        return self.lr_min * (self.lr_max / self.lr_min) ** (iteration / max(1, self.iterations - 1))

    def observe(self, metric):
        pass


def smoothed_loss(losses, beta=0.98):
    """Bias-corrected exponential moving average: s_i = (beta m_{i-1} + (1 - beta) l_i) / (1 - beta^(i+1))."""
    out, m = np.empty(len(losses)), 0.0
    for i, loss in enumerate(losses):
        m = beta * m + (1 - beta) * loss
        out[i] = m / (1 - beta ** (i + 1))
    return out


def range_beta(n):
    """EMA factor for an n-iteration range test: a window of about n/20 iterations, beta in [0.8, 0.98]."""
    return min(0.98, max(0.8, 1 - 20 / max(n, 1)))


def suggest_lr(lrs, losses, blowup=4.0, skip=10):
    """The lr of steepest descent of the smoothed loss against log lr, before its minimum and the blow-up.

    Blow-up: a short EMA (beta 0.8) exceeds ``blowup`` x its running minimum.  The slope is taken
    on an EMA (``range_beta``) run forward then backward over the part before it (zero lag: a
    one-way EMA would put the steepest point late).
    Returns (suggested lr, index where the loss blew up or len(lrs)).
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    fast = smoothed_loss(losses, beta=0.8)
    over = np.nonzero(~(fast <= blowup * np.minimum.accumulate(fast)))[0]
    end = int(over[0]) if over.size else len(losses)
    skip = min(skip, max(0, end - 3))
    if end - skip < 3:
        raise ConfigError(f"the LR range test blew up after {end} iterations: lower --lr-min "
                          f"(now {lrs[0]:g})")
    beta = range_beta(len(losses))
    both_ways = smoothed_loss(smoothed_loss(losses[:end], beta)[::-1], beta)[::-1]
    bottom = max(skip + 3, skip + int(np.argmin(both_ways[skip:end])) + 1)  # descent happens before the minimum
    slope = np.gradient(both_ways[skip:bottom], np.log(lrs[skip:bottom]))
    return float(lrs[skip + int(np.argmin(slope))]), end


def lr_range_test(config, lr_min=1e-6, lr_max=10.0, iterations=200):
    """One run whose lr grows exponentially per iteration; returns {lrs, losses, smoothed, suggested_lr, end}."""
    from threadpoolctl import threadpool_limits

    from .run import build_model, build_optimizer, load_splits
    from .training import Trainer

    if not (0 < lr_min < lr_max):
        raise ConfigError(f"lr range {lr_min:g}..{lr_max:g} is not allowed: use 0 < --lr-min < --lr-max")
    if not (isinstance(iterations, int) and iterations >= 10):
        raise ConfigError(f"range_iterations={iterations!r} is not allowed: use a whole number >= 10")
    train, val, _ = load_splits(config)
    task = "classification" if train.is_classification else "regression"
    n_outputs = train.n_classes if task == "classification" else train.t.shape[1]
    model = build_model(config, train.x.shape[1:], n_outputs, task)
    schedule = ExponentialRamp(lr_min, lr_max, iterations)
    trainer = Trainer(model, train, build_optimizer(config.replace(lr=lr_min)), batch_size=config.batch_size,
                      iterations=iterations, validation=None, sampling=config.sampling, seed=config.seed,
                      eval_every=iterations, schedule=schedule, clip_norm=config.clip_norm, progress=False,
                      train_metrics=config.train_metrics)
    with threadpool_limits(limits=config.threads):
        history = trainer.run()
    losses = np.asarray(history.iteration_loss, dtype=float)
    lrs = np.array([schedule.lr_at(i, 0, iterations) for i in range(losses.size)])
    suggested, end = suggest_lr(lrs, losses)
    return {"lrs": lrs, "losses": losses, "smoothed": smoothed_loss(losses, range_beta(losses.size)),
            "suggested_lr": suggested,
            "end": end, "status": history.status}


def write_range_test(out, result):
    """range_test.csv (iteration, lr, loss, smoothed_loss) and range_test.png in ``out``."""
    from . import plots
    from .checkpoint import write_text_atomic

    lines = ["iteration,lr,loss,smoothed_loss"]
    lines += [f"{i},{lr:.6g},{loss:.6g},{s:.6g}" for i, (lr, loss, s) in
              enumerate(zip(result["lrs"], result["losses"], result["smoothed"]))]
    write_text_atomic(os.path.join(out, "range_test.csv"), "\n".join(lines) + "\n")
    write_json_atomic(os.path.join(out, "range_test.json"),
                      {"suggested_lr": result["suggested_lr"], "blowup_iteration": result["end"],
                       "iterations": int(result["losses"].size), "status": result["status"]})
    plots.lr_range_test(result["lrs"], result["losses"], result["smoothed"], result["suggested_lr"],
                        result["end"]) \
        .savefig(os.path.join(out, "range_test.png"), dpi=110)



# -- the command ---------------------------------------------------------------------------------------

def sweep_command(settings, out, base_values=None, trials=8, grid=False, sweep_seed=0, workers=None, scheduler=None,
                  resume=False, overwrite=False, halving=None, min_epochs=1, slow_threshold=0.5, range_test=False,
                  lr_min=1e-6, lr_max=10.0, range_iterations=200, then_train=False, final_epochs=None, quiet=False):
    """``sgdlab sweep``: the range test or the sweep, its table and picture, then optionally the winner; exit code."""
    stream = None if quiet else sys.stdout
    fixed, space = build_space(settings, trials=trials, grid=grid, seed=sweep_seed)
    given = {**(base_values or {}), **fixed}
    base = TrainConfig.from_dict({**TRIAL_DEFAULTS, **given})
    check_whole_number("workers", workers, optional=True)
    check_whole_number("final_epochs", final_epochs, optional=True)
    final_epochs = final_epochs or max(base.epochs, TrainConfig.epochs)
    if range_test:
        if space.dimensions:
            raise ConfigError(f"--range-test runs one lr ramp: give single values, not the range or list of "
                              f"{space.dimensions[0].name}")
        os.makedirs(out, exist_ok=True)
        result = lr_range_test(base, lr_min=lr_min, lr_max=lr_max, iterations=range_iterations)
        write_range_test(out, result)
        print(f"LR range test: {result['losses'].size} iterations, lr {lr_min:g} -> {lr_max:g}, loss blew up "
              f"at iteration {result['end']}; suggested lr {result['suggested_lr']:.3g} "
              f"(steepest descent of the smoothed loss)\nfiles: {out}/range_test.png, range_test.csv", file=sys.stdout)
        winner = {"lr": float(f"{result['suggested_lr']:.3g}")}
    else:
        winner = _run_sweep(base, space, out, workers, scheduler, resume, overwrite, halving, min_epochs,
                            slow_threshold, stream)
        if winner is None:
            return 1
    if then_train:
        from .run import print_summary, train_run

        config = TrainConfig.from_dict(given).replace(**{**winner, "epochs": final_epochs})  # train's defaults
        folder = os.path.join(out, "winner")
        print(f"training the winner ({', '.join(f'{k}={v}' for k, v in winner.items())}) for {final_epochs} epochs",
              file=sys.stdout, flush=True)
        summary = train_run(config, folder, overwrite=True, quiet=quiet)
        print_summary(summary, folder)
    return 0


def _run_sweep(base, space, out, workers, scheduler, resume, overwrite, halving, min_epochs, slow_threshold,
               stream):
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
                      halving=halving, min_epochs=min_epochs, resume=resume, overwrite=overwrite, stream=stream)
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
    from . import plots

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
