import json
import os
import pickle

import numpy as np
import pytest

from sgdlab import MLP
from sgdlab.checkpoint import atomic_path, load_model, read_safetensors, save_model
from sgdlab.errors import CheckpointError


def test_model_round_trip_is_exact(tmp_path):
    model = MLP([6, 5, 4, 3], activation="tanh", weight_decay=0.01, seed=2)
    path = tmp_path / "model.safetensors"
    save_model(model, path, metadata={"note": "hello", "epochs": 3})
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.params, model.params)
    assert loaded.describe() == model.describe()
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert loaded.metadata["note"] == "hello" and json.loads(loaded.metadata["epochs"]) == 3


def test_transposed_arrays_survive_safetensors(tmp_path):
    """safetensors issue #825: non-contiguous arrays come back scrambled unless made contiguous."""
    from safetensors.numpy import load_file, save_file

    a = np.arange(12, dtype=np.float32).reshape(3, 4).T
    save_file({"a": np.ascontiguousarray(a)}, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(load_file(tmp_path / "t.safetensors")["a"], a)


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(MLP([4, 3, 2]), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(path)


def test_malicious_pickle_disguised_as_a_model_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_foreign_or_mismatched_files_are_refused(tmp_path):
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not an sgdlab model"):
        load_model(tmp_path / "other.safetensors")
    model = MLP([4, 3, 2])
    tensors, meta = {"layers.0.W": np.zeros((4, 3), np.float32)}, {"format": "sgdlab.model/1",
                                                                      "architecture": json.dumps(model.describe())}
    save_file(tensors, tmp_path / "partial.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match="holds tensors"):
        load_model(tmp_path / "partial.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")


def test_nan_parameters_are_never_saved(tmp_path):
    model = MLP([3, 2])
    model.params[0] = np.nan
    with pytest.raises(CheckpointError, match="NaN"):
        save_model(model, tmp_path / "m.safetensors")
    assert not any(tmp_path.iterdir())


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_read_safetensors_exposes_metadata(tmp_path):
    save_model(MLP([3, 2]), tmp_path / "m.safetensors", metadata={"k": "v"})
    tensors, meta = read_safetensors(tmp_path / "m.safetensors")
    assert set(tensors) == {"layers.0.W", "layers.0.b"} and meta["k"] == "v"


# --------------------------------------------------------------------------- training checkpoints

from sgdlab.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint  # noqa: E402
from sgdlab.data import make_spirals, train_val_split  # noqa: E402
from sgdlab.optimizers import Momentum, make_schedule  # noqa: E402
from sgdlab.training import EarlyStopping, Trainer  # noqa: E402


def _trainer(checkpoint=None, layers=(16,), dropout=0.0, sampling="shuffle", lr=0.1, batch_norm=False, **kw):
    train, val = train_val_split(make_spirals(240, seed=1), 0.25, seed=1)
    model = MLP([2, *layers, 3], seed=4, dropout=dropout, batch_norm=batch_norm)
    return Trainer(model, train, Momentum(lr=lr, momentum=0.9), batch_size=32, iterations=120, validation=val,
                   callbacks=[EarlyStopping(patience=3, start_from_epoch=0)], sampling=sampling, seed=9,
                   eval_every=7, schedule=make_schedule("plateau", lr, patience=1, factor=0.5), checkpoint=checkpoint,
                   checkpoint_every=5, **kw)


@pytest.mark.parametrize("sampling,dropout,lr,prefetch,batch_norm,train_metrics", [
    ("shuffle", 0.0, 1.0, False, False, "full"), ("replacement", 0.2, 0.1, False, False, "full"),
    ("block-shuffle", 0.0, 0.5, False, False, "full"), ("shuffle", 0.0, 1.0, True, False, "full"),
    ("shuffle", 0.0, 0.3, False, True, "full"), ("shuffle", 0.2, 0.3, False, False, "running")])
def test_resumed_trainer_is_bit_identical(tmp_path, sampling, dropout, lr, prefetch, batch_norm, train_metrics):
    """Save at iteration 35 mid-epoch, rebuild everything, load, finish: same params, history and losses.

    lr=1.0 early-stops at iteration 112 and restores its best params; dropout draws masks from its own RNG;
    running train metrics are saved at iteration 40 instead, 5 batches after the evaluation at 35, so the
    checkpoint carries their sums.
    """
    saved = tmp_path / "mid-run.safetensors"
    save_at = 40 if train_metrics == "running" else 35

    def hook(t):
        if t.iteration == save_at:
            save_checkpoint(saved, t.state_dict(), metadata={"note": "mid-run"})

    settings = dict(dropout=dropout, sampling=sampling, lr=lr, prefetch=prefetch, batch_norm=batch_norm,
                    train_metrics=train_metrics)
    whole = _trainer(hook, **settings)
    whole.run()
    assert whole.iteration > save_at and saved.exists()
    resumed = _trainer(**settings)
    state, meta = load_checkpoint(saved)
    assert meta["format"] == CHECKPOINT_FORMAT and meta["note"] == "mid-run"
    assert state["iteration"] == save_at and isinstance(state["optimizer"]["v"], np.ndarray)
    if train_metrics == "running":
        assert state["running"][2] == 4 * 32 + 20  # iterations 36-40: 180 samples, an epoch ends with 20
    resumed.load_state_dict(state)
    resumed.run()
    assert np.array_equal(resumed.model.params, whole.model.params)
    for name, value in whole.model.state_buffers().items():                  # BatchNorm running averages
        assert np.array_equal(resumed.model.state_buffers()[name], value), name
    assert resumed.iteration == whole.iteration and resumed.optimizer.lr == whole.optimizer.lr
    assert resumed.history.iteration_loss == whole.history.iteration_loss
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole.history.rows]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history.rows] == strip
    assert resumed.history.stopped_reason == whole.history.stopped_reason


def test_final_checkpoint_is_written_before_restore_best(tmp_path):
    """The last checkpoint holds the trained params, not the restored best ones, and the finished status."""
    path = tmp_path / "c.safetensors"
    trainer = _trainer(lambda t: save_checkpoint(path, t.state_dict()), lr=1.0)
    trainer.run()
    state, _ = load_checkpoint(path)
    assert state["stop"][0] == "early_stopped" and state["iteration"] == trainer.iteration == 112
    best = trainer.callbacks[0].best_params
    assert np.array_equal(trainer.model.params, best)
    assert np.array_equal(state["callbacks"]["EarlyStopping.0"]["best_params"], best)
    assert not np.array_equal(state["params"], best)  # best was earlier than the last iteration


def _saved_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    trainer = _trainer()
    save_checkpoint(path, trainer.state_dict(), metadata={"config": {"seed": 1}})
    return path


def test_tampered_checkpoint_fails_its_sha256(tmp_path):
    path = _saved_checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its SHA-256 check"):
        load_checkpoint(path)


def test_edited_metadata_fails_its_sha256(tmp_path):
    from safetensors.numpy import save_file

    path = _saved_checkpoint(tmp_path)
    tensors, meta = read_safetensors(path)
    meta["state"] = meta["state"].replace('"iteration": 0', '"iteration": 99')
    save_file(tensors, path, metadata=meta)
    with pytest.raises(CheckpointError, match="fails its SHA-256 check"):
        load_checkpoint(path)


def test_other_format_versions_and_models_are_refused(tmp_path):
    from safetensors.numpy import save_file

    path = _saved_checkpoint(tmp_path)
    tensors, meta = read_safetensors(path)
    save_file(tensors, tmp_path / "v2.safetensors", metadata={**meta, "format": "sgdlab.checkpoint/2"})
    with pytest.raises(CheckpointError, match="checkpoint format 'sgdlab.checkpoint/2'.*reads 'sgdlab.checkpoint/1'"):
        load_checkpoint(tmp_path / "v2.safetensors")
    save_model(MLP([2, 3]), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="not an sgdlab checkpoint"):
        load_checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="not an sgdlab model"):
        load_model(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path)


def test_checkpoint_for_another_architecture_is_refused_and_changes_nothing(tmp_path):
    state, _ = load_checkpoint(_saved_checkpoint(tmp_path))
    other = _trainer(layers=(8,))
    before = other.model.params.copy()
    with pytest.raises(CheckpointError, match="holds 99 parameters but this model has 51"):
        other.load_state_dict(state)
    assert np.array_equal(other.model.params, before) and other.iteration == 0


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import sgdlab.checkpoint

    path = _saved_checkpoint(tmp_path)
    before = path.read_bytes()

    def full_disk(filename, data):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device", filename)

    monkeypatch.setattr(sgdlab.checkpoint, "write_bytes", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*nothing was replaced") as info:
        save_checkpoint(path, _trainer().state_dict())
    assert repr(str(path)) in str(info.value)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["c.safetensors"]


def test_checkpoint_for_another_optimizer_is_refused_before_anything_changes(tmp_path):
    from sgdlab.errors import ConfigError
    from sgdlab.optimizers import SGD

    state, _ = load_checkpoint(_saved_checkpoint(tmp_path))
    state["params"] = state["params"] + 1.0
    other = _trainer()
    other.optimizer = SGD(lr=0.1)
    before = other.model.params.copy()
    with pytest.raises(ConfigError, match="state is for optimizer 'momentum', not 'sgd'"):
        other.load_state_dict(state)
    assert np.array_equal(other.model.params, before)
