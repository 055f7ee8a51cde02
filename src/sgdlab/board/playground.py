"""The playground: a small network trained live on 2-D data, one request at a time, its every step reported."""

import secrets
import sys
import threading
import time
from collections import OrderedDict
from http import HTTPStatus

import numpy as np

from ..callbacks import Callback
from ..validation import check_choice, check_number
from .limits import (MAX_CURVE, MAX_HIDDEN_LAYERS, MAX_ITERATIONS, MAX_LR, MAX_SESSIONS,
                     MAX_UNITS, MAX_WEIGHT_DECAY, N_TEST, N_TRAIN, PLAY_DATASETS, WORK_BUDGET, BadRequest)


def playground_data(name, seed=0, noise=None):
    """(train, test) Datasets of N_TRAIN and N_TEST samples for a playground dataset, split from one draw."""
    from ..data import Dataset, make_blobs, make_circles, make_spirals, make_xor

    n = N_TRAIN + N_TEST
    if name == "spirals":
        full = make_spirals(n_samples=n, noise=0.2 if noise is None else noise, seed=seed)
    elif name == "circles":
        full = make_circles(n_samples=n, noise=0.1 if noise is None else noise, seed=seed)
    elif name == "xor":
        full = make_xor(n_samples=n, noise=0.1 if noise is None else noise, seed=seed)
    elif name == "blobs":
        full = make_blobs(n_samples=n, n_classes=3, spread=1.5 if noise is None else 1 + 5 * noise, seed=seed)
    else:
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1.0, 1.0, size=(n, 1))
        t = 2.0 * x - 0.5 + (0.2 if noise is None else noise) * rng.standard_normal((n, 1))
        full = Dataset(x, t, name="line")
    order = np.random.default_rng(seed + 1).permutation(n)
    return full.subset(np.sort(order[:N_TRAIN])), full.subset(np.sort(order[N_TRAIN:]))


def _choice(params, key, allowed, default):
    return check_choice(key, params.get(key, default), allowed, verb="is not allowed: choose one of")


def _number(params, key, default, low, high, integer=False, low_open=False):
    return check_number(key, params.get(key, default), low, high, low_open=low_open, integer=integer)


def parse_play_settings(params):
    """Validate a playground request's settings against the board's limits; returns a plain dict."""
    from ..config import CHOICES

    if not isinstance(params, dict):
        raise BadRequest("the request body must be a JSON object")
    known = {"dataset", "layers", "activation", "optimizer", "lr", "batch_size", "weight_decay", "gradient",
             "seed", "noise"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise BadRequest(f"unknown setting {unknown[0][:40]!r}: allowed are {', '.join(sorted(known))}")
    s = {"dataset": _choice(params, "dataset", PLAY_DATASETS, "spirals"),
         "activation": _choice(params, "activation", CHOICES["activation"], "relu"),
         "optimizer": _choice(params, "optimizer", CHOICES["optimizer"], "adam"),
         "gradient": _choice(params, "gradient", CHOICES["gradient"], "backprop"),
         "lr": _number(params, "lr", 0.01, 0, MAX_LR, low_open=True),
         "batch_size": _number(params, "batch_size", 32, 1, N_TRAIN, integer=True),
         "weight_decay": _number(params, "weight_decay", 0.0, 0, MAX_WEIGHT_DECAY),
         "seed": _number(params, "seed", 0, 0, 2**31 - 1, integer=True)}
    noise = params.get("noise")
    s["noise"] = None if noise is None else _number(params, "noise", 0, 0, 1)
    layers = params.get("layers", [16, 16])
    if isinstance(layers, str):
        try:
            layers = [int(p) for p in layers.split(",") if p.strip()]
        except ValueError:
            raise BadRequest(f"layers={layers[:40]!r} is not allowed: give hidden sizes like 16,16") from None
    if (not isinstance(layers, list) or len(layers) > MAX_HIDDEN_LAYERS
            or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_UNITS for n in layers)):
        raise BadRequest(f"layers={str(layers)[:60]} is not allowed: at most {MAX_HIDDEN_LAYERS} hidden layers "
                         f"of 1..{MAX_UNITS} units")
    s["layers"] = [] if s["dataset"] == "line" else layers
    return s


class _Watch(Callback):
    """The playground's hooks on the loop: the parameters before each step (reported by ``step``, and
    where a diverging step goes back to) and, for a 2-parameter model, the path they take."""

    def __init__(self, session):
        self.session = session
        self.before = session.model.params.copy()

    def before_batch(self, trainer):
        np.copyto(self.before, trainer.model.params)
        np.copyto(trainer.last_good_params, trainer.model.params)

    def after_step(self, trainer):
        path = self.session.path
        if path is not None:
            path.append(trainer.model.params.tolist())
            del path[:-MAX_CURVE]


class Session:
    """One playground: data, model, optimizer and sampler, stepped through ``training.Trainer`` under a lock."""

    def __init__(self, settings):
        from ..model import MLP
        from ..optimizers import get_optimizer
        from ..training import DIVERGENCE_FACTOR, Trainer

        self.settings = settings
        self.train, self.test = playground_data(settings["dataset"], settings["seed"], settings["noise"])
        regression = not self.train.is_classification
        n_out = self.train.t.shape[1] if regression else self.train.n_classes
        self.model = MLP([self.train.n_features, *settings["layers"], n_out], activation=settings["activation"],
                         loss="mse" if regression else "softmax_cross_entropy", seed=settings["seed"],
                         dtype=np.float64, weight_decay=settings["weight_decay"])
        self.optimizer = get_optimizer(settings["optimizer"], settings["lr"])
        work = self.model.params.size * settings["batch_size"]
        budget = WORK_BUDGET[settings["gradient"]]
        if work > budget:
            raise BadRequest(f"{self.model.params.size} parameters x batch {settings['batch_size']} is too much for "
                             f"the {settings['gradient']} gradient (at most {budget:.0e} per iteration): use "
                             f"smaller layers or batch")
        self.max_iterations = int(min(MAX_ITERATIONS, budget // work))
        self.curve = []
        self.path = [self.model.params.tolist()] if self.model.params.size == 2 else None
        self.watch = _Watch(self)
        # no end and no evaluations of its own: each request runs some iterations, then ``_record`` evaluates
        self.trainer = Trainer(self.model, self.train, self.optimizer, batch_size=settings["batch_size"],
                               iterations=sys.maxsize, eval_every=sys.maxsize, sampling="shuffle",
                               seed=settings["seed"], callbacks=[self.watch], gradient=settings["gradient"],
                               progress=False, divergence_factor=DIVERGENCE_FACTOR, param_check_every=1)
        self.sampler = self.trainer.sampler
        self.diverged = None
        self.lock = threading.Lock()
        self.used = time.monotonic()
        self._record()

    @property
    def iteration(self):
        return self.trainer.iteration

    def _iterate(self, iterations=1):
        """``iterations`` times draw -> gradient -> update on the Trainer; 409 once it has diverged."""
        if self.diverged:
            raise BadRequest(f"this session diverged ({self.diverged}): reset it, with a smaller lr",
                             HTTPStatus.CONFLICT)
        with np.errstate(over="ignore", invalid="ignore"):
            history = self.trainer.run(iterations=iterations)
        del history.iteration_loss[:-MAX_CURVE]
        if history.status == "diverged":
            self.diverged = history.stopped_reason
            raise BadRequest(f"diverged: {self.diverged}; reset with a smaller lr", HTTPStatus.CONFLICT)

    def _record(self):
        train_loss, train_acc = self.model.evaluate(self.train)
        test_loss, test_acc = self.model.evaluate(self.test)
        point = {"iteration": self.iteration, "train_loss": train_loss, "test_loss": test_loss,
                 "train_acc": train_acc, "test_acc": test_acc}
        if not self.curve or self.curve[-1]["iteration"] != self.iteration:
            self.curve.append(point)
            del self.curve[:-MAX_CURVE]
        return point

    def train_for(self, iterations):
        """``iterations`` iterations, then one evaluation on train and test; returns the state."""
        try:
            self._iterate(iterations)
        finally:
            self._record()
        return self.state()

    def step(self):
        """One iteration, reported as its four steps."""
        self._iterate(1)
        trainer, before = self.trainer, self.watch.before
        indices, xb, tb, loss_before = trainer.indices, trainer.xb, trainer.tb, trainer.loss
        grads = self.model.grads
        layers = []
        for k, sl in self.model.param_slices:
            layer = self.model.layers[k]
            delta = self.model.params[sl] - before[sl]
            layers.append({"layer": k, "name": type(layer).__name__, "shape": list(getattr(layer, "shape", ())),
                           "grad_norm": float(np.linalg.norm(grads[sl])),
                           "param_norm_before": float(np.linalg.norm(before[sl])),
                           "param_norm_after": float(np.linalg.norm(self.model.params[sl])),
                           "update_norm": float(np.linalg.norm(delta))})
        loss_after = self.model.loss(xb, tb)
        report = {"iteration": self.iteration,
                  "batch": {"indices": indices.tolist(), "size": int(len(indices))},
                  "gradient": {"method": self.settings["gradient"], "norm": float(np.linalg.norm(grads)),
                               "layers": layers},
                  "update": {"optimizer": self.settings["optimizer"], "lr": self.optimizer.lr,
                             "norm": float(np.linalg.norm(self.model.params - before))},
                  "loss": {"before": loss_before, "after": loss_after}}
        if self.model.params.size == 2:
            report["gradient"]["vector"] = grads.tolist()
            report["update"]["before"], report["update"]["after"] = before.tolist(), self.model.params.tolist()
        self._record()
        report["state"] = self.state()
        return report

    def state(self):
        last = self.curve[-1]
        return {"iteration": self.iteration, "settings": self.settings, "n_params": int(self.model.params.size),
                "max_iterations": self.max_iterations, "train_loss": last["train_loss"], "test_loss": last["test_loss"], "train_acc": last["train_acc"],
                "test_acc": last["test_acc"], "diverged": self.diverged}

    def data(self):
        """The training and test points (x, label) for the scatter plots."""
        def points(ds):
            return {"x": ds.x.tolist(), "t": ds.t.ravel().tolist()}

        return {"train": points(self.train), "test": points(self.test),
                "n_classes": self.train.n_classes, "task": self.model.task}

    def bounds(self):
        x = self.train.x
        low, high = x.min(axis=0), x.max(axis=0)
        pad = 0.1 * (high - low) + 1e-9
        return low - pad, high + pad

    def boundary(self, grid):
        """Class probabilities on a grid x grid lattice over the data (for 1-D data: the model's line)."""
        low, high = self.bounds()
        if self.train.n_features == 1:
            xs = np.linspace(low[0], high[0], grid)
            return {"x": xs.tolist(), "y": self.model.forward(xs[:, None]).ravel().tolist()}
        xs, ys = np.linspace(low[0], high[0], grid), np.linspace(low[1], high[1], grid)
        gx, gy = np.meshgrid(xs, ys)
        proba = self.model.predict_proba(np.column_stack([gx.ravel(), gy.ravel()]))
        return {"x": xs.tolist(), "y": ys.tolist(), "classes": proba.argmax(axis=1).reshape(grid, grid).tolist(),
                "confidence": np.round(proba.max(axis=1), 4).reshape(grid, grid).tolist()}

    def contour(self, grid):
        """For a 2-parameter model: the full training loss over a (w, b) lattice around the path so far."""
        if self.model.params.size != 2:
            raise BadRequest(f"the loss contour needs a 2-parameter model (this one has {self.model.params.size}):"
                             f" use the line dataset")
        path = np.array(self.path)
        centre = np.array([2.0, -0.5])
        span = max(2.0, float(np.max(np.abs(path - centre))) * 1.2)
        ws = np.linspace(centre[0] - span, centre[0] + span, grid)
        bs = np.linspace(centre[1] - span, centre[1] + span, grid)
        probe = self.model.copy()
        z = np.empty((grid, grid))
        x, t = self.train.x, self.train.t
        for i, b in enumerate(bs):
            for j, w in enumerate(ws):
                probe.params[...] = (w, b)
                z[i, j] = probe.loss(x, t)
        return {"w": ws.tolist(), "b": bs.tolist(), "loss": z.tolist(), "path": path.tolist()}


class Sessions:
    """At most ``limit`` playground sessions by id; creating one more drops the least recently used."""

    def __init__(self, limit=MAX_SESSIONS):
        self.limit, self.items, self.lock = limit, OrderedDict(), threading.Lock()

    def create(self, settings):
        session = Session(settings)
        with self.lock:
            while len(self.items) >= self.limit:
                self.items.popitem(last=False)
            key = secrets.token_hex(8)
            self.items[key] = session
        return key, session

    def get(self, key):
        with self.lock:
            session = self.items.get(key) if isinstance(key, str) else None
            if session is None:
                raise BadRequest("no such playground session (it may have expired): reset to start a new one",
                                 HTTPStatus.NOT_FOUND)
            self.items.move_to_end(key)
        return session
