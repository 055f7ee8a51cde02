"""Saving and loading models safely: safetensors weights + JSON metadata, written atomically.

Nothing here can execute code from a file: tensors are raw little-endian
numbers, metadata is JSON text.  A file is written to a temporary name in the
same folder and renamed over the target, so a crash leaves either the old file
or the new one, never half of one.
"""

import json
import os
import tempfile
from contextlib import contextmanager

import numpy as np

from .errors import CheckpointError

MODEL_FORMAT = "sgdlab.model/1"


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure delete it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def model_tensors(model):
    """Named C-contiguous tensors: layers.K.W / layers.K.b, then state such as layers.K.running_mean.

    C-contiguous because safetensors scrambles non-contiguous arrays.
    """
    tensors = {}
    for k, sl in model.param_slices:
        layer = model.layers[k]
        for name in ("W", "b", "gamma", "beta"):
            if hasattr(layer, name):
                tensors[f"layers.{k}.{name}"] = np.ascontiguousarray(getattr(layer, name))
    for name, value in model.state_buffers().items():
        tensors[name] = np.ascontiguousarray(value)
    return tensors


def save_model(path, model, metadata=None):
    """Write ``model`` to ``path`` (.safetensors): tensors per layer + architecture in the metadata."""
    from safetensors.numpy import save_file

    meta = {"format": MODEL_FORMAT, "architecture": json.dumps(model.describe())}
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value, default=_json_default)
    if not np.all(np.isfinite(model.params)):
        raise CheckpointError("refusing to save a model whose parameters contain NaN or inf")
    with atomic_path(path) as tmp:
        save_file(model_tensors(model), tmp, metadata=meta)


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file; any defect -> CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.numpy import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"model file {path!r} does not exist")
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path!r} is not a readable safetensors file ({exc}); it may be truncated "
                              f"or not a model") from None
    return tensors, metadata


def load_model(path):
    """Rebuild a model saved by ``save_model``, checking format, architecture and values."""
    from .model import Sequential

    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{os.fspath(path)!r} is not an sgdlab model (format {metadata.get('format')!r}, "
                              f"expected {MODEL_FORMAT!r})")
    try:
        description = json.loads(metadata["architecture"])
        model = Sequential.from_description(description)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r} has a broken architecture description: {exc}") from None
    expected = model_tensors(model)
    if set(expected) != set(tensors):
        raise CheckpointError(f"{os.fspath(path)!r} holds tensors {sorted(tensors)} but its architecture needs "
                              f"{sorted(expected)}")
    for name, target in expected.items():
        value = tensors[name]
        if value.shape != target.shape:
            raise CheckpointError(f"tensor {name} has shape {value.shape}, the architecture needs {target.shape}")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"tensor {name} in {os.fspath(path)!r} contains NaN or inf")
    for k, _ in model.param_slices:
        layer = model.layers[k]
        for name in ("W", "b", "gamma", "beta"):
            if hasattr(layer, name):
                getattr(layer, name)[...] = tensors[f"layers.{k}.{name}"]
    model.load_state_buffers(tensors)
    model.metadata = metadata
    return model
