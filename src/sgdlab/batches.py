"""Step 1: draw a mini-batch.

``BatchSampler`` yields the row indices of each mini-batch: ``shuffle`` walks a
new permutation every epoch (every sample once per epoch), ``replacement``
draws ``batch_size`` indices i.i.d. every iteration (the tutorial's
``np.random.choice``).  ``BatchLoader`` gathers those rows into preallocated
buffers, so the loop allocates nothing per iteration.  Indices within a batch
are sorted before the gather: the gradient is a sum over the batch, so order
does not matter to it, and sorted reads are far faster from a memory map.
"""

import math

import numpy as np

from .errors import ConfigError

SAMPLING = ("shuffle", "replacement")


class BatchSampler:
    """Indices of successive mini-batches over ``n`` samples, from its own seeded PCG64 generator."""

    def __init__(self, n, batch_size, mode="shuffle", seed=0):
        if mode not in SAMPLING:
            raise ConfigError(f"sampling={mode!r} is unknown: use {' or '.join(SAMPLING)}")
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise ConfigError(f"batch_size={batch_size!r} is not allowed: use a whole number >= 1")
        if batch_size > n:
            raise ConfigError(f"batch_size={batch_size} is larger than the {n} training samples: use at most {n}")
        self.n, self.batch_size, self.mode = int(n), int(batch_size), mode
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.iterations_per_epoch = math.ceil(self.n / self.batch_size)
        self.order = np.arange(self.n)
        self.position = self.n  # start of the next batch in ``order``; n means "shuffle first"
        self._indices = np.empty(self.batch_size, dtype=np.intp)

    def next(self):
        """Sorted indices of the next batch (a reused buffer; the last batch of an epoch may be smaller)."""
        if self.mode == "replacement":
            out = self._indices
            out[...] = self.rng.integers(0, self.n, size=self.batch_size)
        else:
            if self.position >= self.n:
                self.rng.shuffle(self.order)
                self.position = 0
            stop = min(self.position + self.batch_size, self.n)
            out = self._indices[: stop - self.position]
            np.copyto(out, self.order[self.position : stop])
            self.position = stop
        out.sort()
        return out

    def state_dict(self):
        """Everything needed to continue the exact same sequence of batches."""
        return {"mode": self.mode, "position": self.position, "order": self.order.copy(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        if state["mode"] != self.mode or len(state["order"]) != self.n:
            raise ConfigError("the saved sampler does not match this dataset or sampling mode")
        self.position = int(state["position"])
        self.order[...] = state["order"]
        self.rng.bit_generator.state = state["rng"]


class BatchLoader:
    """Gathers each batch's rows from a Dataset into preallocated (x, t) buffers of ``dtype``."""

    def __init__(self, dataset, sampler, dtype=np.float32):
        self.dataset, self.sampler = dataset, sampler
        rows = sampler.batch_size
        self._x = np.empty((rows, dataset.n_features), dtype=dtype)
        self._t = np.empty((rows, *dataset.t.shape[1:]), dtype=dataset.t.dtype)

    def next(self):
        """(x, t) of the next mini-batch, views of reused buffers."""
        indices = self.sampler.next()
        k = len(indices)
        return self.dataset.batch(indices, out_x=self._x[:k], out_t=self._t[:k])
