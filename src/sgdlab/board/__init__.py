"""``sgdlab board``: a local web page for run folders and a playground that trains a small network live.

``runs`` reads run folders under one root (never outside it: names are single
path components, symlinks that leave the root are refused); ``playground``
holds the live sessions, each a real ``MLP``, optimizer and ``BatchSampler``
trained by ``training.Trainer``; ``server`` is the HTTP layer (the standard
library's ``ThreadingHTTPServer`` on 127.0.0.1), serving the page's files from
``board_static/`` and plotly.js from the installed ``plotly`` package.  Every
parameter from the page is checked against the limits in ``limits``; anything
else is a 400 with a one-line message, never a traceback.
"""

from ..training import DIVERGENCE_FACTOR
from .limits import (MAX_BODY, MAX_CURVE, MAX_GRID, MAX_HIDDEN_LAYERS, MAX_ITERATIONS, MAX_LR,
                     MAX_QUERY, MAX_RUNS, MAX_SESSIONS, MAX_UNITS, MAX_WEIGHT_DECAY, N_TEST, N_TRAIN, PLAY_DATASETS,
                     WORK_BUDGET, BadRequest, limits)
from .playground import Session, Sessions, parse_play_settings, playground_data
from .runs import NAME, RunStore, plotly_js_path, read_csv_rows, read_json
from .server import STATIC_DIR, STATIC_FILES, BoardHandler, BoardServer, serve

__all__ = ["DIVERGENCE_FACTOR", "MAX_BODY", "MAX_CURVE", "MAX_GRID", "MAX_HIDDEN_LAYERS", "MAX_ITERATIONS", "MAX_LR",
           "MAX_QUERY", "MAX_RUNS", "MAX_SESSIONS", "MAX_UNITS", "MAX_WEIGHT_DECAY", "N_TEST", "N_TRAIN",
           "PLAY_DATASETS", "WORK_BUDGET", "BadRequest", "limits", "Session", "Sessions", "parse_play_settings",
           "playground_data", "NAME", "RunStore", "plotly_js_path", "read_csv_rows", "read_json", "STATIC_DIR",
           "STATIC_FILES", "BoardHandler", "BoardServer", "serve"]
