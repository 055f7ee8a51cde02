"""Learning-rate schedules: ``lr_at(iteration, iterations_per_epoch, total_iterations)`` gives the lr for
an iteration (counted from 0) and ``observe(metric)`` feeds back an evaluation (used by ``ReduceOnPlateau``).

The Trainer sets ``optimizer.lr = schedule.lr_at(...)`` before each update.
"""

import math

from .errors import ConfigError
from .validation import check_number, check_registered, check_whole_number


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



class ExponentialRamp(Schedule):
    """lr_i = lr_min * (lr_max / lr_min) ** (i / (n - 1)): the LR range test's ramp over n iterations.

    Not in ``SCHEDULES``: it is the range test's instrument, not a way to train.
    """

    name = "ramp"
    hyper = ("lr_max", "iterations")

    def __init__(self, lr_min, lr_max, iterations):
        super().__init__(lr_min)
        self.lr_max, self.iterations = lr_max, iterations

    @property
    def lr_min(self):
        return self.base_lr

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        return self.lr_min * (self.lr_max / self.lr_min) ** (iteration / max(1, self.iterations - 1))


SCHEDULES = {cls.name: cls for cls in (Constant, StepDecay, Exponential, Cosine, ReduceOnPlateau)}


def make_schedule(name, base_lr, **settings):
    """Build a schedule by name (``constant``, ``step``, ``exponential``, ``cosine``, ``plateau``)."""
    cls, _ = check_registered("schedule", SCHEDULES, name, ("base_lr",), settings)
    return cls(base_lr, **settings)
