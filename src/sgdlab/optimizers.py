"""Step 3: update the flat parameter vector against its gradient, in place.

Each optimizer is one small class whose ``update(params, grads)`` is its
formula over the whole flat vector: element-wise NumPy calls with ``out=``
into buffers made at the first call, so later calls allocate nothing (the
y += a*x steps go through BLAS axpy/axpby, ``sgdlab.blas``: one pass each).  ``lr``
is read at every call (a schedule changes it between calls); the caller's
``grads`` are never modified.  The rules are torch.optim's, so results carry
over (Momentum keeps the textbook form, equal to torch's for a constant lr).

Learning-rate schedules (``Schedule``) live here too: ``lr_at(iteration,
iterations_per_epoch, total_iterations)`` gives the lr for an iteration and
``observe(metric)`` feeds back an evaluation (used by ``ReduceOnPlateau``).
"""

import inspect
import math

import numpy as np

from .blas import axpby, axpy
from .errors import ConfigError, check_number, check_whole_number

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
    "settings_of",
    "clip_grad_norm",
    "Schedule",
    "Constant",
    "StepDecay",
    "Exponential",
    "Cosine",
    "ReduceOnPlateau",
    "SCHEDULES",
    "make_schedule",
]


def settings_of(cls):
    """{setting: default} of an optimizer's or schedule's constructor (lr and base_lr included)."""
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


def _settings_of(cls, skip):
    return [p for p in settings_of(cls) if p not in skip]


def _build(kind, table, name, first, settings):
    """Look ``name`` up in ``table`` and build it, naming unknown names/settings and the allowed ones."""
    key = name.lower() if isinstance(name, str) else name
    try:
        cls = table[key]
    except (KeyError, TypeError):
        raise ConfigError(f"{kind}={name!r} is unknown: choose one of {', '.join(table)}") from None
    allowed = _settings_of(cls, first)
    unknown = [s for s in settings if s not in allowed]
    if unknown:
        raise ConfigError(
            f"{kind} {key!r} has no setting {', '.join(map(repr, unknown))}: "
            f"allowed settings are {', '.join(allowed) if allowed else 'none'}"
        )
    return cls, key


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


class Momentum(Optimizer):
    """v <- momentum * v - lr * g;  p <- p + v.

    The textbook form.  For a constant lr it equals torch.optim.SGD(momentum=m)
    (there v = -lr * buf); when lr changes, v keeps the earlier lr's scale.
    """

    name = "momentum"
    hyper = ("momentum",)
    buffers = ("v",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = check_number("momentum", momentum, low=0, high=1, high_open=True)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        axpby(-self.lr, grads, self.momentum, self.v, scratch=s)
        axpy(1.0, self.v, params, scratch=s)
        self.step += 1


class Nesterov(Optimizer):
    """b <- momentum * b + g;  p <- p - lr * (g + momentum * b)   (Sutskever; torch SGD(nesterov=True))."""

    name = "nesterov"
    hyper = ("momentum",)
    buffers = ("b",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = check_number("momentum", momentum, low=0, high=1, high_open=True)

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
        np.sqrt(self.h, out=s)
        s += self.eps
        np.divide(grads, s, out=s)
        s *= self.lr
        params -= s
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
        self.h *= self.alpha
        np.multiply(grads, grads, out=s)
        s *= 1.0 - self.alpha
        self.h += s
        np.sqrt(self.h, out=s)
        s += self.eps
        np.divide(grads, s, out=s)
        s *= self.lr
        params -= s
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
        self.m *= beta1
        np.multiply(grads, 1.0 - beta1, out=s)
        self.m += s
        self.v *= beta2
        np.multiply(grads, grads, out=s)
        s *= 1.0 - beta2
        self.v += s
        np.sqrt(self.v, out=s)
        s /= math.sqrt(1.0 - beta2**self.step)
        s += self.eps
        np.divide(self.m, s, out=s)
        s *= self.lr / (1.0 - beta1**self.step)
        params -= s


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
    cls, _ = _build("optimizer", OPTIMIZERS, name, ("lr",), settings)
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


# --------------------------------------------------------------------------- schedules


class Schedule:
    """Base: ``lr_at(iteration, iterations_per_epoch, total_iterations)``; iteration counts from 0."""

    name = "schedule"
    hyper = ()  # settings besides base_lr (constructor keywords too)

    def __init__(self, base_lr):
        self.base_lr = check_number("base_lr", base_lr, low=0, low_open=True)

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        raise NotImplementedError

    def observe(self, metric):
        """Take an evaluation's metric (after each evaluation); only ReduceOnPlateau uses it."""

    def state_dict(self):
        state = {"name": self.name, "base_lr": self.base_lr}
        state.update({h: getattr(self, h) for h in self.hyper})
        return state

    def load_state_dict(self, state):
        if state.get("name", self.name) != self.name:
            raise ConfigError(f"state is for schedule {state['name']!r}, not {self.name!r}")
        checked = type(self)(state["base_lr"], **{h: state[h] for h in self.hyper})
        self.base_lr = checked.base_lr
        for h in self.hyper:
            setattr(self, h, getattr(checked, h))

    @staticmethod
    def _epoch(iteration, iterations_per_epoch):
        """Completed epochs at ``iteration`` (integer division: epoch boundaries are iteration counts)."""
        if iteration < 0 or iterations_per_epoch < 1:
            raise ConfigError(
                f"iteration={iteration!r}, iterations_per_epoch={iterations_per_epoch!r}: "
                "use iteration >= 0 and iterations_per_epoch >= 1"
            )
        return iteration // iterations_per_epoch

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{h}={getattr(self, h)!r}' for h in ('base_lr', *self.hyper))})"


class Constant(Schedule):
    """lr = base_lr."""

    name = "constant"

    def __init__(self, base_lr):
        super().__init__(base_lr)

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        return self.base_lr


class StepDecay(Schedule):
    """lr = base_lr * gamma ** (epoch // step_epochs), epoch = iteration // iterations_per_epoch (torch StepLR)."""

    name = "step"
    hyper = ("step_epochs", "gamma")

    def __init__(self, base_lr, step_epochs=10, gamma=0.1):
        super().__init__(base_lr)
        self.step_epochs = check_whole_number("step_epochs", step_epochs, 1)
        self.gamma = check_number("gamma", gamma, low=0, high=1, low_open=True)

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        return self.base_lr * self.gamma ** (self._epoch(iteration, iterations_per_epoch) // self.step_epochs)


class Exponential(Schedule):
    """lr = base_lr * gamma ** epoch, per completed epoch (epoch = iteration // iterations_per_epoch; torch ExponentialLR)."""

    name = "exponential"
    hyper = ("gamma",)

    def __init__(self, base_lr, gamma=0.95):
        super().__init__(base_lr)
        self.gamma = check_number("gamma", gamma, low=0, high=1, low_open=True)

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        return self.base_lr * self.gamma ** self._epoch(iteration, iterations_per_epoch)


class Cosine(Schedule):
    """lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2, t = iteration - warmup, T = total - warmup.

    During warmup (iteration < warmup_iterations) lr = base_lr * (iteration + 1) / warmup_iterations;
    lr reaches min_lr at iteration = total_iterations and stays there.
    """

    name = "cosine"
    hyper = ("min_lr", "warmup_iterations")

    def __init__(self, base_lr, min_lr=0.0, warmup_iterations=0):
        super().__init__(base_lr)
        self.min_lr = check_number("min_lr", min_lr, low=0, high=self.base_lr)
        self.warmup_iterations = check_whole_number("warmup_iterations", warmup_iterations, 0)

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        self._epoch(iteration, iterations_per_epoch)
        warmup = self.warmup_iterations
        if total_iterations <= warmup:
            raise ConfigError(
                f"total_iterations={total_iterations!r} is not allowed: cosine needs more than "
                f"warmup_iterations={warmup}"
            )
        if iteration < warmup:
            return self.base_lr * (iteration + 1) / warmup
        t = min(iteration - warmup, total_iterations - warmup)
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * t / (total_iterations - warmup))) / 2.0


class ReduceOnPlateau(Schedule):
    """lr <- max(lr * factor, min_lr) once more than ``patience`` observations in a row fail to improve.

    torch ReduceLROnPlateau without cooldown: "improve" means metric < best - min_delta
    (mode "min") or metric > best + min_delta (mode "max"); NaN never improves.
    """

    name = "plateau"
    hyper = ("factor", "patience", "min_delta", "mode", "min_lr")

    def __init__(self, base_lr, factor=0.1, patience=3, min_delta=0.0, mode="min", min_lr=0.0):
        super().__init__(base_lr)
        self.factor = check_number("factor", factor, low=0, high=1, low_open=True, high_open=True)
        self.patience = check_whole_number("patience", patience, 0)
        self.min_delta = check_number("min_delta", min_delta, low=0)
        if mode not in ("min", "max"):
            raise ConfigError(f"mode={mode!r} is not allowed: use 'min' or 'max'")
        self.mode = mode
        self.min_lr = check_number("min_lr", min_lr, low=0, high=self.base_lr)
        self.lr = self.base_lr
        self.best = None  # None until the first observation (JSON-friendly, unlike inf)
        self.bad_observations = 0

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        return self.lr

    def observe(self, metric):
        metric = float(metric)
        if self.best is None and not math.isnan(metric):
            improved = True
        elif self.best is None:
            improved = False
        elif self.mode == "min":
            improved = metric < self.best - self.min_delta
        else:
            improved = metric > self.best + self.min_delta
        if improved:
            self.best, self.bad_observations = metric, 0
        else:
            self.bad_observations += 1
        if self.bad_observations > self.patience:
            self.lr = max(self.lr * self.factor, self.min_lr)
            self.bad_observations = 0

    def state_dict(self):
        state = super().state_dict()
        state.update(lr=self.lr, best=self.best, bad_observations=self.bad_observations)
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.lr = check_number("lr", state["lr"], low=0)
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_observations = check_whole_number("bad_observations", state["bad_observations"], 0)


SCHEDULES = {cls.name: cls for cls in (Constant, StepDecay, Exponential, Cosine, ReduceOnPlateau)}


def make_schedule(name, base_lr, **settings):
    """Build a schedule by name (``constant``, ``step``, ``exponential``, ``cosine``, ``plateau``)."""
    cls, _ = _build("schedule", SCHEDULES, name, ("base_lr",), settings)
    return cls(base_lr, **settings)
