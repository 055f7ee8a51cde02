"""Arguments every command shares: one flag per TrainConfig field, argparse that exits 2 on one line."""

import argparse
import dataclasses
import typing


FIELD_HELP = {
    "dataset": "mnist, digits, spirals, blobs, circles, xor, or a path to .npz / .npy / .csv (default mnist)",
    "layers": "hidden layers, e.g. 100 or 256,128 (default 100); a conv net puts image layers first: convFkK "
              "(F filters of KxK; add sS stride, pP padding), poolK (max), avgpoolK, e.g. "
              "conv16k5,pool2,conv32k5,pool2,100",
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


def boolean(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use true or false")


def number_type(kind):
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
    from ..config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, "--early-stopping"] if f.name == "patience" else [flag]
        hint = hints[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        kind = str if as_text else {int: number_type(int), float: number_type(float), bool: boolean}.get(base, str)
        bare = {"nargs": "?", "const": True} if base is bool else {}  # --prefetch alone means true
        parser.add_argument(*names, dest=f.name, type=kind, default=argparse.SUPPRESS,
                            help=FIELD_HELP.get(f.name), metavar=f.name.upper(), **bare)


def config_from_args(args):
    from ..config import TrainConfig

    values = {}
    if getattr(args, "config", None):
        values.update(TrainConfig.from_toml(args.config).to_dict())
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return TrainConfig.from_dict(values)
