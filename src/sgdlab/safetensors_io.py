"""safetensors files, written byte for byte the same for the same content and read with every size checked.

The format: 8 bytes little-endian N, N bytes of JSON header ({name: {dtype, shape, data_offsets},
"__metadata__": {str: str}}), then the tensors' raw bytes.  We write it ourselves (tensors sorted
by name, metadata keys sorted) because the safetensors library serialises its metadata from a hash
map whose order changes from process to process, so two identical runs gave different files.
Reading checks the header (size, JSON, dtypes, shapes, offsets against the file's size) before
any tensor is read; the library then reads the tensors.
"""

import json
import math
import os
import struct

import numpy as np

from .errors import CheckpointError

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
          "BOOL": np.bool_}
CODES = {np.dtype(v): k for k, v in DTYPES.items()}
MAX_HEADER_BYTES = 100 << 20                        # the library's own limit
MAX_JSON_DEPTH = 64


def safetensors_bytes(tensors, metadata):
    """The file's bytes: header with sorted names and metadata keys, 8-byte aligned, then the data."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(metadata[k]) for k in sorted(metadata)}
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        code = CODES.get(a.dtype.newbyteorder("="))
        if code is None:
            raise CheckpointError(f"tensor {name!r} has dtype {a.dtype}, which safetensors cannot hold")
        data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()   # C order, little-endian
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def check_safetensors_header(path):
    """The header dict of a safetensors file after checking sizes, types and offsets; CheckpointError if not."""
    where = repr(os.fspath(path))
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise _unreadable(where, f"{size} bytes, too short")
            n = struct.unpack("<Q", head)[0]
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise _unreadable(where, f"it claims a {n}-byte header in a {size}-byte file")
            text = f.read(n)
    except OSError as exc:
        raise CheckpointError(f"{where} cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(text.decode("utf-8"), parse_constant=_no_constant, parse_int=_bounded_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _unreadable(where, f"its header is not JSON: {str(exc)[:80]}") from None
    if not isinstance(header, dict):
        raise _unreadable(where, "its header is not a JSON object")
    data_size, spans = size - 8 - n, []
    for name, info in header.items():
        if name == "__metadata__":
            if not (isinstance(info, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in info.items())):
                raise CheckpointError(f"{where} has metadata that is not text -> text")
            continue
        ok = (isinstance(info, dict) and info.get("dtype") in DTYPES and isinstance(info.get("shape"), list)
              and all(_whole(d) for d in info["shape"]) and isinstance(info.get("data_offsets"), list)
              and len(info["data_offsets"]) == 2 and all(_whole(d) for d in info["data_offsets"]))
        if not ok:
            dtype = info.get("dtype") if isinstance(info, dict) else None
            allowed = ", ".join(DTYPES)
            raise CheckpointError(f"{where}: tensor {name!r} is described as {str(info)[:120]}"
                                  + (f" (dtype {dtype!r} is not one of {allowed})" if isinstance(dtype, str) else "")
                                  + ": not a tensor sgdlab can read")
        start, stop = info["data_offsets"]
        need = math.prod(info["shape"]) * np.dtype(DTYPES[info["dtype"]]).itemsize
        if not (0 <= start <= stop <= data_size and stop - start == need):
            raise _unreadable(where, f"tensor {name!r} of shape {info['shape']} {info['dtype']} needs {need} bytes "
                                     f"at {start}..{stop}, but the file holds {data_size} bytes of data")
        spans.append((start, stop))
    spans.sort()
    if any(a[1] != b[0] for a, b in zip(spans, spans[1:])) or (spans and (spans[0][0] != 0 or
                                                                           spans[-1][1] != data_size)):
        raise _unreadable(where, "the tensors' byte ranges do not cover its data exactly")
    return header


def _unreadable(where, detail):
    return CheckpointError(f"{where} is not a readable safetensors file ({detail}); it may be truncated or not a "
                           f"model")


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 62


def _no_constant(name):
    raise ValueError(f"{name} is not a number")


def _bounded_int(text):
    """An int of at most 40 digits (a PCG64 state is 39): a 4000-digit number takes seconds to convert."""
    if len(text) > 40:
        raise ValueError(f"a {len(text)}-digit number")
    return int(text)


def json_depth(obj, limit=MAX_JSON_DEPTH):
    """Nesting depth of parsed JSON, stopping at ``limit`` + 1."""
    stack, deepest = [(obj, 1)], 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def load_json_text(text, where, limit=MAX_JSON_DEPTH, constants=False, error=CheckpointError):
    """Parse JSON text sgdlab wrote: no huge numbers, nesting at most ``limit``, NaN/Infinity only with
    ``constants`` (a diverged run's losses); any defect -> ``error`` naming ``where``."""
    try:
        value = json.loads(text, parse_int=_bounded_int, **({} if constants else {"parse_constant": _no_constant}))
    except (ValueError, TypeError, RecursionError) as exc:
        raise error(f"{where} is not valid JSON ({str(exc)[:80]})") from None
    if json_depth(value, limit) > limit:
        raise error(f"{where} is nested more than {limit} levels deep")
    return value
