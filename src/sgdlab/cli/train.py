"""``sgdlab train``: train a network into a run folder, or resume one."""

import dataclasses
import os

from ..errors import SgdlabError
from .args import add_config_flags, config_from_args


def default_run_name(config):
    name = os.path.splitext(os.path.basename(config.dataset.rstrip("/")))[0] or "run"
    base = os.path.join("runs", f"{name}-{'-'.join(map(str, config.layers)) or 'linear'}-{config.optimizer}")
    candidate, k = base, 1
    while os.path.exists(candidate):
        k += 1
        candidate = f"{base}-{k}"
    return candidate


def cmd_train(args):
    from ..run import EXIT_CODES, print_summary, train_run

    if args.resume is not None:                     # "" is a (bad) run folder, not "no --resume"
        from ..config import TrainConfig

        given = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)]
        given += [n for n in ("config", "out") if getattr(args, n) is not None] + \
            (["overwrite"] if args.overwrite else [])
        if given:
            raise SgdlabError(f"--resume continues {args.resume} with its saved settings: drop "
                              f"{', '.join('--' + n.replace('_', '-') for n in given)}")
        out = args.resume
        summary = train_run(None, out, quiet=args.quiet, resume=True, callbacks=_tensorboard(args, out))
        print_summary(summary, out)
        return 143 if summary["status"] == "interrupted" and summary.get("signal") == 15 else \
            EXIT_CODES[summary["status"]]
    config = config_from_args(args)
    out = default_run_name(config) if args.out is None else args.out
    summary = train_run(config, out, overwrite=args.overwrite, quiet=args.quiet, callbacks=_tensorboard(args, out))
    print_summary(summary, out)
    if summary["status"] == "interrupted" and summary.get("signal") == 15:
        return 143
    return EXIT_CODES[summary["status"]]


def _tensorboard(args, out):
    """[TensorBoard callback writing into DIR/RUN_NAME] for --tensorboard DIR, else []."""
    if not args.tensorboard:
        return []
    from ..tensorboard_log import TensorBoard, run_log_dir

    callback = TensorBoard(run_log_dir(args.tensorboard, out), overwrite=args.overwrite)
    if not args.resume:
        callback.check_fresh()  # before the run folder is touched
    return [callback]


def add_parser(sub):
    train = sub.add_parser("train", help="train a network and write a run folder",
                           description="Train an MLP by mini-batch SGD; writes runs/NAME/ (config.json, "
                                       "metrics.csv, summary.json, model.safetensors, loss.png, accuracy.png).")
    add_config_flags(train)
    train.add_argument("--out", help="run folder (default runs/DATASET-LAYERS-OPTIMIZER)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.add_argument("--resume", metavar="RUN", help="continue RUN (a run folder) from its checkpoint.safetensors")
    train.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard event files to DIR/RUN_NAME "
                       "(losses, accuracies, lr, weight histograms); view with tensorboard --logdir DIR.  Needs "
                       "pip install 'sgdlab[tensorboard]'")
    train.set_defaults(handler=cmd_train)
