"""The board's HTTP layer: the standard library's ``ThreadingHTTPServer``, its routes, and ``serve``."""

import json
import math
import os
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigError, SgdlabError
from ..safetensors_io import load_json_text
from .limits import MAX_BODY, MAX_BODY_DEPTH, MAX_GRID, MAX_QUERY, READ_TIMEOUT, BadRequest, limits
from .playground import Sessions, _number, parse_play_settings
from .runs import RunStore, plotly_js_path

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "board_static")
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}


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

    def setup(self):
        self.timeout = self.server.read_timeout      # StreamRequestHandler puts it on the socket: no idle hold
        super().setup()

    def _handle(self, method):
        try:
            self._check_host()
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

    def _check_host(self):
        """Refuse a Host header that is not an address this server answers on (DNS rebinding: a page of
        evil.example resolved to 127.0.0.1 would send Host: evil.example)."""
        host = self.headers.get("Host", "")
        if host.lower() not in self.server.host_names:
            self.close_connection = True
            raise BadRequest(f"Host {host[:80]!r} is not this board's address: open {self.server.url}")

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
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 12):
            self.close_connection = True        # what follows is not a request: never parse it as one
            raise BadRequest(f"Content-Length {text[:20]!r} is not a whole number of bytes")
        length = int(text)
        if length > MAX_BODY:
            self.close_connection = True
            raise BadRequest(f"request body of {length} bytes is too large (at most {MAX_BODY})",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        raw = self.rfile.read(length) if length > 0 else b"{}"
        if len(raw) < length:
            self.close_connection = True
            raise BadRequest(f"the request body ended after {len(raw)} of {length} bytes")
        try:
            return load_json_text(raw.decode("utf-8"), "the request body", limit=MAX_BODY_DEPTH, error=BadRequest)
        except UnicodeDecodeError:
            raise BadRequest("the request body is not UTF-8 JSON") from None

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
            if not (grid.isascii() and grid.isdigit() and len(grid) <= 4 and 2 <= int(grid) <= MAX_GRID):
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


class BoardServer(ThreadingHTTPServer):
    """The board's HTTP server: run folders under ``root`` plus the playground sessions."""

    daemon_threads = True
    request_queue_size = 512       # listen backlog: a burst of connections waits to be accepted, not refused

    def __init__(self, root, host="127.0.0.1", port=8765, verbose=False, read_timeout=READ_TIMEOUT):
        self.runs = RunStore(root)
        self.sessions = Sessions()
        self.plotly_js = plotly_js_path()
        self.verbose = verbose
        self.read_timeout = read_timeout
        super().__init__((host, port), BoardHandler)
        self.host_names = host_names(host, self.server_address[1])

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def host_names(host, port):
    """The Host header values a request to this server may carry: its address (and localhost for a loopback
    address) with the port, and without it for port 80.  A wildcard bind accepts this machine's name too."""
    names = {host}
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    if host in ("0.0.0.0", "::", ""):
        names |= {"127.0.0.1", "localhost", "[::1]", socket.gethostname(), socket.getfqdn()}
    names = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names}
    return {f"{n}:{port}".lower() for n in names} | ({n.lower() for n in names} if port == 80 else set())


def serve(root, host="127.0.0.1", port=8765, verbose=False, stream=None):
    """Run the board until Ctrl-C (returns 0) or SIGTERM (returns 143, as other commands stopped by it)."""
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
    previous, received = {}, []
    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            received.append(signum)
            raise KeyboardInterrupt

        # SIGINT too, explicitly (as `sgdlab train` does): a process started in the background by a
        # non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:                                     # a signal right after the line below still ends here
        print(f"sgdlab board: serving {server.runs.root} on {server.url} (Ctrl-C stops)", file=stream, flush=True)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("sgdlab board: stopped", file=stream, flush=True)
    return 143 if signal.SIGTERM in received else 0     # Ctrl-C is how a board is meant to end: 0
