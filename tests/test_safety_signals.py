"""#22 "Signals in sweeps": SIGTERM/SIGINT stop the workers, keep what finished, exit 143/130, leave no orphans."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest


def children(pid):
    """PIDs of the live descendants of ``pid`` (from /proc)."""
    found, frontier = set(), {pid}
    while frontier:
        parent = frontier.pop()
        try:
            kids = open(f"/proc/{parent}/task/{parent}/children").read().split()
        except OSError:
            continue
        for k in map(int, kids):
            if k not in found:
                found.add(k)
                frontier.add(k)
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_sweep_workers_and_keeps_finished_trials(tmp_path, signum, code):
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab", "sweep", "--dataset", "spirals", "--layers", "8",
                             "--set", "epochs=1,4000", "--workers", "1", "--out", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (out / "sweep.csv").exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)                                  # the long trial is training now
    workers = children(proc.pid)
    assert workers, "the sweep has no worker process"
    proc.send_signal(signum)
    try:
        returned = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert returned == code, err
    time.sleep(0.5)
    assert not [w for w in workers if alive(w)], "orphaned worker processes"
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert len(rows) == 1 and rows[0]["epochs"] == "1"
    assert "Traceback" not in err and "--resume" in err
