"""``sgdlab board``: a local web page for run folders and a playground that trains a small network live.

The server is the standard library's ``ThreadingHTTPServer`` on 127.0.0.1.  It
reads run folders under one root (never outside it: names are single path
components, symlinks that leave the root are refused), serves the page's files
from ``board_static/`` and plotly.js from the installed ``plotly`` package, and
holds a bounded number of playground sessions, each a real ``MLP``, optimizer
and ``BatchSampler``.  Every parameter from the page is checked against the
limits below; anything else is a 400 with a one-line message, never a traceback.
"""

import csv
import importlib.util
import io
import json
import math
import os
import re
import secrets
import sys
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from .errors import ConfigError, SgdlabError

STATIC_DIR = os.path.join(os.path.dirname(__file__), "board_static")
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
MAX_SESSIONS = 8               # playground sessions kept; the least recently used is dropped first
MAX_HIDDEN_LAYERS = 4
MAX_UNITS = 64                 # per hidden layer
MAX_ITERATIONS = 500           # per train request
MAX_LR = 10.0
MAX_WEIGHT_DECAY = 1.0
MAX_GRID = 100                 # decision-boundary grid points per axis
MAX_QUERY = 512                # bytes of query string
MAX_BODY = 4096                # bytes of JSON request body
MAX_CURVE = 2000               # loss-curve points kept per session
MAX_RUNS = 500                 # run folders listed
N_TRAIN, N_TEST = 300, 150
WORK_BUDGET = {"backprop": 2e8, "numerical": 1e6}  # parameters x batch samples x iterations, per request
DIVERGENCE_FACTOR = 100.0      # a batch loss this many times the first one stops the session as diverged
PLAY_DATASETS = ("spirals", "circles", "xor", "blobs", "line")  # line: y = w x + b, a 2-parameter model
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+,-]{0,127}$")


class BadRequest(SgdlabError):
    """A request the board refuses: carries its HTTP status (400 unless told)."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


# -- reading run folders -------------------------------------------------------------------------------


def plotly_js_path():
    """plotly.min.js inside the installed ``plotly`` package (found without importing it), or None."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "package_data", "plotly.min.js")
    return path if os.path.isfile(path) else None


def _is_file(path):
    return path is not None and os.path.isfile(path)


def read_json(path):
    """A JSON file's value, or None when it is missing (or None), half-written or not JSON."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_csv_rows(path, max_bytes=16 << 20):
    """Rows of a CSV as dicts of float/None/str; a last line without its newline (being written) is ignored."""
    if path is None:
        return []
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError:
        return []
    if len(raw) > max_bytes:
        raw = raw[: raw.rfind(b"\n", 0, max_bytes) + 1]
    if not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    lines = list(csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"))))
    if not lines:
        return []
    header = lines[0]
    return [{k: _cell(v) for k, v in zip(header, line)} for line in lines[1:] if len(line) == len(header)]


def _cell(text):
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else None


class RunStore:
    """The run folders and sweeps under ``root``, read on every request (folders may be growing)."""

    def __init__(self, root):
        self.root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise ConfigError(f"runs folder {os.fspath(root)!r} does not exist: give a folder of run folders")

    def resolve(self, name):
        """The folder for ``name`` (``run`` or ``sweep/trials/id``), refusing anything that leaves the root."""
        if not isinstance(name, str) or not name:
            raise BadRequest("give a run name")
        parts = name.split("/")
        if len(parts) > 3 or not all(NAME.match(p) and p not in (".", "..") and ".." not in p for p in parts):
            raise BadRequest(f"run name {name[:80]!r} is not allowed: use a folder name under the runs folder")
        path = os.path.realpath(os.path.join(self.root, *parts))
        if os.path.commonpath([path, self.root]) != self.root or path == self.root:
            raise BadRequest(f"run {name!r} is outside the runs folder", HTTPStatus.NOT_FOUND)
        if not os.path.isdir(path):
            raise BadRequest(f"run {name!r} does not exist", HTTPStatus.NOT_FOUND)
        return path

    def file(self, folder, name):
        """``folder/name`` when it resolves inside the root, else None (a symlink out)."""
        path = os.path.realpath(os.path.join(folder, name))
        return path if os.path.commonpath([path, self.root]) == self.root else None

    def _children(self, path):
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return []
        return [n for n in names if NAME.match(n) and os.path.isdir(os.path.join(path, n))][:MAX_RUNS]

    def list(self):
        """{"runs": [...], "sweeps": [...]}: every run folder (also a sweep's trials) and every sweep."""
        runs, sweeps = [], []
        for name in self._children(self.root):
            try:
                path = self.resolve(name)
            except BadRequest:
                continue                                  # a symlink out of the root
            if _is_file(self.file(path, "sweep.csv")):
                sweeps.append({"name": name, "trials": len(read_csv_rows(self.file(path, "sweep.csv")))})
                for child in self._children(path):               # trials/<id>/ and winner/
                    if not self._add_run(runs, f"{name}/{child}"):
                        for trial in self._children(os.path.join(path, child)):
                            self._add_run(runs, f"{name}/{child}/{trial}")
            else:
                self._add_run(runs, name)
        return {"root": self.root, "runs": runs, "sweeps": sweeps}

    def _add_run(self, runs, name):
        """Append the run folder ``name`` to ``runs``; False when it is not one."""
        try:
            path = self.resolve(name)
        except BadRequest:
            return False
        if not any(os.path.exists(os.path.join(path, f)) for f in ("config.json", "metrics.csv", "summary.json")):
            return False
        if len(runs) < MAX_RUNS:
            runs.append(self.summary(name, path))
        return True

    def summary(self, name, path):
        config = read_json(self.file(path, "config.json")) or {}
        summary = read_json(self.file(path, "summary.json"))
        rows = read_csv_rows(self.file(path, "metrics.csv"))
        status = summary.get("status", "unknown") if isinstance(summary, dict) else "running"
        return {"name": name, "status": status, "config": config if isinstance(config, dict) else {},
                "summary": summary if isinstance(summary, dict) else None, "rows": len(rows),
                "last": rows[-1] if rows else None}

    def run(self, name):
        """One run: its config, summary and every metrics.csv row."""
        path = self.resolve(name)
        detail = self.summary(name, path)
        detail["metrics"] = read_csv_rows(self.file(path, "metrics.csv"))
        return detail

    def sweep(self, name):
        """One sweep: the rows of its sweep.csv."""
        path = self.resolve(name)
        if not _is_file(self.file(path, "sweep.csv")):
            raise BadRequest(f"{name!r} is not a sweep (no sweep.csv)", HTTPStatus.NOT_FOUND)
        return {"name": name, "rows": read_csv_rows(self.file(path, "sweep.csv"))}


# -- the playground ------------------------------------------------------------------------------------


def playground_data(name, seed=0, noise=None):
    """(train, test) Datasets of N_TRAIN and N_TEST samples for a playground dataset, split from one draw."""
    from .data import Dataset, make_blobs, make_circles, make_spirals, make_xor

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
    value = params.get(key, default)
    if value not in allowed:
        raise BadRequest(f"{key}={str(value)[:40]!r} is not allowed: choose one of {', '.join(allowed)}")
    return value


def _number(params, key, default, low, high, integer=False, low_open=False):
    value = params.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        rule = f"{'>' if low_open else '>='} {low} and <= {high}"
        raise BadRequest(f"{key}={str(value)[:40]} is not allowed: use a {'whole ' if integer else ''}number {rule}")
    return int(value) if integer else float(value)


def parse_play_settings(params):
    """Validate a playground request's settings against the board's limits; returns a plain dict."""
    from .config import CHOICES

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


class Session:
    """One playground: data, model, optimizer and sampler, stepped by the four steps under a lock."""

    def __init__(self, settings):
        from .batches import BatchSampler
        from .model import MLP
        from .optimizers import get_optimizer

        self.settings = settings
        self.train, self.test = playground_data(settings["dataset"], settings["seed"], settings["noise"])
        regression = not self.train.is_classification
        n_out = self.train.t.shape[1] if regression else self.train.n_classes
        self.model = MLP([self.train.n_features, *settings["layers"], n_out], activation=settings["activation"],
                         loss="mse" if regression else "softmax_cross_entropy", seed=settings["seed"],
                         dtype=np.float64, weight_decay=settings["weight_decay"])
        self.optimizer = get_optimizer(settings["optimizer"], settings["lr"])
        self.sampler = BatchSampler(len(self.train), settings["batch_size"], "shuffle", settings["seed"])
        work = self.model.params.size * settings["batch_size"]
        budget = WORK_BUDGET[settings["gradient"]]
        if work > budget:
            raise BadRequest(f"{self.model.params.size} parameters x batch {settings['batch_size']} is too much for "
                             f"the {settings['gradient']} gradient (at most {budget:.0e} per iteration): use "
                             f"smaller layers or batch")
        self.max_iterations = int(min(MAX_ITERATIONS, budget // work))
        self.iteration = 0
        self.curve = []
        self.path = [self.model.params.tolist()] if self.model.params.size == 2 else None
        self.diverged, self.initial_loss, self.good_params = None, None, self.model.params.copy()
        self.lock = threading.Lock()
        self.used = time.monotonic()
        self._record()

    def _gradient(self, xb, tb):
        """Step 2 by backprop or by central differences; returns the loss at the current parameters."""
        if self.settings["gradient"] == "backprop":
            loss, _ = self.model.gradient(xb, tb)
            return loss
        self.model.grads[...] = self.model.numerical_gradient(xb, tb)
        return self.model.loss(xb, tb)

    def _iterate(self):
        """draw -> gradient -> update; returns (indices, x, t, loss before, params before)."""
        if self.diverged:
            raise BadRequest(f"this session diverged ({self.diverged}): reset it, with a smaller lr",
                             HTTPStatus.CONFLICT)
        indices = self.sampler.next().copy()                            # 1. draw a mini-batch
        xb, tb = self.train.batch(indices)
        before = self.model.params.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            loss = self._gradient(xb, tb)                               # 2. compute the gradient
        if self.initial_loss is None:
            self.initial_loss = max(abs(loss), 1e-8) if math.isfinite(loss) else 1.0
        if not (math.isfinite(loss) and loss <= DIVERGENCE_FACTOR * self.initial_loss
                and np.all(np.isfinite(self.model.grads))):
            self.model.params[...] = self.good_params
            self.diverged = (f"lr={self.settings['lr']:g}: batch loss {loss:.4g} at iteration {self.iteration}, "
                             f"{DIVERGENCE_FACTOR:g}x above where it began")
            raise BadRequest(f"diverged: {self.diverged}; reset with a smaller lr", HTTPStatus.CONFLICT)
        self.good_params = before
        self.optimizer.update(self.model.params, self.model.grads)      # 3. update the parameters
        self.iteration += 1                                             # 4. repeat
        if self.path is not None:
            self.path.append(self.model.params.tolist())
            del self.path[:-MAX_CURVE]
        return indices, xb, tb, loss, before

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
            for _ in range(iterations):
                self._iterate()
        finally:
            self._record()
        return self.state()

    def step(self):
        """One iteration, reported as its four steps."""
        indices, xb, tb, loss_before, before = self._iterate()
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


# -- HTTP ----------------------------------------------------------------------------------------------


class BoardHandler(BaseHTTPRequestHandler):
    """GET the page, static files and the JSON API; POST the playground's actions."""

    server_version = "sgdlab-board"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _handle(self, method):
        try:
            route, query = self._parse_target()
            body = self._body() if method == "POST" else {}
            status, payload, content_type = self._dispatch(method, route, query, body)
        except BadRequest as exc:
            status, payload, content_type = exc.status, {"error": str(exc)}, None
        except SgdlabError as exc:
            status, payload, content_type = HTTPStatus.BAD_REQUEST, {"error": str(exc)}, None
        except Exception as exc:  # reported to the client as one line; the traceback stays in the server's log
            import traceback

            traceback.print_exc(file=sys.stderr)
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error ({type(exc).__name__})"}
            content_type = None
        self._send(status, payload, content_type)

    def _parse_target(self):
        target = self.path
        if len(target) > MAX_QUERY + 256:
            raise BadRequest(f"request target of {len(target)} bytes is too long (at most {MAX_QUERY + 256})",
                             HTTPStatus.REQUEST_URI_TOO_LONG)
        parts = urlsplit(target)
        if len(parts.query) > MAX_QUERY:
            raise BadRequest(f"query of {len(parts.query)} bytes is too long (at most {MAX_QUERY})",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        raw = parts.path
        decoded = unquote(unquote(raw))
        if (not raw.startswith("/") or raw.startswith("//") or "\\" in decoded or "\x00" in decoded
                or any(seg in ("..", ".") for seg in decoded.split("/")) or "%2f" in unquote(raw).lower()):
            raise BadRequest(f"path {raw[:80]!r} is not allowed")
        query = {}
        try:
            fields = parse_qs(parts.query, keep_blank_values=True, max_num_fields=16)
        except ValueError:
            raise BadRequest("too many query parameters (at most 16)") from None
        for key, values in fields.items():
            query[key] = values[-1]
        return decoded, query

    def _body(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise BadRequest(f"request body of {length} bytes is too large (at most {MAX_BODY})",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        raw = self.rfile.read(length) if length > 0 else b"{}"
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the request body is not JSON") from None

    def _dispatch(self, method, route, query, body):
        app = self.server
        if method == "GET":
            if route in ("/", "/index.html"):
                return HTTPStatus.OK, _static("index.html"), STATIC_FILES["index.html"]
            if route == "/static/plotly.min.js":
                if app.plotly_js is None:
                    raise BadRequest("plotly is not installed: pip install 'sgdlab[board]'", HTTPStatus.NOT_FOUND)
                with open(app.plotly_js, "rb") as f:
                    return HTTPStatus.OK, f.read(), "text/javascript; charset=utf-8"
            if route.startswith("/static/"):
                name = route[len("/static/"):]
                if name not in STATIC_FILES:
                    raise BadRequest(f"no file {name[:80]!r}", HTTPStatus.NOT_FOUND)
                return HTTPStatus.OK, _static(name), STATIC_FILES[name]
            if route == "/api/runs":
                return HTTPStatus.OK, app.runs.list(), None
            if route == "/api/run":
                return HTTPStatus.OK, app.runs.run(query.get("name")), None
            if route == "/api/sweep":
                return HTTPStatus.OK, app.runs.sweep(query.get("name")), None
            if route == "/api/limits":
                return HTTPStatus.OK, limits(), None
            if route.startswith("/api/play/"):
                session = app.sessions.get(query.get("id"))
                with session.lock:
                    return HTTPStatus.OK, self._play_get(route[len("/api/play/"):], session, query), None
        elif method == "POST":
            if route == "/api/play/create":
                key, session = app.sessions.create(parse_play_settings(body))
                with session.lock:
                    return HTTPStatus.OK, {"id": key, "state": session.state(), "data": session.data()}, None
            if route in ("/api/play/train", "/api/play/step"):
                if not isinstance(body, dict):
                    raise BadRequest("the request body must be a JSON object")
                session = app.sessions.get(body.get("id"))
                with session.lock:
                    session.used = time.monotonic()
                    if route.endswith("step"):
                        return HTTPStatus.OK, session.step(), None
                    n = _number(body, "iterations", 10, 1, session.max_iterations, integer=True)
                    return HTTPStatus.OK, session.train_for(n), None
        else:
            raise BadRequest(f"method {method} is not allowed", HTTPStatus.METHOD_NOT_ALLOWED)
        raise BadRequest(f"no such page {route[:80]!r}", HTTPStatus.NOT_FOUND)

    def _play_get(self, action, session, query):
        if action == "state":
            return session.state()
        if action == "curve":
            return {"curve": session.curve}
        if action == "params":
            return {"params": session.model.params.tolist(), "sizes": session.model.sizes}
        if action in ("boundary", "contour"):
            grid = query.get("grid", "50")
            if not (grid.isdigit() and 2 <= int(grid) <= MAX_GRID):
                raise BadRequest(f"grid={grid[:20]!r} is not allowed: use a whole number from 2 to {MAX_GRID}")
            return session.boundary(int(grid)) if action == "boundary" else session.contour(int(grid))
        raise BadRequest(f"no such playground action {action[:40]!r}", HTTPStatus.NOT_FOUND)

    def _send(self, status, payload, content_type=None):
        if content_type is None:
            body = json.dumps(_finite(payload), allow_nan=False, separators=(",", ":")).encode("utf-8")
            content_type = "application/json"
        else:
            body = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _static(name):
    with open(os.path.join(STATIC_DIR, name), "rb") as f:
        return f.read()


def _finite(value):
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def limits():
    """The bounds the server enforces, for the page's controls."""
    return {"max_hidden_layers": MAX_HIDDEN_LAYERS, "max_units": MAX_UNITS, "max_iterations": MAX_ITERATIONS,
            "max_lr": MAX_LR, "max_weight_decay": MAX_WEIGHT_DECAY, "max_batch_size": N_TRAIN,
            "max_grid": MAX_GRID, "datasets": list(PLAY_DATASETS)}


class BoardServer(ThreadingHTTPServer):
    """The board's HTTP server: run folders under ``root`` plus the playground sessions."""

    daemon_threads = True

    def __init__(self, root, host="127.0.0.1", port=8765, verbose=False):
        self.runs = RunStore(root)
        self.sessions = Sessions()
        self.plotly_js = plotly_js_path()
        self.verbose = verbose
        super().__init__((host, port), BoardHandler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def serve(root, host="127.0.0.1", port=8765, verbose=False, stream=None):
    """Run the board until Ctrl-C (or SIGTERM); returns 0 after closing the socket."""
    import signal

    stream = stream or sys.stdout
    if not (isinstance(port, int) and 0 <= port <= 65535):
        raise ConfigError(f"port={port!r} is not allowed: use a whole number from 0 to 65535")
    try:
        server = BoardServer(root, host, port, verbose)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if server.plotly_js is None:
        print("sgdlab board: plotly is not installed, charts will not draw: pip install 'sgdlab[board]'",
              file=sys.stderr)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise KeyboardInterrupt

        # SIGINT too, explicitly (as `sgdlab train` does): a process started in the background by a
        # non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    print(f"sgdlab board: serving {server.runs.root} on {server.url} (Ctrl-C stops)", file=stream, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("sgdlab board: stopped", file=stream, flush=True)
    return 0
