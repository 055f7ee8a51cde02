import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from sgdlab.config import TrainConfig
from sgdlab.errors import ConfigError
from sgdlab.sweep import (Dimension, SearchSpace, Sweep, build_space, local_executor_factory, parse_values,
                          read_table, smoothed_loss, suggest_lr, threads_per_worker, trial_id, trial_result)

SMALL = ["--dataset", "spirals", "--layers", "16", "--optimizer", "sgd", "--batch-size", "20", "--threads", "1"]


def sgdlab(*args, timeout=120, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgdlab", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def table_without_seconds(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_table(path)]


# -- search spaces ---------------------------------------------------------------------------------

def test_parse_values_lists_ranges_and_single_values():
    assert parse_values("lr", "0.1") == 0.1
    assert parse_values("batch_size", "32,100,256") == Dimension("batch_size", values=(32, 100, 256))
    assert parse_values("lr", "1e-4:1:log") == Dimension("lr", low=1e-4, high=1.0, log=True)
    assert parse_values("momentum", "0.5:0.99") == Dimension("momentum", low=0.5, high=0.99, log=False)
    assert parse_values("layers", "100/256,128") == Dimension("layers", values=("100", "256,128"))
    assert parse_values("layers", "256,128") == "256,128"
    assert parse_values("restore_best", "true,false") == Dimension("restore_best", values=(True, False))


@pytest.mark.parametrize("name, text, words", [
    ("lr", "1:0.1:log", ["lr='1:0.1:log'", "LOW must be below HIGH"]),
    ("lr", "0:1:log", ["log range needs LOW > 0"]),
    ("lr", "1e-3:1:ln", ["LOW:HIGH:log"]),
    ("batch_size", "32,abc", ["batch_size='abc'", "whole number"]),
    ("learning_rate", "0.1", ["unknown setting 'learning_rate'", "lr"]),
])
def test_parse_values_errors_name_the_value(name, text, words):
    with pytest.raises(ConfigError) as err:
        parse_values(name, text)
    assert "\n" not in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_grid_includes_both_ends_evenly_log_spaced_and_crosses_lists():
    fixed, space = build_space({"lr": "1e-3:10:log", "batch_size": "32,64", "epochs": "2"}, trials=5, grid=True)
    assert fixed == {"epochs": 2}
    points = space.points()
    lrs = sorted({p["lr"] for p in points})
    assert lrs == [0.001, 0.01, 0.1, 1.0, 10.0]
    assert len(points) == 10 and {p["batch_size"] for p in points} == {32, 64}
    linear = Dimension("momentum", low=0.0, high=0.9).grid(4)
    assert linear == (0.0, 0.3, 0.6, 0.9)
    assert Dimension("batch_size", low=10, high=1000, log=True).grid(3) == (10, 100, 1000)


def test_random_draws_are_seeded_log_uniform_and_typed():
    space = SearchSpace([Dimension("lr", low=1e-4, high=1.0, log=True),
                         Dimension("batch_size", values=(32, 100, 256))], trials=400, seed=7)
    points = space.points()
    assert points == SearchSpace(space.dimensions, trials=400, seed=7).points()
    assert points != SearchSpace(space.dimensions, trials=400, seed=8).points()
    logs = np.log10([p["lr"] for p in points])
    assert logs.min() >= -4 and logs.max() <= 0
    # log-uniform: each decade holds about a quarter of the draws (uniform would put 90% in the last one)
    counts = np.histogram(logs, bins=4, range=(-4, 0))[0]
    assert counts.min() > 0.15 * len(points) and counts.max() < 0.35 * len(points)
    assert {p["batch_size"] for p in points} == {32, 100, 256}
    assert all(isinstance(p["batch_size"], int) for p in points)


def test_lists_only_make_the_cartesian_product_without_grid():
    _, space = build_space({"batch_size": "32,100", "optimizer": "sgd,momentum,adam"}, trials=2)
    assert len(space.points()) == 6


def test_trial_id_depends_on_settings_not_threads():
    a = TrainConfig(dataset="spirals", lr=0.1)
    assert trial_id(a) == trial_id(a.replace(threads=4)) == trial_id(TrainConfig(dataset="spirals", lr=0.1))
    assert trial_id(a) != trial_id(a.replace(lr=0.2))
    assert len(trial_id(a)) == 10


def test_threads_per_worker_fill_the_cores():
    assert threads_per_worker(1, cores=2) == 2
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(16, cores=2) == 1


# -- statuses and the range test's suggestion ------------------------------------------------------

def _result(losses, val_losses, val_accs, status="completed"):
    lines = ["epoch,iteration,train_loss,train_acc,val_loss,val_acc,lr,seconds"]
    lines += [f"{i + 1},{10 * (i + 1)},1,0.5,{vl},{va},0.1,1" for i, (vl, va) in enumerate(zip(val_losses, val_accs))]
    return {"summary": {"status": status, "stopped_reason": "why", "seconds": 1.5, "test_accuracy": 0.5},
            "files": {"metrics.csv": ("\n".join(lines) + "\n").encode(),
                      "iteration_loss.json": json.dumps(losses).encode()}}


def test_trial_status_ok_too_slow_diverged():
    spec = {"id": "abc", "rung": 0, "point": {"lr": 0.1}, "config": {"epochs": 2}}
    ok = trial_result(spec, _result([2.0, 1.0], [1.2, 0.9], [0.6, 0.8]), slow_threshold=0.5)
    assert (ok["status"], ok["best_val_acc"], ok["best_epoch"], ok["best_val_loss"]) == ("ok", 0.8, "2", 0.9)
    slow = trial_result(spec, _result([2.0, 1.9], [1.5, 1.1], [0.3, 0.4]), slow_threshold=0.5)
    assert slow["status"] == "too slow" and "1.1 > 0.5 x initial loss 2" in slow["reason"]
    assert trial_result(spec, _result([2.0, 1.9], [1.5, 1.1], [0.3, 0.4]), slow_threshold=0.4)["status"] == "ok"
    spiked = trial_result(spec, _result([2.0, 25.0, 1.0], [0.9], [0.7]), slow_threshold=0.5)
    assert spiked["status"] == "diverged" and "25 > 10 x initial 2" in spiked["reason"]
    stopped = trial_result(spec, _result([2.0], [], [], status="diverged"), slow_threshold=0.5)
    assert stopped["status"] == "diverged" and stopped["best_val_acc"] is None


def test_smoothed_loss_is_bias_corrected_ema():
    assert np.allclose(smoothed_loss([3.0, 3.0, 3.0]), 3.0)
    s = smoothed_loss([1.0, 2.0], beta=0.5)
    assert math.isclose(s[1], (0.5 * 0.5 * 1.0 + 0.5 * 2.0) / (1 - 0.25))


def test_suggest_lr_finds_the_steepest_descent_before_the_blowup():
    lrs = np.geomspace(1e-5, 10, 300)
    x = np.log10(lrs)
    # falls fastest at lr = 1e-2 (logistic in log lr), blows up above lr = 1
    losses = 2.0 - 1.5 / (1 + np.exp(-(x + 2) * 4)) + np.where(x > 0, 50 * x ** 2, 0)
    suggested, end = suggest_lr(lrs, losses)
    assert 10 ** -2.4 < suggested < 10 ** -1.6
    assert lrs[end] > 1.0 and lrs[end] < 10


# -- sweeps through the command --------------------------------------------------------------------

def test_sweep_cli_ranks_marks_and_writes_everything(tmp_path):
    out = tmp_path / "sw"
    r = sgdlab("sweep", *SMALL, "--lr", "1e-4:30:log", "--grid", "--trials", "4", "--epochs", "3",
               "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = read_table(out / "sweep.csv")
    by_lr = {row["lr"]: row for row in rows}
    assert sorted(by_lr) == [0.0001, 0.006694, 0.4481, 30.0]
    assert by_lr[30.0]["status"] == "diverged" and by_lr[0.0001]["status"] == "too slow"
    assert by_lr[0.4481]["status"] == "ok" and rows[0]["lr"] == 0.4481 and by_lr[0.4481]["best_val_acc"] > 0.5
    assert by_lr[0.0001]["best_val_acc"] < by_lr[0.4481]["best_val_acc"]
    assert [row["status"] for row in rows] == ["ok", "too slow", "too slow", "diverged"] or \
        [row["status"] for row in rows] == ["ok", "ok", "too slow", "diverged"]
    for row in rows:
        folder = out / "trials" / row["trial"]
        assert {"config.json", "metrics.csv", "summary.json", "model.safetensors"} <= set(os.listdir(folder))
        config = json.loads((folder / "config.json").read_text())
        assert config["lr"] == row["lr"] and config["train_metrics"] == "running"  # the sweep's default
        if row["status"] != "diverged":
            assert float(next(csv.DictReader(open(folder / "metrics.csv")))["train_acc"]) > 0
    assert (out / "sweep.png").stat().st_size > 10_000
    assert "winner: lr=0.4481" in r.stdout and "diverged" in r.stdout and "too slow" in r.stdout
    again = sgdlab("sweep", *SMALL, "--lr", "0.1,0.2", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and "--resume" in again.stderr


def test_sweep_cli_refuses_bad_ranges_in_one_line(tmp_path):
    r = sgdlab("sweep", *SMALL, "--lr", "1:0.1:log", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "LOW must be below HIGH" in r.stderr
    r = sgdlab("sweep", *SMALL, "--set", "nope=1,2", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--set 'nope=1,2'" in r.stderr


def test_halving_gives_more_epochs_to_the_best_half(tmp_path):
    out = tmp_path / "halving"
    r = sgdlab("sweep", *SMALL, "--lr", "0.01,0.1,0.3,1", "--epochs", "4", "--halving", "--workers", "2",
               "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    rows = read_table(out / "sweep.csv")
    per_rung = {rung: sorted(row["lr"] for row in rows if row["rung"] == rung) for rung in (0, 1, 2)}
    assert [len(per_rung[k]) for k in (0, 1, 2)] == [4, 2, 1]
    assert {row["epochs"] for row in rows if row["rung"] == 2} == {4}
    rung0 = sorted((row for row in rows if row["rung"] == 0), key=lambda row: -row["best_val_acc"])
    assert per_rung[1] == sorted(row["lr"] for row in rung0[:2])
    assert rows[0]["rung"] == 2 and "winner: lr=" in r.stdout


def test_range_test_suggests_an_lr_and_then_trains_it(tmp_path):
    out = tmp_path / "rt"
    r = sgdlab("sweep", *SMALL, "--range-test", "--range-iterations", "150", "--lr-min", "1e-4", "--lr-max", "100",
               "--then-train", "--final-epochs", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    info = json.loads((out / "range_test.json").read_text())
    assert 1e-3 < info["suggested_lr"] < 10
    assert info["blowup_iteration"] < 150  # lr=100 blows the loss up before the end
    rows = list(csv.DictReader(open(out / "range_test.csv")))
    assert float(rows[0]["lr"]) == pytest.approx(1e-4) and float(rows[-1]["lr"]) <= 100
    assert (out / "range_test.png").stat().st_size > 10_000
    winner = json.loads((out / "winner" / "config.json").read_text())
    assert info["suggested_lr"] < float(rows[info["blowup_iteration"]]["lr"]) / 10
    assert winner["lr"] == pytest.approx(info["suggested_lr"], rel=5e-3) and winner["epochs"] == 3  # 3 digits
    assert winner["train_metrics"] == "running"  # the winner trains with train's defaults (running too, since #17)
    again = sgdlab("sweep", *SMALL, "--lr", "0.1", "--train-metrics", "full", "--out", str(tmp_path / "one"))
    assert again.returncode == 0, again.stderr
    trial, = (tmp_path / "one" / "trials").iterdir()
    assert json.loads((trial / "config.json").read_text())["train_metrics"] == "full"  # a given value wins
    assert json.loads((out / "winner" / "summary.json").read_text())["epochs_run"] == 3


def test_killed_sweep_resumes_without_rerunning_and_equals_an_uninterrupted_one(tmp_path):
    args = [*SMALL, "--lr", "1e-3:3:log", "--grid", "--trials", "5", "--epochs", "100", "--workers", "2"]  # ~0.5 s a trial
    full = tmp_path / "full"
    assert sgdlab("sweep", *args, "--out", str(full), "--quiet").returncode == 0
    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab", "sweep", *args, "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "sweep.csv").exists() and len(read_table(out / "sweep.csv")) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-way
    proc.wait(timeout=10)
    finished = {row["trial"]: os.stat(out / "trials" / row["trial"] / "summary.json").st_mtime_ns
                for row in read_table(out / "sweep.csv")}
    assert 2 <= len(finished) < 5
    r = sgdlab("sweep", *args, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resuming: {len(finished)} of 5 trials already" in r.stdout
    assert r.stdout.count("] lr=") == 5 - len(finished)
    for trial, mtime in finished.items():
        assert os.stat(out / "trials" / trial / "summary.json").st_mtime_ns == mtime
    assert table_without_seconds(out / "sweep.csv") == table_without_seconds(full / "sweep.csv")
    other = sgdlab("sweep", *args, "--epochs", "5", "--out", str(out), "--resume")
    assert other.returncode == 2 and "holds a different sweep" in other.stderr


def _spawned_workers(pid):
    import psutil

    return [p for p in psutil.Process(pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline())]


def test_local_worker_killed_mid_trial_is_retried_and_the_sweep_completes(tmp_path):
    out = tmp_path / "kill"
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab", "sweep", *SMALL, "--lr", "0.05,0.1,0.2,0.4",
                             "--epochs", "600", "--workers", "2", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.monotonic() + 60, None
    while time.monotonic() < deadline and killed is None:
        workers = _spawned_workers(proc.pid)
        if len(workers) == 2 and (out / "sweep.json").exists():
            time.sleep(1.5)  # the workers have imported sgdlab and are training (a trial takes ~2.8 s here)
            try:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed = workers[0].pid
            except ProcessLookupError:  # that worker was just replaced: try the next one
                pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert killed is not None and "a worker died: starting a new pool" in stdout
    rows = read_table(out / "sweep.csv")
    assert sorted(row["lr"] for row in rows) == [0.05, 0.1, 0.2, 0.4]
    assert all(row["status"] in ("ok", "too slow") for row in rows)


def test_a_trial_whose_worker_dies_twice_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    base = TrainConfig(dataset="spirals", layers=(16,), optimizer="sgd", batch_size=20, epochs=3000, threads=1)
    _, space = build_space({"lr": "0.1"}, trials=1)
    stop = threading.Event()

    def killer():  # every worker process dies 1 s after it appears: both attempts are lost mid-trial
        seen = {}
        while not stop.is_set():
            for p in _spawned_workers(os.getpid()):
                if time.monotonic() - seen.setdefault(p.pid, time.monotonic()) > 1.0:
                    try:
                        os.kill(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        sweep = Sweep(base, space, tmp_path / "s", local_executor_factory(1), 1, threads=1)
        rows = sweep.run()
    finally:
        stop.set()
        thread.join()
    assert len(rows) == 1 and rows[0]["status"] == "failed" and sweep.restarts == 2
    assert rows[0]["reason"].startswith("failed twice, last: worker process died")
    assert read_table(tmp_path / "s" / "sweep.csv")[0]["status"] == "failed"


# -- Dask --------------------------------------------------------------------------------------------

@pytest.fixture
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        yield cluster, client
    finally:
        client.close()
        cluster.close()


def test_sweep_on_a_dask_cluster_through_its_scheduler_address(tmp_path, dask_cluster):
    cluster, _ = dask_cluster
    out = tmp_path / "dask"
    r = sgdlab("sweep", *SMALL, "--lr", "1e-4:30:log", "--grid", "--trials", "4", "--epochs", "3",
               "--scheduler", cluster.scheduler_address, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"Dask scheduler {cluster.scheduler_address} (2 workers)" in r.stdout
    rows = read_table(out / "sweep.csv")
    local = tmp_path / "local"
    assert sgdlab("sweep", *SMALL, "--lr", "1e-4:30:log", "--grid", "--trials", "4", "--epochs", "3",
                  "--workers", "2", "--out", str(local), "--quiet").returncode == 0
    assert table_without_seconds(out / "sweep.csv") == table_without_seconds(local / "sweep.csv")
    assert {row["status"] for row in rows} == {"ok", "too slow", "diverged"}


def test_dask_worker_killed_mid_trial_every_trial_accounted_for(tmp_path, dask_cluster):
    cluster, client = dask_cluster
    out = tmp_path / "dask-kill"
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab", "sweep", *SMALL, "--lr", "0.05,0.1,0.2,0.4",
                             "--epochs", "20", "--scheduler", cluster.scheduler_address, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.monotonic() + 60, None
    while time.monotonic() < deadline and killed is None and proc.poll() is None:
        busy = [w for w, tasks in client.processing().items() if tasks]
        if busy:
            time.sleep(1.0)  # mid-trial
            killed = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert killed is not None
    rows = read_table(out / "sweep.csv")
    assert sorted(row["lr"] for row in rows) == [0.05, 0.1, 0.2, 0.4]
    assert all(row["status"] in ("ok", "too slow", "failed") for row in rows)


def test_trial_best_epoch_is_the_runs_own_best():
    """The sweep's best epoch is the run's (summary.json's best_epoch, by its monitored metric), not a second
    rule: here the run's best is epoch 1 (lowest val loss) although epoch 2 has the higher val accuracy."""
    spec = {"id": "abc", "rung": 0, "point": {"lr": 0.1}, "config": {"epochs": 2}}
    result = _result([2.0, 1.0], [0.8, 0.9], [0.6, 0.7])
    row = trial_result(spec, result, slow_threshold=0.5)                 # no best_epoch: val_loss decides
    assert (row["best_epoch"], row["best_val_acc"], row["best_val_loss"]) == ("1", 0.6, 0.8)
    result["summary"]["best_epoch"] = 2                                  # e.g. EarlyStopping(monitor=val_acc)
    row = trial_result(spec, result, slow_threshold=0.5)
    assert (row["best_epoch"], row["best_val_acc"], row["best_val_loss"]) == ("2", 0.7, 0.9)
    spec["config"]["monitor"] = "val_acc"
    del result["summary"]["best_epoch"]
    assert trial_result(spec, result, slow_threshold=0.5)["best_epoch"] == "2"
