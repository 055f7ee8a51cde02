"""Step 3: update the flat parameter vector against its gradient, in place.

Each optimizer is one small class whose ``update(params, grads)`` is its
formula over the whole flat vector: element-wise NumPy calls with ``out=``
into buffers made at the first call, so later calls allocate nothing (the
y += a*x steps go through BLAS axpy/axpby, ``sgdlab.blas``: one pass each).  ``lr``
is read at every call (a schedule changes it between calls); the caller's
``grads`` are never modified.  The rules are torch.optim's, so results carry
over (Momentum keeps the textbook form, equal to torch's for a constant lr).

Learning-rate schedules live in ``sgdlab.schedules`` (importable from here too).
"""

import math

import numpy as np

from .blas import axpby, axpy
from .errors import ConfigError
from .schedules import (SCHEDULES, Constant, Cosine, Exponential, ExponentialRamp, ReduceOnPlateau, Schedule,
                        StepDecay, make_schedule)
from .validation import check_number, check_registered, check_whole_number

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "Nesterov",
    "AdaGrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "OPTIMIZERS",
    "get_optimizer",
    "clip_grad_norm",
    "Schedule",
    "Constant",
    "StepDecay",
    "Exponential",
    "Cosine",
    "ReduceOnPlateau",
    "ExponentialRamp",
    "SCHEDULES",
    "make_schedule",
]


# --------------------------------------------------------------------------- shared steps


def average(mean, decay, value, s):
    """mean <- decay * mean + (1 - decay) * value, in place (``s``: scratch of the same shape)."""
    mean *= decay
    np.multiply(value, 1.0 - decay, out=s)
    mean += s


def average_of_squares(mean, decay, grads, s):
    """mean <- decay * mean + (1 - decay) * g², in place (``s``: scratch)."""
    mean *= decay
    np.multiply(grads, grads, out=s)
    s *= 1.0 - decay
    mean += s


def adaptive_step(params, direction, squares, eps, factor, s, root_divisor=None):
    """p <- p - factor * direction / (sqrt(squares) [/ root_divisor] + eps), in place (``s``: scratch)."""
    np.sqrt(squares, out=s)
    if root_divisor is not None:
        s /= root_divisor
    s += eps
    np.divide(direction, s, out=s)
    s *= factor
    params -= s


# --------------------------------------------------------------------------- optimizers


class Optimizer:
    """Base: ``update(params, grads)`` changes ``params`` in place; ``lr`` may change between calls."""

    name = "optimizer"
    hyper = ()  # hyper-parameter attribute names besides lr (constructor keywords too)
    buffers = ()  # state arrays, the shape of params, made at the first update

    def __init__(self, lr):
        self.lr = check_number("lr", lr, low=0, low_open=True)
        self.step = 0
        self._scratch = None
        for b in self.buffers:
            setattr(self, b, None)

    def update(self, params, grads):
        raise NotImplementedError

    def _prepare(self, params, grads):
        """The scratch buffer (one per optimizer), making buffers at the first call."""
        s = self._scratch
        if s is not None and s.shape == params.shape and s.dtype == params.dtype and grads.shape == s.shape:
            return s
        return self._allocate(params, grads)

    def _allocate(self, params, grads):
        if not isinstance(params, np.ndarray) or params.dtype.kind != "f":
            raise ConfigError(f"params must be a floating-point NumPy array, got {type(params).__name__}"
                              f"{'' if not isinstance(params, np.ndarray) else ' of ' + str(params.dtype)}")
        if not isinstance(grads, np.ndarray) or grads.shape != params.shape:
            shape = getattr(grads, "shape", type(grads).__name__)
            raise ConfigError(f"grads shape {shape} does not match params shape {params.shape}")
        for b in self.buffers:
            buf = getattr(self, b)
            if buf is None:
                buf = np.zeros_like(params)
            elif buf.shape != params.shape:
                raise ConfigError(
                    f"{self.name} state {b!r} has shape {buf.shape} but params have shape {params.shape}: "
                    "load the state saved for this model"
                )
            elif buf.dtype != params.dtype:
                buf = buf.astype(params.dtype)
            setattr(self, b, buf)
        self._scratch = np.empty_like(params)
        return self._scratch

    def state_dict(self):
        """Hyper-parameters, step counter and buffers: plain floats/ints and copied NumPy arrays."""
        state = {"name": self.name, "lr": self.lr, "step": self.step}
        for h in self.hyper:
            value = getattr(self, h)
            state[h] = list(value) if isinstance(value, tuple) else value
        for b in self.buffers:
            buf = getattr(self, b)
            state[b] = None if buf is None else buf.copy()
        return state

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned (arrays are copied; hyper-parameters re-validated)."""
        if state.get("name", self.name) != self.name:
            raise ConfigError(f"state is for optimizer {state['name']!r}, not {self.name!r}")
        missing = [k for k in ("lr", *self.hyper, *self.buffers) if k not in state]
        if missing:
            raise ConfigError(f"{self.name} state lacks {', '.join(missing)}")
        checked = type(self)(lr=1.0, **{h: state[h] for h in self.hyper})
        lr = check_number("lr", state["lr"], low=0)  # a schedule may have driven it to 0
        step = check_whole_number("step", state.get("step", 0), 0)
        buffers = {b: None if state[b] is None else np.array(state[b], copy=True) for b in self.buffers}
        self.lr, self.step = lr, step
        for h in self.hyper:
            setattr(self, h, getattr(checked, h))
        for b, buf in buffers.items():
            setattr(self, b, buf)
        self._scratch = None

    def __repr__(self):
        settings = ", ".join(f"{h}={getattr(self, h)!r}" for h in ("lr", *self.hyper))
        return f"{type(self).__name__}({settings})"


class SGD(Optimizer):
    """p <- p - lr * (g + weight_decay * p)   (torch.optim.SGD; weight decay as L2 in the gradient)."""

    name = "sgd"
    hyper = ("weight_decay",)

    def __init__(self, lr=0.01, weight_decay=0.0):
        super().__init__(lr)
        self.weight_decay = check_number("weight_decay", weight_decay, low=0)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        if self.weight_decay:  # p - lr * (g + wd * p) = (1 - lr * wd) * p - lr * g
            axpby(-self.lr, grads, 1.0 - self.lr * self.weight_decay, params, scratch=s)
        else:
            axpy(-self.lr, grads, params, scratch=s)
        self.step += 1


class _MomentumMethod(Optimizer):
    """Base of Momentum and Nesterov: one velocity buffer and a momentum in [0, 1)."""

    hyper = ("momentum",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = check_number("momentum", momentum, low=0, high=1, high_open=True)


class Momentum(_MomentumMethod):
    """v <- momentum * v - lr * g;  p <- p + v.

    The textbook form.  For a constant lr it equals torch.optim.SGD(momentum=m)
    (there v = -lr * buf); when lr changes, v keeps the earlier lr's scale.
    """

    name = "momentum"
    buffers = ("v",)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        axpby(-self.lr, grads, self.momentum, self.v, scratch=s)
        axpy(1.0, self.v, params, scratch=s)
        self.step += 1


class Nesterov(_MomentumMethod):
    """b <- momentum * b + g;  p <- p - lr * (g + momentum * b)   (Sutskever; torch SGD(nesterov=True))."""

    name = "nesterov"
    buffers = ("b",)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        axpby(1.0, grads, self.momentum, self.b, scratch=s)
        axpy(-self.lr, grads, params, scratch=s)
        axpy(-self.lr * self.momentum, self.b, params, scratch=s)
        self.step += 1


class AdaGrad(Optimizer):
    """h <- h + g²;  p <- p - lr * g / (sqrt(h) + eps)   (torch.optim.Adagrad, initial accumulator 0)."""

    name = "adagrad"
    hyper = ("eps",)
    buffers = ("h",)

    def __init__(self, lr=0.01, eps=1e-8):
        super().__init__(lr)
        self.eps = check_number("eps", eps, low=0, low_open=True)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        np.multiply(grads, grads, out=s)
        self.h += s
        adaptive_step(params, grads, self.h, self.eps, self.lr, s)
        self.step += 1


class RMSprop(Optimizer):
    """h <- alpha * h + (1 - alpha) * g²;  p <- p - lr * g / (sqrt(h) + eps)   (torch.optim.RMSprop)."""

    name = "rmsprop"
    hyper = ("alpha", "eps")
    buffers = ("h",)

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8):
        super().__init__(lr)
        self.alpha = check_number("alpha", alpha, low=0, high=1, high_open=True)
        self.eps = check_number("eps", eps, low=0, low_open=True)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        average_of_squares(self.h, self.alpha, grads, s)
        adaptive_step(params, grads, self.h, self.eps, self.lr, s)
        self.step += 1


def _betas(betas):
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ConfigError(f"betas={betas!r} is not allowed: use two numbers (beta1, beta2), each in [0, 1)") from None
    return (
        check_number("beta1", beta1, low=0, high=1, high_open=True),
        check_number("beta2", beta2, low=0, high=1, high_open=True),
    )


class Adam(Optimizer):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g²;  p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).

    Exactly torch.optim.Adam: bias correction, eps outside the square root.
    """

    name = "adam"
    hyper = ("betas", "eps")
    buffers = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(lr)
        self.betas = _betas(betas)
        self.eps = check_number("eps", eps, low=0, low_open=True)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        self._adam_step(params, grads, s)

    def _adam_step(self, params, grads, s):
        beta1, beta2 = self.betas
        self.step += 1
        average(self.m, beta1, grads, s)
        average_of_squares(self.v, beta2, grads, s)
        adaptive_step(params, self.m, self.v, self.eps, self.lr / (1.0 - beta1**self.step), s,
                      root_divisor=math.sqrt(1.0 - beta2**self.step))


class AdamW(Adam):
    """p <- p - lr * weight_decay * p, then the Adam step   (torch.optim.AdamW, decoupled weight decay)."""

    name = "adamw"
    hyper = ("betas", "eps", "weight_decay")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(lr, betas, eps)
        self.weight_decay = check_number("weight_decay", weight_decay, low=0)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        if self.weight_decay:
            params *= 1.0 - self.lr * self.weight_decay
        self._adam_step(params, grads, s)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam, AdamW)}


def get_optimizer(name, lr, **settings):
    """Build an optimizer by name (``sgd``, ``momentum``, ``adam``, ...) with its settings.

    ``lr=None`` takes the optimizer's default; an unknown name or setting raises
    ConfigError listing the allowed ones.
    """
    cls, _ = check_registered("optimizer", OPTIMIZERS, name, ("lr",), settings)
    if lr is None:
        return cls(**settings)
    return cls(lr=lr, **settings)


def clip_grad_norm(grads, max_norm):
    """If ||g||₂ > max_norm, scale ``grads`` in place to norm max_norm; return the norm before clipping.

    A non-finite norm (NaN/inf in grads) is returned with grads left alone, so the caller sees the divergence.
    """
    max_norm = check_number("max_norm", max_norm, low=0, low_open=True)
    with np.errstate(over="ignore"):
        norm = math.sqrt(float(np.dot(grads, grads)))
    if math.isinf(norm):  # the sum of squares overflowed the dtype: rescale first (rare path)
        largest = float(np.max(np.abs(grads)))
        if math.isfinite(largest) and largest > 0:
            scaled = grads / largest
            norm = largest * math.sqrt(float(np.dot(scaled, scaled)))
    if math.isfinite(norm) and norm > max_norm:
        grads *= max_norm / norm
    return norm
