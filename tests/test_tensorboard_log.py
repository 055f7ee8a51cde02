"""TensorBoard callback: the event files hold metrics.csv's values step by step, and weight histograms."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

import sgdlab as sl  # noqa: E402
from sgdlab.config import TrainConfig  # noqa: E402
from sgdlab.run import train_run  # noqa: E402
from sgdlab.tensorboard_log import SCALAR_TAGS, TensorBoard  # noqa: E402


def read_events(log_dir):
    """EventAccumulator over ``log_dir``, keeping every event (no sampling)."""
    acc = event_accumulator.EventAccumulator(os.fspath(log_dir), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    acc.Reload()
    return acc


def read_metrics_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_scalars_equal_metrics_csv(acc, rows):
    """Every metrics.csv cell appears as the scalar of its tag at step = iteration, and nothing else."""
    for column, tag in SCALAR_TAGS.items():
        expected = [(int(r["iteration"]), np.float32(float(r[column]))) for r in rows if r[column] != ""]
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []
        assert got == expected, column
    assert set(acc.Tags()["scalars"]) <= set(SCALAR_TAGS.values())


def test_train_run_events_hold_exactly_the_metrics_csv_values(tmp_path):
    config = TrainConfig(dataset="spirals", layers=[16], epochs=3, eval_every=4, batch_norm=True,
                         schedule="cosine", lr=0.1, seed=0)
    tb = tmp_path / "tb" / "spirals"
    train_run(config, tmp_path / "run", quiet=True, pictures=False, callbacks=[TensorBoard(tb)])
    rows = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    assert len(rows) >= 5 and len({r["lr"] for r in rows}) > 1  # several evaluations, a changing lr
    acc = read_events(tb)
    assert_scalars_equal_metrics_csv(acc, rows)
    assert acc.Tags()["scalars"] and "accuracy/val" in acc.Tags()["scalars"]


def test_weight_histograms_at_each_epoch_end_with_the_model_tensors(tmp_path, spirals):
    train, val = spirals
    model = sl.MLP([2, 12, 3], batch_norm=True, seed=0)
    sl.fit(model, train, sl.optimizers.SGD(lr=0.1), batch_size=40, epochs=3, validation=val, eval_every=2,
           callbacks=[TensorBoard(tmp_path)], progress=False)
    per_epoch = -(-len(train) // 40)
    acc = read_events(tmp_path)
    names = {"layers.0.W", "layers.0.b", "layers.1.gamma", "layers.1.beta", "layers.1.running_mean",
             "layers.1.running_var", "layers.3.W", "layers.3.b"}
    assert set(acc.Tags()["histograms"]) == names
    for name in names:
        assert [e.step for e in acc.Histograms(name)] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    final = acc.Histograms("layers.0.W")[-1]
    assert final.step == 3 * per_epoch
    assert final.histogram_value.num == model.layers[0].W.size
    assert final.histogram_value.min == pytest.approx(float(model.layers[0].W.min()), rel=1e-6)
    assert final.histogram_value.max == pytest.approx(float(model.layers[0].W.max()), rel=1e-6)


def test_histograms_can_be_turned_off(tmp_path, spirals):
    train, _ = spirals
    model = sl.MLP([2, 5, 3], seed=0)
    history = sl.fit(model, train, sl.optimizers.SGD(lr=0.1), batch_size=60, epochs=2, eval_every=3,
                     callbacks=[TensorBoard(tmp_path, histograms=False)], progress=False)
    acc = read_events(tmp_path)
    assert acc.Tags()["histograms"] == [] and len(acc.Scalars("loss/train")) >= 3
    history.to_csv(tmp_path / "metrics.csv")
    assert_scalars_equal_metrics_csv(acc, read_metrics_csv(tmp_path / "metrics.csv"))


def test_run_folder_is_unchanged_when_tensorboard_is_not_asked_for(tmp_path):
    config = TrainConfig(dataset="xor", layers=[4], epochs=1, seed=0)
    train_run(config, tmp_path / "plain", quiet=True, pictures=False)
    train_run(config, tmp_path / "logged", quiet=True, pictures=False, callbacks=[TensorBoard(tmp_path / "tb")])
    assert sorted(os.listdir(tmp_path / "plain")) == sorted(os.listdir(tmp_path / "logged"))
    assert not any(name.startswith("events.") for name in os.listdir(tmp_path / "plain"))
    assert (tmp_path / "plain" / "metrics.csv").read_text().count("\n") == \
        (tmp_path / "logged" / "metrics.csv").read_text().count("\n")


def test_log_dir_must_be_a_path():
    with pytest.raises(ValueError, match="log_dir=None is not allowed"):
        TensorBoard(None)


class SnapshotThenStop(sl.training.Callback):
    """Keeps the trainer's state at ``snapshot_at``, then stops at ``stop_at``: a crash after a checkpoint."""

    def __init__(self, snapshot_at, stop_at):
        self.snapshot_at, self.stop_at, self.state = snapshot_at, stop_at, None

    def on_evaluation(self, trainer, row):
        if trainer.iteration == self.snapshot_at:
            self.state = trainer.state_dict()
        if trainer.iteration == self.stop_at:
            trainer.stop("interrupted", "simulated crash")


def test_a_resumed_run_replaces_the_events_logged_after_its_checkpoint(tmp_path, spirals):
    train, val = spirals

    def trainer(callbacks):
        return sl.training.Trainer(sl.MLP([2, 8, 3], seed=0), train, sl.optimizers.SGD(lr=0.1), batch_size=40,
                                   epochs=3, validation=val, eval_every=2, callbacks=callbacks, progress=False)

    crash = SnapshotThenStop(snapshot_at=4, stop_at=8)
    trainer([TensorBoard(tmp_path), crash]).run()
    second = trainer([TensorBoard(tmp_path)])
    second.load_state_dict(crash.state)
    second.optimizer.lr = 0.05  # the resumed part differs, so stale values from iterations 6 and 8 would show
    history = second.run()
    history.to_csv(tmp_path / "metrics.csv")
    assert_scalars_equal_metrics_csv(read_events(tmp_path), read_metrics_csv(tmp_path / "metrics.csv"))


def test_a_fresh_run_refuses_a_folder_with_events_unless_overwrite(tmp_path, spirals):
    train, _ = spirals

    def run(**kwargs):
        sl.fit(sl.MLP([2, 4, 3], seed=0), train, sl.optimizers.SGD(lr=0.1), batch_size=60, epochs=1,
               callbacks=[TensorBoard(tmp_path, **kwargs)], progress=False)

    run()
    first = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match="already holds event files.*overwrite"):
        run()
    assert sorted(os.listdir(tmp_path)) == first
    os.rename(tmp_path / first[0], tmp_path / "events.out.tfevents.1.earlier")  # a name the new file cannot take
    run(overwrite=True)
    assert len(os.listdir(tmp_path)) == 1 and not (tmp_path / "events.out.tfevents.1.earlier").exists()


def sgdlab(*args, cwd):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_train_tensorboard_writes_one_folder_per_run_holding_metrics_csv(tmp_path):
    flags = ["--dataset", "spirals", "--layers", "8", "--epochs", "3", "--eval-every", "3", "--quiet"]
    for name in ("a", "b"):
        done = sgdlab("train", *flags, "--lr", "0.1" if name == "a" else "0.3", "--out", f"runs/{name}",
                      "--tensorboard", "tb", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "tb")) == ["a", "b"]
    for name in ("a", "b"):
        assert_scalars_equal_metrics_csv(read_events(tmp_path / "tb" / name),
                                         read_metrics_csv(tmp_path / "runs" / name / "metrics.csv"))
    plain = sgdlab("train", *flags, "--lr", "0.1", "--out", "plain", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert sorted(os.listdir(tmp_path / "plain")) == sorted(os.listdir(tmp_path / "runs" / "a"))

    again = sgdlab("train", *flags, "--out", "runs2/a", "--tensorboard", "tb", cwd=tmp_path)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "already holds event files" in again.stderr and not (tmp_path / "runs2").exists()


def test_a_run_stopped_between_epochs_ends_with_a_histogram_of_its_last_weights(tmp_path, spirals):
    train, _ = spirals
    model = sl.MLP([2, 5, 3], seed=0)
    sl.fit(model, train, sl.optimizers.SGD(lr=0.1), batch_size=40, iterations=10, callbacks=[TensorBoard(tmp_path)],
           progress=False)
    per_epoch = -(-len(train) // 40)
    assert [e.step for e in read_events(tmp_path).Histograms("layers.0.W")] == [per_epoch, 10]


def test_cli_sweep_tensorboard_gives_each_trial_its_own_run(tmp_path):
    def sweep(out):
        return sgdlab("sweep", "--dataset", "blobs", "--layers", "8", "--epochs", "2", "--lr", "0.05,0.3",
                      "--workers", "1", "--out", out, "--tensorboard", "tb", "--quiet", cwd=tmp_path)

    done = sweep("first")
    assert done.returncode == 0, done.stderr
    trials = sorted(os.listdir(tmp_path / "first" / "trials"))
    assert len(trials) == 2 and sorted(os.listdir(tmp_path / "tb" / "first")) == trials
    for trial in trials:
        assert_scalars_equal_metrics_csv(read_events(tmp_path / "tb" / "first" / trial),
                                         read_metrics_csv(tmp_path / "first" / "trials" / trial / "metrics.csv"))
    stale = sweep("elsewhere/first")  # a new sweep folder, but its TensorBoard folder tb/first is taken
    assert stale.returncode == 2 and len(stale.stderr.strip().splitlines()) == 1, stale.stderr
    assert "tensorboard folder" in stale.stderr.lower() and not (tmp_path / "elsewhere").exists()


def test_cli_train_tensorboard_without_tensorboardx_fails_before_writing(tmp_path):
    code = ("import sys\nsys.modules['tensorboardX'] = None  # as if not installed\n"
            "from sgdlab.cli import main\nsys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "train", "--dataset", "xor", "--epochs", "1", "--out", "run",
                           "--tensorboard", "tb"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "pip install 'sgdlab[tensorboard]'" in done.stderr and os.listdir(tmp_path) == []
