"""``sgdlab board``: the local web page of runs and the playground."""

from .args import number_type


def cmd_board(args):
    from ..board import serve

    return serve(args.runs_dir, host=args.host, port=args.port, verbose=args.verbose)


def add_parser(sub):
    board = sub.add_parser("board", help="a local web page: browse run folders, train a network live",
                           description="Serve a page on 127.0.0.1 with two tabs: Runs (every run folder and "
                                       "sweep under RUNS_DIR, live curves) and Playground (train a small network "
                                       "on 2-D data, step by step).  Needs the extra: pip install 'sgdlab[board]'.")
    board.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                       help="folder of run folders (default ./runs)")
    board.add_argument("--port", type=number_type(int), default=8765, help="port (default 8765; 0 picks a free one)")
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    board.add_argument("--verbose", action="store_true", help="log every request")
    board.set_defaults(handler=cmd_board)
