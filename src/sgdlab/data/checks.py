"""Sizes and ranges that come from data, checked before they are used to allocate or compute.

An output unit per class (k from the labels), and values that fit the model's dtype.
"""

import math

import numpy as np

from sgdlab.errors import DataError

MAX_CLASSES = 100_000                # an output unit per class: more is a labelling mistake, not a task
_CHUNK_ELEMENTS = 1 << 22            # values scanned per step (32 MB of float64)


def check_fits_dtype(a, dtype, what, scale=None):
    """Refuse values whose magnitude (times ``scale``) overflows ``dtype`` (1e300 becomes inf in float32);
    scans in chunks.  Integer arrays and arrays already of a dtype no wider than ``dtype`` pass at once."""
    limit = float(np.finfo(dtype).max)
    if a.dtype.kind not in "f" or float(np.finfo(a.dtype).max) <= limit and not scale:
        return
    factor = abs(scale) if scale else 1.0
    step = max(1, _CHUNK_ELEMENTS // max(1, math.prod(a.shape[1:])))
    for start in range(0, len(a), step):
        chunk = np.abs(a[start:start + step])
        peak = float(chunk.max()) if chunk.size else 0.0
        if peak * factor > limit:
            row = start + int(np.argmax(chunk.reshape(len(chunk), -1).max(axis=1)))
            raise DataError(f"{what} has value {peak * factor:.3g} at sample {row}, beyond {np.dtype(dtype).name}'s "
                            f"largest {limit:.3g}: rescale the data or use dtype float64")


def check_class_count(k, source):
    """``k`` classes (an output layer of k units) if 1 <= k <= MAX_CLASSES; else DataError naming it."""
    if not 1 <= k <= MAX_CLASSES:
        raise DataError(f"{source} ask for {k} classes, more than the {MAX_CLASSES} allowed: a label column with "
                        f"that many values is not a classification target")
    return int(k)
