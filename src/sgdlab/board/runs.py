"""Reading run folders and sweeps under one root, never outside it, while they may still be growing."""

import importlib.util
import os
import re
import stat
from http import HTTPStatus

from ..errors import ConfigError, SgdlabError
from ..safetensors_io import load_json_text
from ..tables import number_or_text, records
from .limits import MAX_RUNS, BadRequest

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+,-]{0,127}$")


def plotly_js_path():
    """plotly.min.js inside the installed ``plotly`` package (found without importing it), or None."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "package_data", "plotly.min.js")
    return path if os.path.isfile(path) else None


def _is_file(path):
    return path is not None and os.path.isfile(path)


def read_regular(path, max_bytes):
    """Up to ``max_bytes`` + 1 bytes of ``path`` if it is a regular file, else None.

    Opened without blocking and checked with fstat before reading: a FIFO (or a device) named
    metrics.csv would otherwise block the reading thread, and with it every /api/runs.
    """
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(max_bytes + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_json(path, max_bytes=1 << 20):
    """A JSON file's value, or None when it is missing (or None), not a regular file, over ``max_bytes``,
    half-written, not JSON, nested too deeply or holding a huge number."""
    raw = read_regular(path, max_bytes)
    if raw is None or len(raw) > max_bytes:
        return None
    try:
        return load_json_text(raw.decode("utf-8"), path, constants=True)
    except (UnicodeDecodeError, SgdlabError):
        return None


def read_csv_rows(path, max_bytes=16 << 20):
    """Rows of a CSV as dicts of float/None/str; a last line without its newline (being written) is ignored.

    Read only from a regular file (a FIFO named metrics.csv must not block the board)."""
    raw = read_regular(path, max_bytes)
    if raw is None:
        return []
    if len(raw) > max_bytes:
        raw = raw[: raw.rfind(b"\n", 0, max_bytes) + 1]
    if not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    return records(raw, number_or_text)


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
            try:
                runs.append(self.summary(name, path))
            except Exception as exc:  # noqa: BLE001 - one broken run is shown broken, never failing the list
                runs.append({"name": name, "status": "broken", "config": {}, "summary": None, "rows": 0,
                             "last": None, "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
        return True

    def summary(self, name, path):
        config = read_json(self.file(path, "config.json")) or {}
        summary_path = self.file(path, "summary.json")
        summary = read_json(summary_path)
        rows = read_csv_rows(self.file(path, "metrics.csv"))
        status = summary.get("status", "unknown") if isinstance(summary, dict) else \
            "broken" if _is_file(summary_path) and os.path.getsize(summary_path) else "running"
        if not isinstance(status, str):
            status = "broken"
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
