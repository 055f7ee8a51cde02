"""``sgdlab sweep``: many trials of hyper-parameters, or an LR range test."""

import dataclasses
import os

from .args import add_config_flags, config_path, number_type


def cmd_sweep(args):
    """Sweep settings given as flags (``--lr 1e-4:1:log``) or ``--set NAME=VALUES``; see ``sgdlab.sweep``."""
    from ..config import TrainConfig
    from ..errors import ConfigError
    from ..sweep import sweep_command

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {n: getattr(args, n) for n in names if hasattr(args, n)}
    for item in args.set or []:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names:
            raise ConfigError(f"--set {item!r} is not allowed: write NAME=VALUES with NAME one of "
                              f"{', '.join(sorted(names))}")
        settings[name] = values
    base = TrainConfig.from_toml(config_path(args.config)).to_dict() if args.config is not None else {}
    dataset = os.path.splitext(os.path.basename(str(settings.get("dataset", base.get("dataset", "mnist")))))[0]
    return sweep_command(settings, os.path.join("runs", f"sweep-{dataset}") if args.out is None else args.out, base_values=base,
                         trials=args.trials, grid=args.grid, sweep_seed=args.sweep_seed, workers=args.workers,
                         scheduler=args.scheduler, resume=args.resume, overwrite=args.overwrite,
                         halving=args.halving, min_epochs=args.min_epochs, slow_threshold=args.slow_threshold,
                         range_test=args.range_test, lr_min=args.lr_min, lr_max=args.lr_max,
                         range_iterations=args.range_iterations, then_train=args.then_train,
                         final_epochs=args.final_epochs, quiet=args.quiet, tensorboard=args.tensorboard)


def add_parser(sub):
    sweep = sub.add_parser("sweep", help="try many hyper-parameters (local processes or Dask); LR range test",
                           description="Every config flag takes one value, a list a,b,c, or a range LOW:HIGH "
                                       "(uniform) / LOW:HIGH:log (log-uniform), e.g. --lr 1e-4:1:log; layers "
                                       "alternatives are separated by '/'.  Writes OUT/sweep.csv (ranked, updated "
                                       "as each trial ends), sweep.png and trials/<id>/.  A trial is 'diverged' "
                                       "when its loss blew up (> 10x the initial loss), 'too slow' when its best "
                                       "val loss stayed above (1 - SLOW_THRESHOLD) x the initial loss.")
    add_config_flags(sweep, as_text=True, config_help="TOML file of base settings; flags override it")
    number, whole = number_type(float), number_type(int)
    sweep.add_argument("--set", action="append", metavar="NAME=VALUES",
                       help="sweep any setting: --set batch_size=32,100,256 (repeatable)")
    sweep.add_argument("--trials", type=whole, default=8,
                       help="random draws from the ranges, or with --grid the points per range (default 8)")
    sweep.add_argument("--grid", action="store_true", help="ranges become TRIALS evenly (log-)spaced values, "
                                                           "both ends included; trials are all combinations")
    sweep.add_argument("--sweep-seed", type=whole, default=0, help="seed of the random draws (default 0)")
    sweep.add_argument("--workers", type=whole, help="local worker processes, or LocalCluster workers "
                                                     "(default: all cores; BLAS threads = cores / workers)")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="run the trials on Dask: tcp://HOST:8786, or 'local' "
                                                              "for a new LocalCluster (pip install 'sgdlab[dask]')")
    sweep.add_argument("--out", help="sweep folder (default runs/sweep-DATASET)")
    sweep.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished trials")
    sweep.add_argument("--overwrite", action="store_true", help="replace an existing sweep folder")
    sweep.add_argument("--halving", type=whole, nargs="?", const=2, metavar="ETA",
                       help="successive halving: start at --min-epochs, keep the best 1/ETA (default 2) per rung "
                            "with ETA x the epochs, up to --epochs")
    sweep.add_argument("--min-epochs", type=whole, default=1, help="epochs of the first halving rung (default 1)")
    sweep.add_argument("--slow-threshold", type=number, default=0.5,
                       help="'too slow' when the best val loss removed less than this fraction of the initial "
                            "loss (default 0.5)")
    sweep.add_argument("--range-test", action="store_true",
                       help="LR range test: one run with lr growing exponentially per iteration; suggests an lr")
    sweep.add_argument("--lr-min", type=number, default=1e-6, help="range test: first lr (default 1e-6)")
    sweep.add_argument("--lr-max", type=number, default=10.0, help="range test: last lr (default 10)")
    sweep.add_argument("--range-iterations", type=whole, default=200, help="range test: iterations (default 200)")
    sweep.add_argument("--then-train", action="store_true", help="train the winner (or suggested lr) fully "
                                                                 "into OUT/winner")
    sweep.add_argument("--final-epochs", type=whole, help="epochs of --then-train (default max(--epochs, 15))")
    sweep.add_argument("--quiet", action="store_true", help="no per-trial lines")
    sweep.add_argument("--tensorboard", metavar="DIR", help="also write each trial's TensorBoard events to "
                       "DIR/SWEEP_NAME/TRIAL_ID (and --then-train's to .../winner); tensorboard --logdir DIR compares "
                       "them.  Needs pip install 'sgdlab[tensorboard]'")
    sweep.set_defaults(handler=cmd_sweep)
