"""Step 1: draw a mini-batch.

``BatchSampler`` yields the row indices of each mini-batch: ``shuffle`` walks a
new permutation every epoch (every sample once per epoch), ``replacement``
draws ``batch_size`` indices i.i.d. every iteration (the tutorial's
``np.random.choice``), ``block-shuffle`` permutes contiguous blocks of
``batch_size`` rows and shuffles within buffers of ``BLOCK_BUFFER`` blocks
(every sample once per epoch, reads clustered in a few regions: for data whose
random access is slow).  ``BatchLoader`` gathers those rows into preallocated
buffers, so the loop allocates nothing per iteration; ``PrefetchLoader`` gathers
the next batch on a background thread into a second buffer while the current
one trains, and asks the kernel to read the batch (or block window) after that
from a file-backed dataset ahead of time (``Dataset.advise``).  Indices within a
batch are sorted before the gather: the gradient is a sum over the batch, so
order does not matter to it, and sorted reads are far faster from a memory map.
"""

import math
import queue
import threading

import numpy as np

from .errors import ConfigError
from .validation import check_whole_number

SAMPLING = ("shuffle", "replacement", "block-shuffle")
BLOCK_BUFFER = 16  # block-shuffle: blocks whose rows are shuffled together


def resolve_sampling(mode, dataset, prefetch=False):
    """(sampling, prefetch) to train with.  ``"auto"``: the exact shuffle for data in memory; block-shuffle
    with prefetch for an on-disk store, whose rows may lie anywhere on disk (one random read per row is 10x
    slower there).  Other modes are kept as given."""
    if mode != "auto":
        return mode, prefetch
    if getattr(dataset, "is_mapped", False):
        return "block-shuffle", True
    return "shuffle", prefetch


class BatchSampler:
    """Indices of successive mini-batches over ``n`` samples, from its own seeded PCG64 generator."""

    def __init__(self, n, batch_size, mode="shuffle", seed=0):
        if mode not in SAMPLING:
            raise ConfigError(f"sampling={mode!r} is unknown: use {' or '.join(SAMPLING)}")
        check_whole_number("batch_size", batch_size)
        if batch_size > n:
            raise ConfigError(f"batch_size={batch_size} is larger than the {n} training samples: use at most {n}")
        self.n, self.batch_size, self.mode = int(n), int(batch_size), mode
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.iterations_per_epoch = math.ceil(self.n / self.batch_size)
        self.order = np.arange(self.n)
        self.position = self.n  # start of the next batch in ``order``; n means "shuffle first"
        self._indices = np.empty(self.batch_size, dtype=np.intp)
        self._rewind = None  # state before a batch drawn ahead (PrefetchLoader) and not yet handed out
        self.generation = 0  # bumped by load_state_dict: batches drawn ahead before it are stale
        self.reshuffles = 0  # epoch orders made so far (tells a block window's rows apart between epochs)

    def next(self):
        """Sorted indices of the next batch (a reused buffer; the last batch of an epoch may be smaller)."""
        if self.mode == "replacement":
            out = self._indices
            out[...] = self.rng.integers(0, self.n, size=self.batch_size)
        else:
            if self.position >= self.n:
                self._new_epoch_order()
                self.position = 0
            stop = min(self.position + self.batch_size, self.n)
            out = self._indices[: stop - self.position]
            np.copyto(out, self.order[self.position : stop])
            self.position = stop
        out.sort()
        return out

    def upcoming(self, count, skip=0):
        """Sorted indices of the ``count`` rows after the next ``skip`` in this epoch's order, without drawing
        them (empty past the epoch's end, and for ``replacement``, whose draws are not known ahead)."""
        if self.mode == "replacement" or self.position >= self.n:
            return self.order[:0]
        start = self.position + skip
        return np.sort(self.order[start : start + count])

    def _new_epoch_order(self):
        self.reshuffles += 1
        if self.mode != "block-shuffle":
            self.rng.shuffle(self.order)
            return
        b = self.batch_size
        starts = self.rng.permutation(self.iterations_per_epoch) * b
        lengths = np.minimum(b, self.n - starts)
        np.add(np.repeat(starts - np.cumsum(lengths) + lengths, lengths), np.arange(self.n), out=self.order)
        span = b * BLOCK_BUFFER
        for start in range(0, self.n, span):
            self.rng.shuffle(self.order[start : start + span])

    def draw_ahead(self):
        """``next()`` for a batch handed out later: ``state_dict`` keeps describing the state before it."""
        reshuffles = self.mode != "replacement" and self.position >= self.n
        self._rewind = (self.position, self.rng.bit_generator.state, self.order.copy() if reshuffles else None)
        return self.next()

    def rewind(self):
        """Undo a batch drawn ahead and never handed out: the sampler is back where ``state_dict`` says."""
        if self._rewind is not None:
            self.position, self.rng.bit_generator.state, order = self._rewind
            if order is not None:
                self.order[...] = order
            self._rewind = None

    def hand_out(self):
        """The batch drawn ahead is now the trainer's: ``state_dict`` moves past it."""
        self._rewind = None

    def state_dict(self):
        """Everything needed to continue the exact same sequence of batches (handed-out batches only)."""
        if self._rewind is not None:
            position, rng, order = self._rewind
            return {"mode": self.mode, "position": position, "order": self.order.copy() if order is None
                    else order.copy(), "rng": rng}
        return {"mode": self.mode, "position": self.position, "order": self.order.copy(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        if state["mode"] != self.mode or len(state["order"]) != self.n:
            raise ConfigError("the saved sampler does not match this dataset or sampling mode")
        self.position = int(state["position"])
        self.order[...] = state["order"]
        self.rng.bit_generator.state = state["rng"]
        self._rewind = None
        self.generation += 1


class BatchLoader:
    """Gathers each batch's rows from a Dataset into preallocated (x, t) buffers of ``dtype``."""

    def __init__(self, dataset, sampler, dtype=np.float32):
        self.dataset, self.sampler = dataset, sampler
        rows = sampler.batch_size
        self._x = np.empty((rows, dataset.n_features), dtype=dtype)
        self._t = np.empty((rows, *dataset.t.shape[1:]), dtype=dataset.t.dtype)
        self._window = _BlockWindow.fits(dataset, sampler, dtype)
        self.indices = None  # the last batch's row indices

    def next(self):
        """(x, t) of the next mini-batch, views of reused buffers."""
        indices = self.indices = self.sampler.next()
        k = len(indices)
        if self._window is None:
            return self.dataset.gather_into(indices, self._x[:k], self._t[:k])
        self._window.note(indices)
        return self._window.gather(indices, self._x[:k], self._t[:k])

    def close(self):
        """Nothing to release (PrefetchLoader stops its thread here)."""


class PrefetchLoader:
    """BatchLoader whose background thread gathers batch i+1 into a second buffer while batch i trains.

    Indices are drawn on the caller's thread (``draw_ahead``), so the sampler's ``state_dict``
    stays exact for checkpoints; only the gather runs in the background.  ``close()`` stops the thread.
    """

    def __init__(self, dataset, sampler, dtype=np.float32):
        self.dataset, self.sampler = dataset, sampler
        rows = sampler.batch_size
        self._x = [np.empty((rows, dataset.n_features), dtype=dtype) for _ in range(2)]
        self._t = [np.empty((rows, *dataset.t.shape[1:]), dtype=dataset.t.dtype) for _ in range(2)]
        self._indices = [np.empty(rows, dtype=np.intp) for _ in range(2)]
        self._todo, self._done = queue.SimpleQueue(), queue.SimpleQueue()
        self._thread = None
        self._pending = None  # (slot, k, sampler generation) of the batch being gathered
        self._window = _BlockWindow.fits(dataset, sampler, dtype)
        self._mapped = getattr(dataset, "is_mapped", False)
        self._slot = 0
        self.indices = None  # the last batch's row indices

    def next(self):
        """(x, t) of the next mini-batch: views of the buffer the thread filled; the other is being refilled."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sgdlab-prefetch", daemon=True)
            self._thread.start()
        if self._pending is not None and self._pending[2] != self.sampler.generation:
            self._wait()                                   # drawn before load_state_dict: discard it
            self._pending = None
        if self._pending is None:
            self._submit()
        slot, k, _ = self._pending
        self.indices = self._indices[slot][:k]
        self._wait()
        self.sampler.hand_out()
        self._submit()
        return self._x[slot][:k], self._t[slot][:k]

    def _submit(self):
        slot = self._slot
        self._slot = 1 - slot
        indices = self.sampler.draw_ahead()
        if self._window is not None:
            self._window.note(indices)                     # the thread is idle: safe to change the window
        elif self._mapped:  # the batch after this one: the kernel reads it from disk while these two train
            self.dataset.advise(self.sampler.upcoming(self.sampler.batch_size))
        k = len(indices)
        np.copyto(self._indices[slot][:k], indices)
        self._pending = (slot, k, self.sampler.generation)
        self._todo.put((slot, k))

    def _wait(self):
        error = self._done.get()
        if error is not None:
            raise error

    def _work(self):
        while (job := self._todo.get()) is not None:
            slot, k = job
            try:
                if self._window is None:
                    self.dataset.gather_into(self._indices[slot][:k], self._x[slot][:k], self._t[slot][:k])
                else:
                    self._window.gather(self._indices[slot][:k], self._x[slot][:k], self._t[slot][:k])
                self._done.put(None)
            except BaseException as e:  # handed to the training thread, raised there
                self._done.put(e)

    def close(self):
        """Finish the gather in flight and stop the thread."""
        if self._thread is not None:
            if self._pending is not None:
                self._done.get()
                self._pending = None
                self.sampler.rewind()
            self._todo.put(None)
            self._thread.join()
            self._thread = None


class _BlockWindow:
    """block-shuffle from a file: the rows of the current buffer of blocks, read once (a few long reads)
    and then gathered from memory by every batch drawn from that buffer."""

    @classmethod
    def fits(cls, dataset, sampler, dtype):
        """A window when sampling block-shuffle from a mapped dataset, else None."""
        if sampler.mode == "block-shuffle" and getattr(dataset, "is_mapped", False):
            return cls(dataset, sampler, dtype)
        return None

    def __init__(self, dataset, sampler, dtype):
        self.dataset, self.sampler = dataset, sampler
        span = min(sampler.batch_size * BLOCK_BUFFER, sampler.n)
        self.rows = np.empty(span, dtype=np.intp)          # the window's row numbers, sorted
        self.x = np.empty((span, dataset.n_features), dtype=dtype)
        self.t = np.empty((span, *dataset.t.shape[1:]), dtype=dataset.t.dtype)
        self.m, self.key, self.stale = 0, None, False

    def note(self, indices):
        """On the drawing thread, right after ``indices`` were drawn: move the window if they left it."""
        s, span = self.sampler, len(self.rows)
        start = (s.position - len(indices)) // span * span
        key = (s.reshuffles, s.generation, start)
        if key != self.key:
            self.key, self.m, self.stale = key, min(start + span, s.n) - start, True
            np.copyto(self.rows[: self.m], s.order[start : start + self.m])
            self.rows[: self.m].sort()
            # the window after this one: the kernel reads it from disk while this one's batches train
            self.dataset.advise(s.upcoming(span, skip=start + self.m - s.position))

    def gather(self, indices, out_x, out_t):
        """(out_x, out_t) <- the rows ``indices`` (all inside the window), reading the window first if new."""
        m = self.m
        if self.stale:
            self.dataset.gather_into(self.rows[:m], self.x[:m], self.t[:m])
            self.stale = False
        where = np.searchsorted(self.rows[:m], indices)
        np.take(self.x[:m], where, axis=0, out=out_x)
        np.take(self.t[:m], where, axis=0, out=out_t)
        return out_x, out_t
