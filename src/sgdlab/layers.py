"""The network's pieces: each layer's forward and backward written out by hand.

A layer with parameters owns views into the model's flat ``params`` and
``grads`` vectors (``bind``); no layer copies them.  Outputs and input
gradients go into buffers the layer keeps between calls, sized by the largest
batch seen, so the training loop allocates nothing per iteration.  A buffer is
valid until the layer's next call: copy it if you keep it.
"""

import numpy as np

from .errors import ConfigError, DataError


class Buffered:
    """Keeps named arrays between calls, so the hot loop allocates nothing."""

    def __init__(self):
        self._buffers = {}
        self._views = {}  # key -> the view handed out last time: the same batch size gets it back as is

    def buffer(self, key, shape, dtype):
        """A reusable array of ``shape``: a view of rows of a larger one when it fits."""
        view = self._views.get(key)
        if view is not None and view.shape == shape and view.dtype == dtype:
            return view
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != dtype or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        view = self._views[key] = buf[: shape[0]]
        return view

    def buffer_like(self, key, x, dtype=None):
        """A reusable array shaped like ``x`` and laid out like it: a channels-last image batch
        (an (N, C, H, W) view of (N, H, W, C) memory, what the conv layers hand on) stays channels-last,
        so element-wise layers between them run over contiguous memory."""
        dtype = x.dtype if dtype is None else dtype
        if is_channels_last(x):
            n, c, h, w = x.shape
            return self.buffer(key + ":nhwc", (n, h, w, c), dtype).transpose(0, 3, 1, 2)
        return self.buffer(key, x.shape, dtype)


def is_channels_last(x):
    """True for an (N, C, H, W) array whose memory is (N, H, W, C) C-order (and not also plain C-order)."""
    return x.ndim == 4 and not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous


def memory_order(x):
    """``x`` as the C-contiguous array its memory holds: (N, H, W, C) for a channels-last batch, else x."""
    return x.transpose(0, 2, 3, 1) if is_channels_last(x) else x


class Layer(Buffered):
    """Base: no parameters, ``forward(x, train)`` and ``backward(dy, need_dx)``."""

    size = 0  # how many entries of the flat parameter vector the layer takes
    state_names = ()  # non-parameter arrays the layer keeps (BatchNorm's running averages)
    elementwise = False  # acts entry by entry, so it takes samples of any shape
    decays_weights = False  # its W is in the weight-decay penalty (Dense, Conv2D)

    def bind(self, params, grads):
        """Take views of this layer's slice of the flat vectors (nothing for a parameter-free layer)."""

    def init(self, rng):
        """Write initial parameter values into the bound views."""

    def out_features(self, n_in):
        return n_in

    def output_shape(self, shape):
        """The shape of one output sample for input samples of ``shape``; flat layers take (features,)."""
        if self.elementwise:
            return tuple(shape)
        if len(shape) != 1:
            raise ConfigError(f"{self!r} takes flat samples but gets samples shaped {tuple(shape)}: "
                              f"put a Flatten() before it")
        return (self.out_features(shape[0]),)

    def describe(self):
        """JSON-able description: enough to rebuild the layer."""
        return {"type": type(self).__name__}

    def forward(self, x, train=False):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "type")
        return f"{type(self).__name__}({args})"


def split(flat, *shapes):
    """Consecutive reshaped views of ``flat``: split(v, (2, 3), (3,)) -> W (2x3), b (3,)."""
    views, start = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        views.append(flat[start : start + n].reshape(shape))
        start += n
    return views


class Dense(Layer):
    """y = x @ W + b.  Backward: dW = x.T @ dy, db = sum(dy, axis 0), dx = dy @ W.T.

    ``init``: "he" (std sqrt(2/n_in), for ReLU) or "xavier" (std sqrt(1/n_in),
    for sigmoid/tanh); biases start at zero.
    """

    def __init__(self, n_in, n_out, init="he"):
        super().__init__()
        if init not in ("he", "xavier"):
            raise ConfigError(f"init={init!r} is unknown: use 'he' or 'xavier'")
        self.shape = (int(n_in), int(n_out))
        self.size = n_in * n_out + n_out
        self.init_method = init

    decays_weights = True

    def bind(self, params, grads):
        n_in, n_out = self.shape
        self.W, self.b = split(params, (n_in, n_out), (n_out,))
        self.dW, self.db = split(grads, (n_in, n_out), (n_out,))

    def init(self, rng):
        n_in = self.shape[0]
        std = np.sqrt((2.0 if self.init_method == "he" else 1.0) / n_in)
        self.W[...] = rng.standard_normal(self.shape) * std
        self.b[...] = 0

    def out_features(self, n_in):
        if n_in != self.shape[0]:
            raise ConfigError(f"Dense{self.shape} got {n_in} input features: it expects {self.shape[0]}")
        return self.shape[1]

    def describe(self):
        return {"type": "Dense", "n_in": self.shape[0], "n_out": self.shape[1], "init": self.init_method}

    def forward(self, x, train=False):
        self.x = x
        y = self.buffer("y", (x.shape[0], self.shape[1]), np.result_type(x, self.W))
        np.matmul(x, self.W, out=y)
        y += self.b
        return y

    def backward(self, dy, need_dx=True):
        np.matmul(self.x.T, dy, out=self.dW)
        np.add.reduce(dy, axis=0, out=self.db)
        if not need_dx:
            return None
        dx = self.buffer("dx", self.x.shape, dy.dtype)
        np.matmul(dy, self.W.T, out=dx)
        return dx


class ReLU(Layer):
    """y = max(x, 0).  Backward: dx = dy * m with m = [x > 0] (the real part decides, for complex steps).

    Real inputs take one ``np.maximum`` pass and keep m as a bool array (a float x bool multiply
    is faster in NumPy than float x float); complex inputs compute y = x * m from the real part.
    """

    elementwise = True

    def forward(self, x, train=False):
        y = self.buffer_like("y", x)
        self.mask = np.greater(x.real, 0, out=self.buffer_like("mask", x, np.bool_))
        if np.iscomplexobj(x):
            np.multiply(x, self.mask, out=y)
        else:
            np.maximum(x, 0, out=y)
        return y

    def backward(self, dy, need_dx=True):
        dx = self.buffer_like("dx", dy)
        np.multiply(dy, self.mask, out=dx)
        return dx


class OutputActivation(Layer):
    """An element-wise activation whose slope is a function of its output y: dx = dy * slope(y)."""

    elementwise = True

    def forward(self, x, train=False):
        y = self.buffer_like("y", x)
        self.activate(x, out=y)
        self.y = y
        return y

    def backward(self, dy, need_dx=True):
        dx = self.buffer_like("dx", dy)
        self.slope(self.y, out=dx)
        dx *= dy
        return dx


class Sigmoid(OutputActivation):
    """y = 1 / (1 + exp(-x)).  Backward: dx = dy * y * (1 - y)."""

    def activate(self, x, out):
        np.negative(x, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)

    def slope(self, y, out):
        np.subtract(1, y, out=out)
        out *= y


class Tanh(OutputActivation):
    """y = tanh(x).  Backward: dx = dy * (1 - y²)."""

    def activate(self, x, out):
        np.tanh(x, out=out)

    def slope(self, y, out):
        np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)


class Dropout(Layer):
    """Inverted dropout.  Train: y = x * m / (1 - rate), m ~ Bernoulli(1 - rate) per entry; evaluation: y = x.

    Backward: dx = dy * m / (1 - rate).  Masks come from the layer's own Generator
    (``seed``; MLP derives it from the model's seed), never the global RNG.  Set
    ``freeze_mask = True`` to reuse the last mask: the train-mode forward is then a
    fixed function of x, so numerical gradients can be checked against backward.
    """

    elementwise = True

    def __init__(self, rate=0.5, seed=0):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(f"dropout rate={rate!r} is not allowed: use a number >= 0 and < 1")
        self.rate, self.seed = float(rate), int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.freeze_mask = False
        self.mask = None  # m / (1 - rate) of the last train-mode forward, reused while frozen

    def describe(self):
        return {"type": "Dropout", "rate": self.rate, "seed": self.seed}

    def forward(self, x, train=False):
        self.active = train and self.rate > 0
        if not self.active:
            return x
        if not self.freeze_mask or self.mask is None:
            mask = self.buffer_like("mask", x, x.real.dtype)
            self.rng.random(out=memory_order(mask), dtype=mask.dtype)
            keep = self.buffer_like("keep", x, np.bool_)
            np.greater_equal(mask, self.rate, out=keep)
            np.multiply(keep, 1.0 / (1.0 - self.rate), out=mask)
            self.mask = mask
        elif self.mask.shape != x.shape:
            raise ConfigError(f"Dropout's frozen mask has shape {self.mask.shape} but the input has {x.shape}: "
                             f"unfreeze it or pass a batch of the same shape")
        y = self.buffer_like("y", x)
        np.multiply(x, self.mask, out=y)
        return y

    def backward(self, dy, need_dx=True):
        if not self.active:
            return dy
        dx = self.buffer_like("dx", dy)
        np.multiply(dy, self.mask, out=dx)
        return dx


class BatchNorm(Layer):
    """y = gamma * x̂ + beta, x̂ = (x - mu) / sqrt(var + eps), per feature (Ioffe & Szegedy 2015).

    Train: mu, var (biased, 1/N) of the batch, and running <- momentum * running + (1 - momentum) * batch
    (Keras' and the textbook's momentum=0.9 convention; torch's momentum=0.1 means the same).
    Evaluation: the running averages.  Backward through mu and var as well:
    dx = gamma / sqrt(var + eps) * (dy - mean(dy) - x̂ * mean(dy * x̂)), dgamma = sum(dy x̂), dbeta = sum(dy).
    ``running_mean``/``running_var`` are state, not parameters (saved beside them in a checkpoint).
    """

    state_names = ("running_mean", "running_var")

    def __init__(self, n, momentum=0.9, eps=1e-5):
        super().__init__()
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ConfigError(f"batch-norm momentum={momentum!r} is not allowed: use a number >= 0 and < 1")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ConfigError(f"batch-norm eps={eps!r} is not allowed: use a number > 0")
        self.n, self.momentum, self.eps = int(n), float(momentum), float(eps)
        self.size = 2 * self.n
        self.running_mean = self.running_var = None

    def bind(self, params, grads):
        self.gamma, self.beta = split(params, (self.n,), (self.n,))
        self.dgamma, self.dbeta = split(grads, (self.n,), (self.n,))
        dtype = params.real.dtype
        if self.running_mean is None or self.running_mean.dtype != dtype:
            self.running_mean = np.zeros(self.n, dtype)
            self.running_var = np.ones(self.n, dtype)

    def init(self, rng):
        self.gamma[...] = 1
        self.beta[...] = 0
        self.running_mean[...] = 0
        self.running_var[...] = 1

    def out_features(self, n_in):
        if n_in != self.n:
            raise ConfigError(f"BatchNorm({self.n}) got {n_in} input features: it expects {self.n}")
        return n_in

    def describe(self):
        return {"type": "BatchNorm", "n": self.n, "momentum": self.momentum, "eps": self.eps}

    def forward(self, x, train=False):
        xc = self.buffer("xc", x.shape, x.dtype)
        if train:
            mu = x.mean(axis=0)
            np.subtract(x, mu, out=xc)
            xhat = self.buffer("xhat", x.shape, x.dtype)
            np.multiply(xc, xc, out=xhat)
            var = xhat.mean(axis=0)  # no conjugate: stays analytic for complex-step checks
            if not np.iscomplexobj(x):
                self.running_mean *= self.momentum
                self.running_mean += (1 - self.momentum) * mu
                self.running_var *= self.momentum
                self.running_var += (1 - self.momentum) * var
        else:
            np.subtract(x, self.running_mean, out=xc)
            var = self.running_var
        self.inv_std = 1 / np.sqrt(var + self.eps)
        self.train = train
        xhat = self.buffer("xhat", x.shape, x.dtype)
        np.multiply(xc, self.inv_std, out=xhat)
        self.xhat = xhat
        y = self.buffer("y", x.shape, np.result_type(x, self.gamma))
        np.multiply(xhat, self.gamma, out=y)
        y += self.beta
        return y

    def backward(self, dy, need_dx=True):
        xhat = self.xhat
        np.sum(dy, axis=0, out=self.dbeta)
        dx = self.buffer("dx", dy.shape, dy.dtype)
        np.multiply(dy, xhat, out=dx)
        np.sum(dx, axis=0, out=self.dgamma)
        if not need_dx:
            return None
        if self.train:
            n = dy.shape[0]
            np.multiply(xhat, self.dgamma / n, out=dx)
            dx += self.dbeta / n
            np.subtract(dy, dx, out=dx)
        else:
            np.copyto(dx, dy)
        dx *= self.gamma * self.inv_std
        return dx


class Standardize(Layer):
    """y = (x - mean) / std per feature, with mean and std measured on the training data (``adapt``).

    Like BatchNorm's running statistics they are state, not parameters: not trained, not in the gradient,
    saved beside the parameters.  A constant feature (std 0) keeps std = 1, so it maps to 0, never inf.
    Backward: dx = dy / std.  (Keras' Normalization layer; scikit-learn's StandardScaler inside the model.)
    """

    state_names = ("mean", "std")

    def __init__(self, n):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"Standardize n={n!r} is not allowed: use the number of input features (>= 1)")
        self.n = int(n)
        self.mean, self.std = np.zeros(self.n), np.ones(self.n)

    def adapt(self, data, chunk=10_000):
        """Measure mean and std (population, 1/N) of ``data``: an (n, features) array or a Dataset; returns self."""
        total, sq, count = np.zeros(self.n), np.zeros(self.n), 0
        chunks = data.chunks(chunk) if hasattr(data, "chunks") else \
            ((np.asarray(data)[s:s + chunk], None) for s in range(0, len(data), chunk))
        for xb, _ in chunks:
            xb = np.asarray(xb, dtype=np.float64).reshape(len(xb), -1)
            self.out_features(xb.shape[1])
            shift = xb[0] if count == 0 else self._shift
            self._shift = shift
            d = xb - shift                                  # shifted sums: no cancellation for large means
            total += d.sum(axis=0)
            sq += np.einsum("ij,ij->j", d, d)
            count += len(xb)
        if count == 0:
            raise DataError("Standardize.adapt needs at least one sample")
        mean_d = total / count
        var = np.maximum(sq / count - mean_d ** 2, 0.0)
        self.mean[...] = self._shift + mean_d
        std = np.sqrt(var)
        self.std[...] = np.where(std > 1e-12 * np.maximum(1.0, np.abs(self.mean)), std, 1.0)
        return self

    def out_features(self, n_in):
        if n_in != self.n:
            raise ConfigError(f"Standardize({self.n}) got {n_in} input features: it expects {self.n}")
        return n_in

    def describe(self):
        return {"type": "Standardize", "n": self.n}

    def forward(self, x, train=False):
        y = self.buffer("y", x.shape, x.dtype)
        np.subtract(x, self.mean.astype(x.dtype, copy=False), out=y)
        self.scale = self.std.astype(x.dtype, copy=False)
        y /= self.scale
        return y

    def backward(self, dy, need_dx=True):
        return dy / self.scale if need_dx else None


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}

LAYERS = {"Dense": Dense, "ReLU": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh, "Dropout": Dropout, "BatchNorm": BatchNorm,
          "Standardize": Standardize}


def layer_from_description(desc, types=LAYERS):
    """Rebuild a layer from ``Layer.describe()`` output; ``types``: the layer classes by name."""
    desc = dict(desc)
    kind = desc.pop("type", None)
    if kind not in types:
        raise ConfigError(f"layer type {kind!r} is unknown: allowed are {', '.join(types)}")
    return types[kind](**desc)
