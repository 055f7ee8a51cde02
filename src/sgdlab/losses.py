"""Losses: a scalar from the network's output and the targets, and its gradient.

Targets ``t`` are integer class labels of shape (N,) or float arrays of the
output's shape (one-hot rows, or regression targets).  Both losses average
over the batch, so their gradients carry the 1/N.
"""

import numpy as np

from .errors import DataError
from .layers import Buffered


class Loss(Buffered):
    """Base: ``forward(y, t) -> scalar``, then ``backward() -> dL/dy`` (a reused buffer)."""

    name = "loss"

    def rows(self, n):
        """0..n-1, cached: the row index for picking each sample's label."""
        r = self._buffers.get("rows")
        if r is None or r.shape[0] < n:
            r = self._buffers["rows"] = np.arange(max(n, 1))
        return r[:n]

    def minus_targets(self, y, t, out):
        """out = y - t, integer labels t read as one-hot rows."""
        if t.ndim == 1:
            np.copyto(out, y)
            out[self.rows(out.shape[0]), t] -= 1
        else:
            np.subtract(y, t.reshape(y.shape), out=out)
        return out


class SoftmaxCrossEntropy(Loss):
    """L = mean_i( logsumexp(z_i) - z_i[t_i] ), computed by log-sum-exp (no epsilon in a log).

    Backward: dL/dz = (softmax(z) - onehot(t)) / N, its exact derivative.
    """

    name = "softmax_cross_entropy"

    def forward(self, z, t):
        n = z.shape[0]
        shifted = self.buffer("shifted", z.shape, z.dtype)
        peak = self.buffer("peak", (n, 1), z.real.dtype)
        np.maximum.reduce(z.real, axis=1, keepdims=True, out=peak)  # ufunc methods: no np.max wrapper per call
        np.subtract(z, peak, out=shifted)
        p = self.buffer("p", z.shape, z.dtype)
        np.exp(shifted, out=p)
        total = self.buffer("total", (n, 1), z.dtype)
        np.add.reduce(p, axis=1, keepdims=True, out=total)
        p /= total
        log_total = np.log(total, out=total)[:, 0]
        if t.ndim == 1:
            loss = (np.add.reduce(log_total) - np.add.reduce(shifted[self.rows(n), t])) / n
        else:
            loss = (log_total @ t.sum(axis=1) - np.sum(t * shifted)) / n
        self.p, self.t = p, t
        return loss

    def backward(self):
        p, t = self.p, self.t
        n = p.shape[0]
        dz = self.minus_targets(p, t, self.buffer("dz", p.shape, p.dtype))
        dz *= 1.0 / n
        return dz

    @staticmethod
    def probabilities(z):
        """softmax(z) row by row, allocated (for users, not the hot loop)."""
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class MeanSquaredError(Loss):
    """L = (1 / 2N) sum_i ||y_i - t_i||².  Backward: dL/dy = (y - t) / N.

    Integer labels are compared as one-hot rows (the textbook's classifier with MSE).
    """

    name = "mse"

    def forward(self, y, t):
        n = y.shape[0]
        d = self.d = self.minus_targets(y, t, self.buffer("d", y.shape, y.dtype))
        flat = d.ravel()
        return 0.5 * np.dot(flat, flat) / n

    def backward(self):
        d = self.d
        dy = self.buffer("dy", d.shape, d.dtype)
        np.multiply(d, 1.0 / d.shape[0], out=dy)
        return dy


class SigmoidCrossEntropy(Loss):
    """Multi-label log loss: L = (1/N) sum_i sum_k [softplus(z_ik) - t_ik z_ik], one sigmoid per output.

    softplus(z) = max(z, 0) + log1p(exp(-|z|)) never overflows.  Backward:
    dL/dz = (sigmoid(z) - t) / N.  Integer labels (N,) are compared as one-hot rows.
    """

    name = "sigmoid_cross_entropy"

    def forward(self, z, t):
        n = z.shape[0]
        if t.ndim == 1:
            target = self.buffer("t", z.shape, z.dtype)
            target.fill(0)
            target[self.rows(n), t] = 1
            t = target
        else:
            t = t.reshape(z.shape)
        e = self.buffer("e", z.shape, z.dtype)
        np.abs(z, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)  # exp(-|z|) in (0, 1]
        s = self.buffer("s", z.shape, z.dtype)
        np.log1p(e, out=s)
        loss = np.sum(s) + np.sum(np.maximum(z, 0)) - np.dot(t.ravel(), z.ravel())
        np.add(e, 1, out=s)
        np.reciprocal(s, out=s)  # 1 / (1 + exp(-|z|)) = sigmoid(|z|)
        np.subtract(1, s, out=e)  # sigmoid(-|z|)
        p = self.buffer("p", z.shape, z.dtype)
        np.copyto(p, s)
        np.copyto(p, e, where=z < 0)
        self.p, self.t = p, t
        return loss / n

    def backward(self):
        dz = self.buffer("dz", self.p.shape, self.p.dtype)
        np.subtract(self.p, self.t, out=dz)
        dz *= 1.0 / dz.shape[0]
        return dz

    @staticmethod
    def probabilities(z):
        """sigmoid(z) element by element, allocated (for users, not the hot loop)."""
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


LOSSES = {cls.name: cls for cls in (SoftmaxCrossEntropy, MeanSquaredError, SigmoidCrossEntropy)}


def check_targets(loss, t, role="training"):
    """Refuse targets the loss cannot learn from: cross-entropy needs class labels or rows of probabilities
    (each >= 0, summing to 1); with other float targets its loss has no lower bound and runs to -inf."""
    if loss != "softmax_cross_entropy" or t.ndim != 2:
        return
    step = max(1, (1 << 22) // max(1, t.shape[1]))
    for start in range(0, len(t), step):
        rows = np.asarray(t[start:start + step], dtype=np.float64)
        sums = rows.sum(axis=1)
        bad = (rows < 0).any(axis=1) | (np.abs(sums - 1) > 1e-3)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"the {role} targets are floats that are not probabilities (row {start + i} sums to "
                             f"{sums[i]:.4g}{', with negative values' if (rows[i] < 0).any() else ''}): "
                             f"softmax_cross_entropy needs class labels or one-hot rows; use loss 'mse' for "
                             f"regression targets")
