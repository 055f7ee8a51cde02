"""The ``sgdlab`` command: train | gradcheck | demo | ...

One module per command (``cli/train.py`` ...), each with ``add_parser(sub)``; to add a command, write its
module and list it in ``COMMANDS``.  Bad input prints one line ``sgdlab: error: ...`` and exits 2, never a
traceback.  Exit codes: 0 done (also early-stopped), 1 diverged, 2 bad input, 130/143 interrupted.
"""

import sys

from ..errors import SgdlabError
from . import board, data, demo, export, gradcheck, predict, sweep, train
from .args import Parser, config_from_args
from .predict import read_inputs

__all__ = ["COMMANDS", "build_parser", "config_from_args", "main", "read_inputs"]

COMMANDS = (train, gradcheck, demo, data, board, predict, sweep, export)


def build_parser():
    parser = Parser(prog="sgdlab", description="Mini-batch SGD you can watch: draw a batch, compute the "
                                                  "gradient, update the parameters, repeat.")
    parser.add_argument("--version", action="version", version=f"sgdlab {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _version():
    from .. import __version__

    return __version__


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except SgdlabError as exc:
        print(f"sgdlab: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"sgdlab: error: could not read or write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sgdlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
