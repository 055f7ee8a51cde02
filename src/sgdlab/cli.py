"""The ``sgdlab`` command: train | gradcheck | demo | ...

Bad input prints one line ``sgdlab: error: ...`` and exits 2, never a
traceback.  Exit codes: 0 done (also early-stopped), 1 diverged, 2 bad input,
130/143 interrupted.
"""

import argparse
import dataclasses
import os
import sys
import typing

from .errors import SgdlabError

FIELD_HELP = {
    "dataset": "mnist, digits, spirals, blobs, circles, xor, or a path to .npz / .npy / .csv (default mnist)",
    "layers": "hidden layer sizes, e.g. 100 or 256,128 (default 100)",
    "activation": "relu | sigmoid | tanh",
    "loss": "softmax_cross_entropy | mse",
    "optimizer": "sgd | momentum (default) | nesterov | adagrad | rmsprop | adam | adamw",
    "lr": "learning rate (default 0.05)",
    "momentum": "momentum coefficient for momentum/nesterov (default 0.9)",
    "schedule": "learning-rate schedule: constant | step | exponential | cosine | plateau",
    "batch_size": "mini-batch size (default 100)",
    "epochs": "passes over the training set (default 15)",
    "iterations": "train this many iterations instead of --epochs",
    "sampling": "shuffle (a permutation per epoch) | replacement (i.i.d. draws, as in the tutorial) | "
                "block-shuffle (shuffled contiguous blocks: for on-disk stores whose random reads are slow)",
    "weight_decay": "L2 penalty (weight_decay/2)*sum(W^2), added to loss and gradient",
    "dropout": "Dropout rate after each hidden activation (inverted dropout, off at evaluation), e.g. 0.5",
    "batch_norm": "BatchNorm between each hidden Dense and its activation (--batch-norm, or true|false)",
    "clip_norm": "clip the gradient's global L2 norm to this value",
    "patience": "early stopping: evaluations without improvement before stopping (the --early-stopping N flag)",
    "monitor": "metric early stopping watches: val_loss | val_acc | train_loss | train_acc",
    "monitor_mode": "auto (min for losses, max for accuracies) | min | max",
    "start_from_epoch": "early stopping ignores evaluations before this epoch (default 0)",
    "min_delta": "smallest change that counts as an improvement",
    "restore_best": "true|false: put the best evaluation's parameters back at the end (default true)",
    "eval_every": "evaluate every N iterations instead of every epoch",
    "train_metrics": "full (default for train: the whole training set at each evaluation) | running (default for "
                     "sweep: mean loss and accuracy of the batches since the last evaluation, free)",
    "gradient": "backprop | numerical (central differences, the tutorial's gradient)",
    "dtype": "float32 (fast, default) | float64",
    "seed": "seed of every random choice (default 0)",
    "val_fraction": "fraction of train held out for validation when the dataset has none (default 0.1)",
    "label_column": "CSV datasets: name of the label column",
    "threads": "BLAS threads (default: all cores)",
    "prefetch": "true|false: gather the next batch on a background thread while this one trains (default false)",
    "checkpoint_every": "also write runs/NAME/checkpoint.safetensors every N iterations (always at each epoch's end)",
}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use true or false")


def _number_type(kind):
    def parse(text):
        try:
            return kind(text)
        except ValueError:
            what = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None

    parse.__name__ = kind.__name__
    return parse


def add_config_flags(parser, as_text=False):
    """One flag per TrainConfig field (--batch-size for batch_size ...); unset flags stay absent.

    ``as_text`` keeps every value a string (a sweep's lists and ranges, parsed by ``sweep.parse_values``).
    """
    from .config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, "--early-stopping"] if f.name == "patience" else [flag]
        hint = hints[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        kind = str if as_text else {int: _number_type(int), float: _number_type(float), bool: _bool}.get(base, str)
        bare = {"nargs": "?", "const": True} if base is bool else {}  # --prefetch alone means true
        parser.add_argument(*names, dest=f.name, type=kind, default=argparse.SUPPRESS,
                            help=FIELD_HELP.get(f.name), metavar=f.name.upper(), **bare)


def config_from_args(args):
    from .config import TrainConfig

    values = {}
    if getattr(args, "config", None):
        values.update(TrainConfig.from_toml(args.config).to_dict())
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return TrainConfig.from_dict(values)


def default_run_name(config):
    name = os.path.splitext(os.path.basename(config.dataset.rstrip("/")))[0] or "run"
    base = os.path.join("runs", f"{name}-{'-'.join(map(str, config.layers)) or 'linear'}-{config.optimizer}")
    candidate, k = base, 1
    while os.path.exists(candidate):
        k += 1
        candidate = f"{base}-{k}"
    return candidate


def cmd_train(args):
    from .run import EXIT_CODES, print_summary, train_run

    if args.resume:
        from .config import TrainConfig

        given = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)]
        given += [n for n in ("config", "out") if getattr(args, n)] + (["overwrite"] if args.overwrite else [])
        if given:
            raise SgdlabError(f"--resume continues {args.resume} with its saved settings: drop "
                              f"{', '.join('--' + n.replace('_', '-') for n in given)}")
        out = args.resume
        summary = train_run(None, out, quiet=args.quiet, resume=True)
        print_summary(summary, out)
        return 143 if summary["status"] == "interrupted" and summary.get("signal") == 15 else \
            EXIT_CODES[summary["status"]]
    config = config_from_args(args)
    out = args.out or default_run_name(config)
    summary = train_run(config, out, overwrite=args.overwrite, quiet=args.quiet)
    print_summary(summary, out)
    if summary["status"] == "interrupted" and summary.get("signal") == 15:
        return 143
    return EXIT_CODES[summary["status"]]


def read_inputs(path, n_features):
    """Features to predict from .npy, .npz (``x``/``X`` or its only array) or .csv (optional header row)."""
    import tokenize
    import zipfile
    import zlib

    import numpy as np

    from .errors import DataError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"input {path!r} does not exist: give a .npy, .npz or .csv file")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            npz = np.load(path, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(f"input {path!r} is a .npy array named .npz: rename it to .npy")
            with npz:
                keys = [k for k in ("x", "X") if k in npz.files] or (npz.files if len(npz.files) == 1 else [])
                if not keys:
                    raise DataError(f"input {path!r} holds arrays {sorted(npz.files)}: name the features x")
                x = npz[keys[0]]
        elif suffix == ".csv":
            with open(path, encoding="utf-8") as f:
                lines = [line for line in f.read().splitlines() if line.strip()]
            if lines and not _numeric_row(lines[0]):
                lines = lines[1:]
            if not lines:
                raise DataError(f"input {path!r} has no rows of numbers")
            x = np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64)
        else:
            raise DataError(f"input {path!r} has suffix {suffix!r}: use .npy, .npz or .csv")
    except (OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error,
            UnicodeDecodeError) as exc:
        raise DataError(f"input {path!r} is not a readable {suffix} file ({exc})") from None
    except ValueError as exc:
        if isinstance(exc, SgdlabError):
            raise
        raise DataError(f"input {path!r} is not a readable {suffix} file of numbers ({exc})") from None
    if x.dtype.kind not in "biuf":
        raise DataError(f"input {path!r} holds {x.dtype} values: give numbers")
    if x.ndim == 1 and x.size == n_features:
        x = x[None, :]
    x = x.reshape(len(x), -1) if x.ndim > 2 else x
    if x.ndim != 2 or x.shape[1] != n_features or len(x) == 0:
        raise DataError(f"input {path!r} has shape {x.shape}: the model takes rows of {n_features} features")
    if not np.all(np.isfinite(x)):
        raise DataError(f"input {path!r} contains NaN or inf")
    return x


def _numeric_row(line):
    try:
        [float(v) for v in line.split(",")]
        return True
    except ValueError:
        return False


def cmd_predict(args):
    """Predictions of a saved model: class labels (or --proba probabilities), or regression outputs."""
    import numpy as np

    from .checkpoint import load_model, write_text_atomic

    model = load_model(args.model)
    x = read_inputs(args.input, model.n_in).astype(model.params.dtype)
    y = model.predict_proba(x) if args.proba else model.predict(x)
    y = np.asarray(y)
    if args.out and args.out.endswith(".npy"):
        from .checkpoint import atomic_path

        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, y, allow_pickle=False)
    else:
        rows = y.reshape(len(y), -1)
        text = "\n".join(",".join(str(v) if y.dtype.kind in "iu" else f"{v:.6g}" for v in row) for row in rows)
        if args.out:
            write_text_atomic(args.out, text + "\n")
        else:
            print(text)
    if args.out:
        print(f"{len(y)} predictions written to {args.out}", file=sys.stderr)
    return 0


def cmd_evaluate(args):
    """Loss and accuracy of a saved model on each split of a dataset."""
    from .checkpoint import load_model
    from .data import load_dataset
    from .training import check_data_fits

    model = load_model(args.model)
    splits = load_dataset(args.dataset, seed=args.seed, val_fraction=args.val_fraction,
                          label_column=args.label_column)
    for role in ("train", "val", "test"):
        ds = getattr(splits, role, None)
        if ds is None or len(ds) == 0:
            continue
        check_data_fits(model, ds, role)
        loss, acc = model.evaluate(ds)
        print(f"{role:<5} {len(ds):>7} samples  loss {loss:.6f}" + ("" if acc is None else f"  accuracy {acc:.4f}"))
    return 0


def add_model_parsers(sub):
    predict = sub.add_parser("predict", help="predictions of a saved model for new inputs",
                             description="Load MODEL (a model.safetensors; never runs code from it) and print one "
                                         "prediction per row of INPUT (.npy, .npz with x, or .csv of features).")
    predict.add_argument("input", metavar="INPUT")
    predict.add_argument("--proba", action="store_true", help="class probabilities instead of labels")
    predict.add_argument("--out", help="write to FILE (.npy, else comma-separated text) instead of printing")
    evaluate = sub.add_parser("evaluate", help="loss and accuracy of a saved model on a dataset",
                              description="Load MODEL and print loss and accuracy on each split of DATASET.")
    evaluate.add_argument("--dataset", required=True, help=FIELD_HELP["dataset"])
    evaluate.add_argument("--seed", type=_number_type(int), default=0, help="seed of the train/val split (default 0)")
    evaluate.add_argument("--val-fraction", type=_number_type(float), default=0.1, help=FIELD_HELP["val_fraction"])
    evaluate.add_argument("--label-column", help=FIELD_HELP["label_column"])
    for p, handler in ((predict, cmd_predict), (evaluate, cmd_evaluate)):
        p.add_argument("--model", required=True, help="a model.safetensors written by sgdlab")
        p.set_defaults(handler=handler)


def cmd_gradcheck(args):
    """Backprop against central differences, per layer, on a small batch, in float64."""
    import numpy as np

    from .gradients import gradient_check
    from .run import build_model, load_splits

    config = config_from_args(args)
    train, _, _ = load_splits(config)
    task = "classification" if train.is_classification else "regression"
    n_outputs = train.n_classes if task == "classification" else train.t.shape[1]
    model = build_model(config, train.n_features, n_outputs, task).copy(dtype=np.float64)
    rows = np.random.default_rng(config.seed).choice(len(train), size=min(args.samples, len(train)), replace=False)
    x, t = train.batch(np.sort(rows))
    report = gradient_check(model, x.astype(np.float64), t, tolerance=args.tolerance)
    print(report.table())
    return 0 if report.passed else 1


def cmd_sweep(args):
    """Sweep settings given as flags (``--lr 1e-4:1:log``) or ``--set NAME=VALUES``; see ``sgdlab.sweep``."""
    from .config import TrainConfig
    from .errors import ConfigError
    from .sweep import sweep_command

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {n: getattr(args, n) for n in names if hasattr(args, n)}
    for item in args.set or []:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names:
            raise ConfigError(f"--set {item!r} is not allowed: write NAME=VALUES with NAME one of "
                              f"{', '.join(sorted(names))}")
        settings[name] = values
    base = TrainConfig.from_toml(args.config).to_dict() if args.config else {}
    dataset = os.path.splitext(os.path.basename(str(settings.get("dataset", base.get("dataset", "mnist")))))[0]
    return sweep_command(settings, args.out or os.path.join("runs", f"sweep-{dataset}"), base_values=base,
                         trials=args.trials, grid=args.grid, sweep_seed=args.sweep_seed, workers=args.workers,
                         scheduler=args.scheduler, resume=args.resume, overwrite=args.overwrite,
                         halving=args.halving, min_epochs=args.min_epochs, slow_threshold=args.slow_threshold,
                         range_test=args.range_test, lr_min=args.lr_min, lr_max=args.lr_max,
                         range_iterations=args.range_iterations, then_train=args.then_train,
                         final_epochs=args.final_epochs, quiet=args.quiet)


def add_sweep_parser(sub):
    sweep = sub.add_parser("sweep", help="try many hyper-parameters (local processes or Dask); LR range test",
                           description="Every config flag takes one value, a list a,b,c, or a range LOW:HIGH "
                                       "(uniform) / LOW:HIGH:log (log-uniform), e.g. --lr 1e-4:1:log; layers "
                                       "alternatives are separated by '/'.  Writes OUT/sweep.csv (ranked, updated "
                                       "as each trial ends), sweep.png and trials/<id>/.  A trial is 'diverged' "
                                       "when its loss blew up (> 10x the initial loss), 'too slow' when its best "
                                       "val loss stayed above (1 - SLOW_THRESHOLD) x the initial loss.")
    add_config_flags(sweep, as_text=True)
    number, whole = _number_type(float), _number_type(int)
    sweep.add_argument("--set", action="append", metavar="NAME=VALUES",
                       help="sweep any setting: --set batch_size=32,100,256 (repeatable)")
    sweep.add_argument("--config", help="TOML file of base settings; flags override it")
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
    sweep.set_defaults(handler=cmd_sweep)


def cmd_demo(args):
    from .demos import get_demo

    demo = get_demo(args.name)
    os.makedirs(args.out, exist_ok=True)
    result = demo(args.out, show=args.show, quick=args.quick)
    for path in result.get("files", []):
        print(path)
    return 0


def cmd_data(args):
    """``sgdlab data convert | info | synth``: write and describe on-disk stores."""
    from . import data

    progress = False if getattr(args, "quiet", False) else None
    if args.data_command == "convert":
        meta = data.convert(args.src, args.dst, label_column=args.label_column, val_samples=args.val_samples,
                            overwrite=args.overwrite, progress=progress)
    elif args.data_command == "synth":
        meta = data.synth_mnist_shifted(args.dst, args.samples, seed=args.seed, val_samples=args.val_samples,
                                        test_samples=args.test_samples, overwrite=args.overwrite, progress=progress)
    else:
        meta = data.verify_store(args.dst, progress=progress) if args.verify else data.read_meta(args.dst)
    data.open_store(args.dst)                                      # sizes, headers, sampled checksum
    print(_store_summary(args.dst, meta, verified=getattr(args, "verify", False)))
    return 0


def _store_summary(path, meta, verified):
    x, t = meta["x"], meta["t"]
    size = sum(os.path.getsize(os.path.join(path, f)) for f in ("x.npy", "t.npy"))
    splits = ", ".join(f"{k} {b - a} [{a}, {b})" for k, (a, b) in meta["splits"].items())
    labels = f"{meta['n_classes']} classes" if meta.get("n_classes") else f"targets {t['shape'][1:]}"
    check = "full SHA-256 verified" if verified else "sampled checksum ok (--verify reads every byte)"
    return (f"{path}: {meta['n']} samples, x {tuple(x['shape'][1:])} {x['dtype']}, t {t['dtype']} ({labels}), "
            f"{size / 1e9:.3f} GB\nsplits: {splits}\nscale: {meta.get('scale')}\nchecksum: {check}")


def cmd_board(args):
    from .board import serve

    return serve(args.runs_dir, host=args.host, port=args.port, verbose=args.verbose)


def add_board_parser(sub):
    board = sub.add_parser("board", help="a local web page: browse run folders, train a network live",
                           description="Serve a page on 127.0.0.1 with two tabs: Runs (every run folder and "
                                       "sweep under RUNS_DIR, live curves) and Playground (train a small network "
                                       "on 2-D data, step by step).  Needs the extra: pip install 'sgdlab[board]'.")
    board.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                       help="folder of run folders (default ./runs)")
    board.add_argument("--port", type=_number_type(int), default=8765, help="port (default 8765; 0 picks a free one)")
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    board.add_argument("--verbose", action="store_true", help="log every request")
    board.set_defaults(handler=cmd_board)


def add_data_parser(sub):
    data = sub.add_parser("data", help="on-disk dataset stores: convert, info, synth",
                          description="A store is a folder of x.npy, t.npy (memory-mapped) and meta.json; "
                                      "train on it with `sgdlab train --dataset FOLDER`.")
    cmds = data.add_subparsers(dest="data_command", required=True, metavar="ACTION", parser_class=Parser)
    convert = cmds.add_parser("convert", help="write a store from IDX files, .npz, .npy pairs or CSV",
                              description="Convert SRC (a folder of IDX files, gzip or not; a .npz; a folder "
                                          "with x.npy and t.npy; a CSV) into the store DST, in chunks.")
    convert.add_argument("src", metavar="SRC")
    convert.add_argument("dst", metavar="DST")
    convert.add_argument("--label-column", help="CSV: name of the label column")
    convert.add_argument("--val-samples", type=_number_type(int), default=0,
                         help="the last N training samples become the validation split (default 0: none)")
    synth = cmds.add_parser("synth", help="write a large MNIST-like store (random shifts and small rotations)",
                            description="mnist-shifted: random MNIST digits shifted by up to 2 pixels and "
                                        "rotated by up to 10 degrees, written in chunks.")
    synth.add_argument("name", choices=("mnist-shifted",), metavar="NAME", help="mnist-shifted")
    synth.add_argument("dst", metavar="DST")
    synth.add_argument("--samples", type=_number_type(int), required=True, help="training samples to write")
    synth.add_argument("--val-samples", type=_number_type(int), default=10000, help="validation samples (10000)")
    synth.add_argument("--test-samples", type=_number_type(int), default=10000, help="test samples (10000)")
    synth.add_argument("--seed", type=_number_type(int), default=0, help="seed (default 0)")
    for p in (convert, synth):
        p.add_argument("--overwrite", action="store_true", help="replace an existing store")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    info = cmds.add_parser("info", help="describe a store and check it",
                           description="Print a store's shapes, splits and size; checks headers, sizes and "
                                       "the sampled checksum, or with --verify the full SHA-256.")
    info.add_argument("dst", metavar="STORE")
    info.add_argument("--verify", action="store_true", help="re-read every byte against the full SHA-256")
    info.add_argument("--quiet", action="store_true", help="no progress bar")
    data.set_defaults(handler=cmd_data)


def build_parser():
    parser = Parser(prog="sgdlab", description="Mini-batch SGD you can watch: draw a batch, compute the "
                                                  "gradient, update the parameters, repeat.")
    parser.add_argument("--version", action="version", version=f"sgdlab {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    train = sub.add_parser("train", help="train a network and write a run folder",
                           description="Train an MLP by mini-batch SGD; writes runs/NAME/ (config.json, "
                                       "metrics.csv, summary.json, model.safetensors, loss.png, accuracy.png).")
    add_config_flags(train)
    train.add_argument("--config", help="TOML file of settings; flags override it")
    train.add_argument("--out", help="run folder (default runs/DATASET-LAYERS-OPTIMIZER)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.add_argument("--resume", metavar="RUN", help="continue RUN (a run folder) from its checkpoint.safetensors")
    train.set_defaults(handler=cmd_train)

    check = sub.add_parser("gradcheck", help="compare backprop with numerical gradients, layer by layer",
                           description="Backprop against central differences in float64 on a few samples; "
                                       "exit 1 if any layer's relative error exceeds the tolerance.")
    add_config_flags(check)
    check.add_argument("--config", help="TOML file of settings; flags override it")
    check.add_argument("--samples", type=_number_type(int), default=10, help="samples in the batch (default 10)")
    check.add_argument("--tolerance", type=_number_type(float), default=1e-6,
                       help="largest relative error that passes (default 1e-6)")
    check.set_defaults(handler=cmd_gradcheck)

    from .demos import DEMOS

    demo = sub.add_parser("demo", help="tutorial experiments as PNG pictures",
                          description="Run one of the tutorial's experiments and save its pictures.")
    demo.add_argument("name", choices=list(DEMOS), metavar="NAME", help=", ".join(DEMOS))
    demo.add_argument("--out", default="demos", help="folder for the PNG files (default ./demos)")
    demo.add_argument("--show", action="store_true", help="also open the pictures where a display exists")
    demo.add_argument("--quick", action="store_true", help="shorter runs (for tests and slow machines)")
    demo.set_defaults(handler=cmd_demo)
    add_data_parser(sub)
    add_board_parser(sub)
    add_model_parsers(sub)
    add_sweep_parser(sub)
    return parser


def _version():
    from . import __version__

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
