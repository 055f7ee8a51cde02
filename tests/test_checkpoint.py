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
    save_model(path, model, metadata={"note": "hello", "epochs": 3})
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
    save_model(path, MLP([4, 3, 2]))
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
        save_model(tmp_path / "m.safetensors", model)
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
    save_model(tmp_path / "m.safetensors", MLP([3, 2]), metadata={"k": "v"})
    tensors, meta = read_safetensors(tmp_path / "m.safetensors")
    assert set(tensors) == {"layers.0.W", "layers.0.b"} and meta["k"] == "v"
