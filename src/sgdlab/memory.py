"""Will it fit?  The memory a model and its training need, checked before anything is allocated.

bytes = itemsize * (n_params * (params + grads + last good copy + best copy + optimizer state + scratch)
                    + batch_size * sum(layer widths) * 3     (each layer's output, its gradient, a cached input)
                    + eval_chunk * 2 * widest layer)         (evaluation's forward pass in chunks)
An estimate from below: what NumPy allocates besides is small next to it.
"""

import os

from .errors import ConfigError

EVAL_CHUNK = 10_000  # rows per forward pass when evaluating a whole set (model.py uses it)


def machine_memory():
    """Physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def human(nbytes):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes} B"
        nbytes /= 1024


def check_fits(what, nbytes, available=None):
    """ConfigError (one line: the size needed and the machine's memory) when ``nbytes`` exceed physical memory."""
    available = machine_memory() if available is None else available
    if available is not None and nbytes > available:
        raise ConfigError(f"{what} needs {human(nbytes)} but this machine has {human(available)} of memory: "
                          f"use smaller layers or batches")


def n_params_of(sizes):
    """Entries of the flat parameter vector of Dense layers ``sizes[0] -> sizes[1] -> ...`` (W and b)."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def training_bytes(n_params, widths, batch_size, itemsize, optimizer_buffers=1, eval_chunk=EVAL_CHUNK):
    """Bytes to train: parameter-sized arrays, activation buffers of a batch, an evaluation chunk's pass."""
    vectors = 2 + 2 + optimizer_buffers + 1  # params, grads; last good and best copies; optimizer state; scratch
    activations = batch_size * sum(widths) * 3
    evaluation = min(eval_chunk, max(batch_size, eval_chunk)) * 2 * max(widths)
    return itemsize * (n_params * vectors + activations + evaluation)


def check_training_fits(sizes, batch_size, itemsize, optimizer_buffers=1):
    """Refuse a network of Dense ``sizes`` whose training cannot fit in this machine's memory."""
    n_params = n_params_of(sizes)
    check_fits(f"training a {'-'.join(map(str, sizes))} network ({n_params:,} parameters, batch {batch_size})",
               training_bytes(n_params, sizes, batch_size, itemsize, optimizer_buffers))
