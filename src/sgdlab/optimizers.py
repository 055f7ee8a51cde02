"""Step 3: update the flat parameter vector against its gradient, in place."""

import numpy as np

from .errors import ConfigError


class Optimizer:
    """Base: ``update(params, grads)`` changes ``params`` in place; ``lr`` may change between calls."""

    name = "optimizer"

    def __init__(self, lr):
        if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
            raise ConfigError(f"lr={lr!r} is not allowed: the learning rate must be a positive number")
        self.lr = float(lr)

    def update(self, params, grads):
        raise NotImplementedError

    def state_dict(self):
        """Hyper-parameters and buffers: plain floats and NumPy arrays."""
        return {"lr": self.lr}

    def load_state_dict(self, state):
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """p <- p - lr * g."""

    name = "sgd"

    def __init__(self, lr=0.01):
        super().__init__(lr)
        self._step = None

    def update(self, params, grads):
        if self._step is None or self._step.shape != params.shape or self._step.dtype != params.dtype:
            self._step = np.empty_like(params)
        np.multiply(grads, self.lr, out=self._step)
        params -= self._step


class Momentum(Optimizer):
    """v <- momentum * v - lr * g;  p <- p + v."""

    name = "momentum"

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum={momentum!r} is not allowed: use 0 <= momentum < 1")
        self.momentum = float(momentum)
        self.v = None
        self._step = None

    def update(self, params, grads):
        if self.v is None:
            self.v = np.zeros_like(params)
            self._step = np.empty_like(params)
        self.v *= self.momentum
        np.multiply(grads, self.lr, out=self._step)
        self.v -= self._step
        params += self.v

    def state_dict(self):
        return {"lr": self.lr, "momentum": self.momentum, "v": None if self.v is None else self.v.copy()}

    def load_state_dict(self, state):
        self.lr = float(state["lr"])
        self.momentum = float(state["momentum"])
        self.v = None if state.get("v") is None else np.array(state["v"])
        self._step = None if self.v is None else np.empty_like(self.v)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum)}


def get_optimizer(name, lr, **settings):
    """Build an optimizer by name (``sgd``, ``momentum``, ...) with its settings."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"optimizer={name!r} is unknown: choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(lr=lr, **settings)
