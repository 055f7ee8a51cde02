"""#22 "Data lost": a folder belongs to one run; --overwrite never deletes what sgdlab did not write; one writer.

Each test plants sentinel files and checks they survive, byte for byte.
"""

import json
import os
import subprocess
import sys

import pytest

from sgdlab.errors import RunExistsError
from sgdlab.runfolder import LOCK_NAME, FolderLockedError, check_output_file, claim_folder, foreign_entries

QUICK = ("--dataset", "spirals", "--layers", "8", "--epochs", "1", "--quiet")


def sgdlab(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def assert_refused(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def plant(folder):
    """Sentinels a user might keep: a dataset, notes, a sub-folder."""
    folder.mkdir(exist_ok=True)
    (folder / "data.npz").write_bytes(b"precious data")
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "keep.txt").write_text("keep")
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def unchanged(sentinels):
    return all(p.is_file() and p.read_bytes() == data for p, data in sentinels.items())


def test_train_overwrite_refuses_the_current_folder_and_its_parent(tmp_path):
    work = tmp_path / "project"
    sentinels = {**plant(tmp_path), **plant(work)}
    for out in (".", "..", str(work), str(tmp_path)):
        result = sgdlab("train", *QUICK, "--out", out, "--overwrite", cwd=work)
        assert_refused(result, "current folder or one of its parents")
    assert unchanged(sentinels)


def test_train_overwrite_refuses_a_folder_with_other_files(tmp_path):
    out = tmp_path / "mine"
    sentinels = plant(out)
    result = sgdlab("train", *QUICK, "--out", out, "--overwrite")
    assert_refused(result, "not an sgdlab run folder", "notes.txt")
    assert unchanged(sentinels) and sorted(os.listdir(out)) == ["data.npz", "notes.txt", "sub"]


def test_train_overwrite_refuses_a_run_folder_holding_a_foreign_file(tmp_path):
    out = tmp_path / "run"
    assert sgdlab("train", *QUICK, "--out", out).returncode == 0
    (out / "notes.txt").write_text("my notes about this run")
    result = sgdlab("train", *QUICK, "--out", out, "--overwrite")
    assert_refused(result, "notes.txt")
    assert (out / "notes.txt").read_text() == "my notes about this run" and (out / "model.safetensors").exists()


def test_train_overwrite_replaces_its_own_run(tmp_path):
    out = tmp_path / "run"
    assert sgdlab("train", *QUICK, "--out", out, "--seed", "1").returncode == 0
    result = sgdlab("train", *QUICK, "--out", out, "--seed", "2", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["seed"] == 2 and not (out / LOCK_NAME).exists()


def test_two_trains_into_one_folder_exactly_one_wins(tmp_path):
    out = tmp_path / "run"
    args = ("--dataset", "spirals", "--layers", "8", "--epochs", "600", "--quiet", "--out", out)
    procs = [subprocess.Popen([sys.executable, "-m", "sgdlab", "train", *map(str, args), "--seed", str(seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    winner = [seed for seed, (code, _) in zip((1, 2), results) if code == 0][0]
    loser_err = [err for code, err in results if code == 2][0].strip()
    assert len(loser_err.splitlines()) == 1 and "in use by sgdlab train (PID" in loser_err, loser_err
    assert json.loads((out / "config.json").read_text())["seed"] == winner
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")] and not (out / LOCK_NAME).exists()


def test_a_lock_taken_but_not_yet_written_still_names_its_owner(tmp_path):
    """The owner writes its PID just after it takes the lock; a second writer that looks in between waits
    for the text instead of naming 'another sgdlab process' (a race the two-trains test hit 1 time in 5)."""
    import fcntl
    import threading
    import time

    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)                     # taken, still empty
    owner = json.dumps({"pid": 4242, "command": "sgdlab sweep", "started": "2026-11-30T00:00:00Z"}).encode()
    writer = threading.Timer(0.2, os.pwrite, (fd, owner, 0))
    writer.start()
    try:
        started = time.monotonic()
        with pytest.raises(FolderLockedError, match=r"in use by sgdlab sweep \(PID 4242, since"):
            with claim_folder(out, "run", command="sgdlab train"):
                pass
        assert time.monotonic() - started < 1.0
    finally:
        writer.join()
        os.close(fd)


def test_lock_is_held_for_the_block_and_released_on_error(tmp_path):
    out = tmp_path / "run"
    with claim_folder(out, "run", command="sgdlab train"):
        assert (out / LOCK_NAME).exists()
        with pytest.raises(FolderLockedError, match=rf"in use by sgdlab train \(PID {os.getpid()}"):
            with claim_folder(out, "run"):
                pass
        (out / "config.json").write_text(json.dumps({"dataset": "x", "layers": [], "optimizer": "sgd", "lr": 1}))
    with pytest.raises(RuntimeError):
        with claim_folder(out, "run", overwrite=True):
            raise RuntimeError("crash")
    assert not (out / LOCK_NAME).exists()
    with claim_folder(out, "run", overwrite=True):
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "command": "sgdlab train", "started": "earlier"}))
    result = sgdlab("train", *QUICK, "--out", out)
    assert result.returncode == 0, result.stderr


def test_a_killed_owner_leaves_a_stale_lock(tmp_path):
    out = tmp_path / "run"
    code = (f"from sgdlab.runfolder import claim_folder\nimport os, time\n"
            f"with claim_folder({str(out)!r}, 'run', command='sgdlab train'):\n"
            f"    print('locked', flush=True); time.sleep(60)\n")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "locked"
    with pytest.raises(FolderLockedError, match=f"PID {owner.pid}"):
        with claim_folder(out, "run"):
            pass
    owner.kill()
    owner.wait()
    with claim_folder(out, "run"):              # SIGKILL: the kernel dropped the flock
        pass


def test_kinds_do_not_replace_each_other(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "meta.json").write_text("{}")
    (store / "x.npy").write_bytes(b"x")
    assert foreign_entries(store, "store") == [] and foreign_entries(store, "run") == ["meta.json", "x.npy"]
    with pytest.raises(RunExistsError, match="not an sgdlab run folder"):
        with claim_folder(store, "run", overwrite=True):
            pass
    assert sorted(os.listdir(store)) == ["meta.json", "x.npy"]


def test_empty_out_is_refused_not_taken_as_default(tmp_path):
    for flags in (("--dataset", "spirals", "--out", ""), ("--resume", ""), ("--config", "")):
        result = sgdlab("train", *flags, cwd=tmp_path)
        assert_refused(result, "empty")
    assert os.listdir(tmp_path) == []


def test_sweep_overwrite_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    out = tmp_path / "notsweep"
    sentinels = plant(out)
    result = sgdlab("sweep", "--dataset", "spirals", "--epochs", "1", "--lr", "0.1,0.2", "--out", out, "--overwrite",
                    "--workers", "1", "--quiet")
    assert_refused(result, "not an sgdlab sweep folder")
    assert unchanged(sentinels)
    result = sgdlab("sweep", "--dataset", "spirals", "--epochs", "1", "--out", ".", "--overwrite", cwd=out)
    assert_refused(result, "current folder")
    assert unchanged(sentinels)


def test_range_test_then_train_does_not_replace_an_existing_sweep(tmp_path):
    out = tmp_path / "sweep"
    winner = out / "winner"
    winner.mkdir(parents=True)
    (out / "sweep.json").write_text("{}")
    (out / "sweep.csv").write_text("rank,trial\n")
    (winner / "config.json").write_text(json.dumps({"dataset": "x", "layers": [], "optimizer": "sgd", "lr": 1}))
    (winner / "model.safetensors").write_bytes(b"the winner's weights")
    result = sgdlab("sweep", "--dataset", "spirals", "--range-test", "--range-iterations", "20", "--then-train",
                    "--final-epochs", "1", "--out", out, "--quiet")
    assert_refused(result, "already exists", "--overwrite")
    assert (winner / "model.safetensors").read_bytes() == b"the winner's weights"


def test_predict_out_refuses_its_own_model_and_input(tmp_path):
    run = tmp_path / "run"
    assert sgdlab("train", *QUICK, "--out", run).returncode == 0
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    model, inputs = run / "model.safetensors", tmp_path / "x.npy"
    before = {p: p.read_bytes() for p in (model, inputs)}
    for target in (model, inputs):
        result = sgdlab("predict", "--model", model, inputs, "--out", target)
        assert_refused(result, "input file")
    assert all(p.read_bytes() == data for p, data in before.items())


def test_predict_out_does_not_replace_an_existing_file_without_overwrite(tmp_path):
    run = tmp_path / "run"
    assert sgdlab("train", *QUICK, "--out", run).returncode == 0
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    result = sgdlab("predict", "--model", run / "model.safetensors", tmp_path / "x.npy", "--out", notes)
    assert_refused(result, "notes.txt", "--overwrite")
    assert notes.read_text() == "my notes"
    result = sgdlab("predict", "--model", run / "model.safetensors", tmp_path / "x.npy", "--out", notes,
                    "--overwrite")
    assert result.returncode == 0 and len(notes.read_text().split()) == 3


def test_demo_does_not_overwrite_existing_pictures(tmp_path):
    picture = tmp_path / "numerical_error.png"
    picture.write_bytes(b"my picture")
    result = sgdlab("demo", "numerical-error", "--quick", "--out", tmp_path)
    assert_refused(result, "numerical_error.png", "--overwrite")
    assert picture.read_bytes() == b"my picture"
    result = sgdlab("demo", "numerical-error", "--quick", "--out", tmp_path, "--overwrite")
    assert result.returncode == 0 and picture.read_bytes()[:4] == b"\x89PNG"


def test_data_convert_refuses_the_current_folder(tmp_path):
    import numpy as np

    np.savez(tmp_path / "src.npz", x=np.zeros((4, 2), np.float32), t=np.array([0, 1, 0, 1]))
    sentinels = plant(tmp_path / "here")
    result = sgdlab("data", "convert", tmp_path / "src.npz", ".", "--overwrite", "--quiet", cwd=tmp_path / "here")
    assert_refused(result, "current folder")
    assert unchanged(sentinels)


def test_check_output_file_refuses_folders_and_inputs(tmp_path):
    (tmp_path / "in.csv").write_text("1,2\n")
    with pytest.raises(RunExistsError, match="is the input file"):
        check_output_file(tmp_path / "." / "in.csv", protected=[tmp_path / "in.csv"])
    with pytest.raises(RunExistsError, match="is a folder"):
        check_output_file(tmp_path)


def test_every_demo_lists_the_pictures_it_writes():
    from sgdlab.demos import DEMO_PICTURES, DEMOS

    assert set(DEMO_PICTURES) == set(DEMOS)
