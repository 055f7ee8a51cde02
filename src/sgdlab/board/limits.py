"""The board's limits (what one request may ask for) and ``BadRequest``, the refusal that carries an HTTP status."""

from http import HTTPStatus

from ..errors import SgdlabError

MAX_SESSIONS = 8               # playground sessions kept; the least recently used is dropped first
MAX_HIDDEN_LAYERS = 4
MAX_UNITS = 64                 # per hidden layer
MAX_ITERATIONS = 500           # per train request
MAX_LR = 10.0
MAX_WEIGHT_DECAY = 1.0
MAX_GRID = 100                 # decision-boundary grid points per axis
MAX_QUERY = 512                # bytes of query string
MAX_BODY = 4096                # bytes of JSON request body
MAX_BODY_DEPTH = 8             # nesting of the JSON request body
READ_TIMEOUT = 10.0            # seconds a connection may sit idle or send a request slowly
MAX_CURVE = 2000               # loss-curve points kept per session
MAX_RUNS = 500                 # run folders listed
N_TRAIN, N_TEST = 300, 150
WORK_BUDGET = {"backprop": 2e8, "numerical": 1e6}  # parameters x batch samples x iterations, per request
PLAY_DATASETS = ("spirals", "circles", "xor", "blobs", "line")  # line: y = w x + b, a 2-parameter model


class BadRequest(SgdlabError):
    """A request the board refuses: carries its HTTP status (400 unless told)."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def limits():
    """The bounds the server enforces, for the page's controls."""
    return {"max_hidden_layers": MAX_HIDDEN_LAYERS, "max_units": MAX_UNITS, "max_iterations": MAX_ITERATIONS,
            "max_lr": MAX_LR, "max_weight_decay": MAX_WEIGHT_DECAY, "max_batch_size": N_TRAIN,
            "max_grid": MAX_GRID, "datasets": list(PLAY_DATASETS)}

