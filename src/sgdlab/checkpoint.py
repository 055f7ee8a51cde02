"""Saving and loading models and training checkpoints safely: safetensors weights + JSON metadata,
written atomically.

Nothing here can execute code from a file: tensors are raw little-endian
numbers, metadata is JSON text.  A file is written to a temporary name in the
same folder and renamed over the target, so a crash leaves either the old file
or the new one, never half of one.
"""

import hashlib
import json
import math
import os
import struct
import tempfile
from contextlib import contextmanager

import numpy as np

from .errors import CheckpointError, ConfigError
from .safetensors_io import DTYPES, check_safetensors_header, load_json_text, safetensors_bytes

MODEL_FORMAT = "sgdlab.model/1"
CHECKPOINT_FORMAT = "sgdlab.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.safetensors"
MAX_SAMPLE_VALUES = 10 ** 7         # values in one input sample of a saved model (a 3 x 1000 x 1000 image is 3e6)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure delete it.

    An OSError while writing (disk full, file-size limit) is re-raised naming ``path`` itself.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.fchmod(fd, 0o666 & ~_umask())          # mkstemp makes 0600; a file is written as open() would make it
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            raise OSError(exc.errno, f"{exc.strerror or exc}; nothing was replaced", path) from None
        raise


def _umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder):
    """Delete temporary files that a killed writer left in ``folder`` (``.NAME.XXXX.tmp``)."""
    for name in os.listdir(folder):
        if name.startswith(".") and name.endswith(".tmp"):
            os.unlink(os.path.join(folder, name))


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


def save_model(model, path, metadata=None):
    """Write ``model`` to ``path`` (.safetensors): tensors per layer + architecture in the metadata.

    The argument order is Keras's and PyTorch's (``torch.save(obj, f)``); the old ``(path, model)`` order
    is refused with a message that says the new one.
    """
    if not hasattr(model, "describe") and hasattr(path, "describe"):
        raise ConfigError("save_model takes (model, path): call save_model(model, path), model first")
    meta = {"format": MODEL_FORMAT, "architecture": json.dumps(model.describe())}
    if getattr(model, "classes", None) is not None:
        meta["classes"] = json.dumps(model.classes.tolist())       # also in the architecture: here for readers
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value, default=_json_default)
    if not np.all(np.isfinite(model.params)):
        raise CheckpointError("refusing to save a model whose parameters contain NaN or inf")
    _write_safetensors(path, model_tensors(model), meta)


def _write_safetensors(path, tensors, metadata):
    """Atomic, byte-reproducible safetensors write; a failure (disk full, file-size limit) -> the old file kept."""
    data = safetensors_bytes(tensors, metadata)
    try:
        with atomic_path(path) as tmp:
            write_bytes(tmp, data)
    except OSError as exc:
        raise CheckpointError(f"could not write {os.fspath(path)!r} ({exc.strerror or exc}); the disk may be full, "
                              f"nothing was replaced") from None


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file, its header checked before any tensor is read; any defect ->
    CheckpointError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"model file {path!r} does not exist")
    header = check_safetensors_header(path)
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    try:
        with open(path, "rb") as f:
            base = 8 + struct.unpack("<Q", f.read(8))[0]
            for name, info in header.items():
                start, stop = info["data_offsets"]
                f.seek(base + start)
                dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
                raw = np.frombuffer(f.read(stop - start), dtype=dtype)
                tensors[name] = raw.astype(dtype.newbyteorder("=")).reshape(info["shape"])
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path!r} is not a readable safetensors file ({exc}); it may be truncated "
                              f"or not a model") from None
    return tensors, metadata


def check_description(description, tensors, where):
    """Refuse an architecture description whose sizes the file's tensors cannot back, before any model is built.

    Every whole number in a layer (sizes, channels; not seeds) is at most the number of stored
    parameters, so a 1 KB file cannot ask for a 10^12-unit layer.
    """
    if not (isinstance(description, dict) and isinstance(description.get("layers"), list)
            and all(isinstance(d, dict) for d in description["layers"])):
        raise CheckpointError(f"{where} has an architecture that is not {{'layers': [...], 'loss': ...}}")
    total = sum(int(t.size) for t in tensors.values())
    for k, layer in enumerate(description["layers"]):
        for key, value in layer.items():
            if isinstance(value, bool) or key == "seed" or value is None:
                continue
            if isinstance(value, list) and len(value) <= 4 and all(isinstance(v, int) for v in value):
                value = max(value, default=0) if min(value, default=0) >= 0 else -1   # a kernel size, a stride
            if isinstance(value, (dict, list)):
                raise CheckpointError(f"{where}: layer {k} has a nested {key!r}: a layer's settings are numbers, "
                                      f"names and short lists of whole numbers")
            if isinstance(value, float) and not math.isfinite(value):
                raise CheckpointError(f"{where}: layer {k} has {key}={value}: settings must be finite")
            if isinstance(value, int) and not 0 <= value <= max(total, 1):
                raise CheckpointError(f"{where}: layer {k} has {key}={value}, but the file holds only {total} "
                                      f"parameters: the architecture does not match its tensors")
    shape = description.get("input_shape", [])
    if not (isinstance(shape, list) and len(shape) <= 4 and all(isinstance(d, int) and not isinstance(d, bool)
                                                                and d >= 1 for d in shape)
            and math.prod(shape) <= MAX_SAMPLE_VALUES):
        raise CheckpointError(f"{where} has input_shape={str(shape)[:60]}: expected up to 4 whole numbers >= 1, at "
                              f"most {MAX_SAMPLE_VALUES} values a sample")
    for key in ("loss", "dtype", "task"):
        if key in description and not isinstance(description[key], (str, type(None))):
            raise CheckpointError(f"{where} has {key}={description[key]!r}: expected a name")


def load_model(path):
    """Rebuild a model saved by ``save_model``, checking format, architecture and values."""
    from .model import Sequential

    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{os.fspath(path)!r} is not an sgdlab model (format {metadata.get('format')!r}, "
                              f"expected {MODEL_FORMAT!r})")
    where = repr(os.fspath(path))
    if "architecture" not in metadata:
        raise CheckpointError(f"{where} has no architecture description")
    description = load_json_text(metadata["architecture"], f"{where}'s architecture")
    check_description(description, tensors, where)
    try:
        model = Sequential.from_description(description)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
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


# --------------------------------------------------------------------------- training checkpoints


def _split_arrays(obj, name, tensors):
    """``obj`` with every NumPy array moved into ``tensors`` under its path, leaving {"__tensor__": path}."""
    if isinstance(obj, np.ndarray):
        tensors[name] = np.ascontiguousarray(obj)
        return {"__tensor__": name}
    if isinstance(obj, dict):
        return {str(k): _split_arrays(v, f"{name}.{k}" if name else str(k), tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_arrays(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _join_arrays(obj, tensors):
    """Inverse of ``_split_arrays``: put the tensors back where the placeholders are."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            if obj["__tensor__"] not in tensors:
                raise CheckpointError(f"checkpoint state refers to tensor {obj['__tensor__']!r}, which is missing")
            return tensors[obj["__tensor__"]]
        return {k: _join_arrays(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_arrays(v, tensors) for v in obj]
    return obj


def content_digest(tensors, metadata):
    """SHA-256 over every tensor (name, dtype, shape, bytes) and every metadata entry but ``sha256``."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    for key in sorted(k for k in metadata if k != "sha256"):
        h.update(f"{key}={metadata[key]}|".encode())
    return h.hexdigest()


def save_checkpoint(path, state, metadata=None):
    """Write a training state (``Trainer.state_dict()``) to ``path``: arrays as tensors, the rest as JSON.

    Written to a temporary file and renamed, so the previous checkpoint stays until this one is complete.
    """
    from . import __version__

    tensors = {}
    skeleton = _split_arrays(state, "", tensors)
    meta = {"format": CHECKPOINT_FORMAT, "sgdlab_version": __version__,
            "state": json.dumps(skeleton, default=_json_default)}
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value, default=_json_default)
    meta["sha256"] = content_digest(tensors, meta)
    _write_safetensors(path, tensors, meta)


def load_checkpoint(path):
    """(state, metadata) of a checkpoint; refuses a truncated, tampered or incompatible file with one line."""
    tensors, metadata = read_safetensors(path)
    where = repr(os.fspath(path))
    fmt = metadata.get("format")
    if fmt != CHECKPOINT_FORMAT:
        if isinstance(fmt, str) and fmt.startswith("sgdlab.checkpoint/"):
            raise CheckpointError(f"{where} has checkpoint format {fmt!r} (written by sgdlab "
                                  f"{metadata.get('sgdlab_version', '?')}); this sgdlab reads {CHECKPOINT_FORMAT!r}")
        raise CheckpointError(f"{where} is not an sgdlab checkpoint (format {fmt!r}, expected {CHECKPOINT_FORMAT!r})")
    if metadata.get("sha256") != content_digest(tensors, metadata):
        raise CheckpointError(f"{where} fails its SHA-256 check: it was modified or corrupted after it was written")
    try:
        state = _join_arrays(load_json_text(metadata["state"], f"{where}'s state", limit=32, constants=True),
                             tensors)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{where} has a broken state description: {exc}") from None
    return state, metadata
