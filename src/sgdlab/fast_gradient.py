"""The model's numerical gradient, fast: the same central differences as the tutorial's loop, batched.

``model_numerical_gradient`` differentiates ``model.loss(x, t, train=True)``
for every parameter.  Dense layers followed only by Dense, ReLU, Sigmoid, Tanh
and a known loss go through a batched path that reuses the activations before
the perturbed layer and pushes many perturbations through the rest of the
network at once; any other parameter through the plain loop.  ``scaled_steps``
chooses h (see ``sgdlab.gradients`` for why cbrt(eps)).
"""

import math
from contextlib import contextmanager

import numpy as np

from .errors import ConfigError, DataError
from .layers import Dense, Dropout, ReLU, Sigmoid, Tanh
from .losses import MeanSquaredError, SoftmaxCrossEntropy
from .validation import check_step

EPS = float(np.finfo(np.float64).eps)
CENTRAL_H = EPS ** (1.0 / 3.0)  # ≈ 6.06e-6, times max(1, |x|)
COMPLEX_H = 1e-20
METHODS = ("central", "complex", "loop")
CHUNK_ELEMENTS = 1 << 21  # bounds each temporary array of the fast path (16 MB in float64)


def scaled_steps(values, h=None):
    """Central-difference steps: h, or cbrt(eps)·max(1, |x|) rounded so that x + h is exact."""
    values = np.asarray(values, dtype=np.float64)
    if h is not None:
        return np.full(values.shape, float(h))
    raw = CENTRAL_H * np.maximum(1.0, np.abs(values))
    return (values + raw) - values


def _relu(z):
    return z * (z.real > 0) if np.iscomplexobj(z) else np.maximum(z, 0.0)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


ELEMENTWISE = {ReLU: _relu, Sigmoid: _sigmoid, Tanh: np.tanh}


def _row_loss_cross_entropy(z, t):
    """logsumexp(z_r) - z_r[t_r] for each row (soft/one-hot targets: lse·Σt - t·z)."""
    shifted = z - z.real.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1))
    if t.ndim == 1:
        return lse - shifted[np.arange(z.shape[0]), t]
    return lse * t.sum(axis=1) - (t * shifted).sum(axis=1)


def _row_loss_mse(y, t):
    """½·||y_r - t_r||² for each row (integer labels as one-hot rows); no conjugate, so analytic."""
    if t.ndim == 1:
        d = y.copy()
        d[np.arange(y.shape[0]), t] -= 1
    else:
        d = y - t.reshape(y.shape)
    return 0.5 * (d * d).sum(axis=1)


ROW_LOSSES = {SoftmaxCrossEntropy: _row_loss_cross_entropy, MeanSquaredError: _row_loss_mse}


def _prepare(model, x, t):
    """float64 inputs shaped (N, *model.input_shape) and checked targets."""
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"x has shape {x.shape}: give at least one sample, shape (N, {model.n_in})")
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] != model.n_in:
        raise DataError(f"input has {x.shape[1]} features per sample: this model expects {model.n_in}")
    x = x.reshape(x.shape[0], *model.input_shape).astype(np.float64)
    t = np.asarray(t)
    if t.shape[0:1] != x.shape[0:1]:
        raise DataError(f"t has {t.shape[0] if t.ndim else 0} rows but x has {x.shape[0]}: give one target per "
                        f"sample")
    if t.ndim == 1:
        if not np.issubdtype(t.dtype, np.integer):
            raise DataError(f"1-D targets of dtype {t.dtype} are not labels: give integer labels or an "
                            f"(N, {model.n_out}) float array")
        if t.min() < 0 or t.max() >= model.n_out:
            raise DataError(f"label {int(t.max()) if t.max() >= model.n_out else int(t.min())} is out of range: "
                            f"labels must be 0..{model.n_out - 1}")
    elif t.ndim == 2 and t.size == x.shape[0] * model.n_out:
        t = t.astype(np.float64)
    else:
        raise DataError(f"t has shape {t.shape}: give ({x.shape[0]},) labels or ({x.shape[0]}, {model.n_out}) "
                        f"targets")
    return x, t


def _float64_model(model):
    """The model itself when float64, else a float64 copy that keeps its Dropout masks."""
    if model.params.dtype == np.float64:
        return model
    copy = model.copy(dtype=np.float64)
    for source, target in zip(model.layers, copy.layers):
        if isinstance(source, Dropout) and source.mask is not None:
            target.mask = source.mask.astype(np.float64)
    return copy


@contextmanager
def _fixed_training_loss(model):
    """Make ``model.loss(x, t, train=True)`` (what backprop differentiates) a fixed function while differencing.

    Dropout reuses its last mask (``freeze_mask``; one is drawn if there is none); BatchNorm uses the
    batch statistics, and its running averages, which each train-mode pass moves, are put back after.
    """
    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]
    frozen = [layer.freeze_mask for layer in dropouts]
    saved = {name: value.copy() for name, value in model.state_buffers().items()}
    try:
        for layer in dropouts:
            layer.freeze_mask = True
        yield
    finally:
        for layer, was in zip(dropouts, frozen):
            layer.freeze_mask = was
        model.load_state_buffers(saved)


def _loop_gradient(model, x, t, steps, indices):
    """The plain definition on a float64 model: two full forward passes per parameter, restored exactly."""
    params = model.params
    out = np.empty(len(indices))
    for n, idx in enumerate(indices):
        original = params[idx]
        step = steps[idx]
        try:
            params[idx] = original + step
            plus = model.loss(x, t, train=True)
            params[idx] = original - step
            minus = model.loss(x, t, train=True)
        finally:
            params[idx] = original
        out[n] = (plus - minus) / (2 * step)
    return out


def _has_plain_semantics(model):
    """The fast path re-derives the loss from layers, loss and weight decay; refuse overridden model maths."""
    plain = getattr(model, "has_plain_maths", None)
    return bool(plain is not None and plain())


class _FastPlan:
    """The model read as plain float64 arrays: which Dense layers the batched fast path can differentiate."""

    def __init__(self, model):
        self.model = model
        self.layers = model.layers
        self.loss_of_rows = ROW_LOSSES.get(type(model.loss_layer)) if _has_plain_semantics(model) else None
        known = [type(layer) is Dense or type(layer) in ELEMENTWISE for layer in self.layers]
        # a Dense layer is fast when every layer after it is known (earlier ones only feed it its input)
        self.fast = set()
        if self.loss_of_rows is not None:
            for k in range(len(self.layers) - 1, -1, -1):
                if not known[k]:
                    break
                if type(self.layers[k]) is Dense:
                    self.fast.add(k)
        self.weights = {k: (np.asarray(layer.W, dtype=np.float64), np.asarray(layer.b, dtype=np.float64))
                        for k, layer in enumerate(self.layers) if type(layer) is Dense}
        self.weight_decay = float(model.weight_decay)

    @property
    def covers_all(self):
        return self.loss_of_rows is not None and all(k in self.fast for k, _ in self.model.param_slices)

    def apply(self, k, z):
        layer = self.layers[k]
        if type(layer) is Dense:
            W, b = self.weights[k]
            return z @ W + b
        return ELEMENTWISE[type(layer)](z)

    def activations(self, x, model64=None):
        """acts[k] = input of layer k (acts[0] = x, acts[-1] = output); unknown layers run on the float64 model."""
        acts = [x]
        for k, layer in enumerate(self.layers):
            if k in self.weights or type(layer) in ELEMENTWISE:
                acts.append(self.apply(k, acts[-1]))
            else:
                acts.append(np.array(model64.layers[k].forward(acts[-1], True), dtype=np.float64))
        return acts

    def dense_gradient(self, k, acts, t, steps, complex_step):
        """Central (or complex-step) derivatives for every W[i, j] and b[j] of Dense layer k.

        W[i, j] ± h moves only column j of the layer's output, by ±h·x[:, i] (b[j]: by ±h); the
        elementwise layers after it act on that column alone; the next Dense layer then adds
        δ·W_next[j, :] to each affected row; from there on each (parameter, row) pair whose row
        changed is one row of a batched forward pass.  Rows that do not change (x[r, i] = 0, a ReLU
        off on both sides) contribute exactly 0 to L(p + h) - L(p - h) and are skipped; the loss is
        a mean of row losses, so the difference is the sum of the changed rows' differences / N.
        """
        layers, n = self.layers, acts[0].shape[0]
        W, _ = self.weights[k]
        n_in, n_out = W.shape
        X, A = acts[k], acts[k + 1]
        m = k + 1
        column_functions = []
        while m < len(layers) and type(layers[m]) is not Dense:
            column_functions.append(ELEMENTWISE[type(layers[m])])
            m += 1
        Y = acts[m]
        widths = [a.shape[1] for a in acts[m + 1:]] or [n_out]
        if m < len(layers):
            W_next = self.weights[m][0]
            Z0 = acts[m + 1]
        last_hop = None
        if m >= len(layers) - 1:
            last_hop = _LastHop(type(self.model.loss_layer), W_next if m < len(layers) else np.eye(n_out),
                                acts[-1], t, complex_step)
        X1 = np.concatenate([X, np.ones((n, 1))], axis=1)  # the bias is the weight of a constant input 1
        rows_nz, inputs_nz = np.nonzero(X1)
        values_nz = X1[rows_nz, inputs_nz]
        H = steps.reshape(n_in + 1, n_out)
        size = (n_in + 1) * n_out
        total = np.zeros(size)
        chunk = max(1, CHUNK_ELEMENTS // (n_out * max(widths)))
        signs = (1j,) if complex_step else (1.0, -1.0)
        for start in range(0, rows_nz.size, chunk):
            r = rows_nz[start:start + chunk]
            i = inputs_nz[start:start + chunk]
            shift = H[i] * values_nz[start:start + chunk, None]
            base, y0 = A[r], Y[r]
            columns = []
            for sign in signs:
                c = base + sign * shift
                for f in column_functions:
                    c = f(c)
                columns.append(c)
            changed = columns[0] != y0
            for c in columns[1:]:
                changed |= c != y0
            flat = np.flatnonzero(changed)
            if flat.size == 0:
                continue
            e, j = np.divmod(flat, n_out)
            rows = r[e]
            y0_changed = y0.take(flat)
            deltas = [c.take(flat) - y0_changed for c in columns]
            difference = np.empty(e.size)
            general = np.ones(e.size, dtype=bool)
            if last_hop is not None:
                general = last_hop.unsafe(j, deltas)
                easy = ~general
                difference[easy] = last_hop.differences(rows[easy] * n_out + j[easy], [d[easy] for d in deltas])
            if general.any():
                g_rows, g_j = rows[general], j[general]
                row_losses = []
                for c, delta in zip(columns, deltas):
                    if m < len(layers):
                        z = Z0[g_rows] + delta[general][:, None] * W_next[g_j]
                        for later in range(m + 1, len(layers)):
                            z = self.apply(later, z)
                    else:
                        z = Y[g_rows].astype(c.dtype)
                        z[np.arange(g_rows.size), g_j] = c.take(flat)[general]
                    row_losses.append(self.loss_of_rows(z, t[g_rows]))
                difference[general] = row_losses[0].imag if complex_step else row_losses[0] - row_losses[1]
            total += np.bincount(i[e] * n_out + j, weights=difference, minlength=size)
        h = steps
        weights = np.concatenate([W.ravel(), np.zeros(n_out)])
        decay = np.concatenate([np.full(W.size, self.weight_decay), np.zeros(n_out)])
        if complex_step:
            return total / n / h + decay * weights
        penalty_change = 0.5 * decay * ((weights + h) ** 2 - (weights - h) ** 2)
        return (total / n + penalty_change) / (2 * h)


class _LastHop:
    """Row-loss differences when a perturbation moves each output row by δ·w (w = W_last[j, :]).

    That is the case when the perturbed layer feeds the last Dense layer through elementwise
    layers (w = its row j) or is the last Dense layer itself (w = e_j).  The loss of a row is then a
    function of one number δ, evaluated to machine precision from per-(row, j) statistics:
      mse:     ℓ(δ) - ℓ(0) = δ·(d·w) + δ²/2·|w|²                      (exact; d = y - t)
      softmax: ℓ(δ) - ℓ(0) = log(Σ_c p_c e^{δ w_c})·Σt - δ·(t·w),  p = softmax(y),
               with Σ_c p_c e^{δ w_c} = 1 + Σ_{k=1..6} δ^k/k! · Σ_c p_c w_c^k  while |δ·w| <= 1e-3
               (the rest of the series is below 1e-24, far under float64 rounding of the loss).
    Rows with a larger |δ·w| go through the general path.
    """

    TERMS = 6
    LIMIT = 1e-3

    def __init__(self, loss_type, W, output, t, complex_step):
        self.kind, self.complex_step = loss_type, complex_step
        labels = t.ndim == 1
        if loss_type is MeanSquaredError:
            d = output.copy()
            if labels:
                d[np.arange(d.shape[0]), t] -= 1
            else:
                d -= t.reshape(d.shape)
            dw = d @ W.T
            self.stats = np.stack([dw.ravel(), np.broadcast_to((W * W).sum(axis=1), dw.shape).ravel()])
            self.w_max = None
        else:
            p = SoftmaxCrossEntropy.probabilities(output)
            tw = W.T[t] if labels else t @ W.T
            t_sum = np.ones(p.shape[0]) if labels else t.sum(axis=1)
            self.stats = np.stack([tw.ravel(), np.broadcast_to(t_sum[:, None], tw.shape).ravel()]
                                  + [(p @ (W ** k).T).ravel() for k in range(1, self.TERMS + 1)])
            self.w_max = np.abs(W).max(axis=1)

    def unsafe(self, j, deltas):
        """Pairs the series cannot evaluate to machine precision (none for mse)."""
        if self.w_max is None:
            return np.zeros(j.size, dtype=bool)
        big = np.abs(deltas[0]) * self.w_max[j] > self.LIMIT
        for delta in deltas[1:]:
            big |= np.abs(delta) * self.w_max[j] > self.LIMIT
        return big

    def differences(self, flat, deltas):
        """ℓ(δ+) - ℓ(δ-) per pair (central), or Im ℓ(i·h-step) (complex step); flat = row·n_out + j."""
        stats = np.take(self.stats, flat, axis=1)
        if self.kind is MeanSquaredError:
            dw, ww = stats
            values = [delta * dw + 0.5 * delta * delta * ww for delta in deltas]
        else:
            tw, t_sum, *moments = stats
            values = []
            for delta in deltas:
                series = moments[-1] / math.factorial(self.TERMS)
                for k in range(self.TERMS - 1, 0, -1):
                    series = moments[k - 1] / math.factorial(k) + delta * series
                series = delta * series  # S(δ) - 1
                if self.complex_step:
                    log_s = np.arctan2(series.imag, 1.0 + series.real) * 1j
                else:
                    log_s = np.log1p(series)
                values.append(log_s * t_sum - delta * tw)
        return values[0].imag if self.complex_step else values[0] - values[1]


def model_numerical_gradient(model, x, t, h=None, method="central"):
    """The gradient of ``model.loss(x, t, train=True)`` (backprop's function) by finite differences, flat float64.

    Dropout layers reuse their last mask and BatchNorm uses batch statistics (``_fixed_training_loss``).

    method "central": (L(p + h·e_k) - L(p - h·e_k)) / 2h for every parameter k, computed by the
    batched fast path (see ``_FastPlan.dense_gradient``) for Dense layers followed only by Dense,
    ReLU, Sigmoid, Tanh and a known loss; any other parameter by the plain loop on full forward
    passes.  Same numbers as the loop up to rounding.  h=None: cbrt(eps)·max(1, |p|) per parameter.
    method "complex": Im L(p + i·h·e_k) / h, h=1e-20 by default; refuses layers it does not know.
    method "loop": the plain loop for every parameter (the reference; ~2 forward passes each).
    A float32 model is differentiated in float64 (its parameters are copied, never modified).
    """
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is unknown: use {', '.join(METHODS)}")
    check_step(h)
    x, t = _prepare(model, x, t)
    plan = _FastPlan(model) if method != "loop" else None
    if method == "complex":
        if not plan.covers_all:
            unknown = [type(layer).__name__ for layer in model.layers
                       if type(layer) is not Dense and type(layer) not in ELEMENTWISE]
            what = ", ".join(unknown) if unknown else f"loss {type(model.loss_layer).__name__}"
            raise ConfigError(f"the complex step supports Dense, ReLU, Sigmoid, Tanh and the softmax/mse losses, "
                              f"not {what}: use method='central'")
        acts = plan.activations(x)
        grad = np.empty(model.params.size)
        for k, sl in model.param_slices:
            steps = np.full(sl.stop - sl.start, COMPLEX_H if h is None else float(h))
            grad[sl] = plan.dense_gradient(k, acts, t, steps, complex_step=True)
        return grad
    steps = scaled_steps(model.params, h)
    grad = np.empty(model.params.size)
    slow = [(k, sl) for k, sl in model.param_slices if plan is None or k not in plan.fast]
    unknown = any(type(layer) is not Dense and type(layer) not in ELEMENTWISE for layer in model.layers)
    model64 = _float64_model(model) if slow or unknown else None
    with _fixed_training_loss(model64 if model64 is not None else model):
        if plan is not None and plan.fast:
            acts = plan.activations(x, model64)
            for k, sl in model.param_slices:
                if k in plan.fast:
                    grad[sl] = plan.dense_gradient(k, acts, t, steps[sl], complex_step=False)
        for k, sl in slow:
            grad[sl] = _loop_gradient(model64, x, t, steps, range(sl.start, sl.stop))
    return grad
