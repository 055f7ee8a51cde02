"""Arguments every command shares: one flag per TrainConfig field, argparse that exits 2 on one line."""

import argparse
import dataclasses
import typing


FIELD_HELP = {
    "dataset": "mnist, digits, spirals, blobs, circles, xor, a store folder, or a path to .npz / .npy / .csv / "
               ".parquet",
    "layers": "hidden layers, e.g. 100 or 256,128 ('' for none); a conv net puts image layers first: convFkK "
              "(F filters of KxK; add sS stride, pP padding), poolK (max), avgpoolK, e.g. "
              "conv16k5,pool2,conv32k5,pool2,100",
    "activation": "hidden activation",
    "loss": "loss",
    "optimizer": "update rule",
    "lr": "learning rate (default: momentum 0.05, tuned on MNIST; the others their own: {optimizer_lrs})",
    "momentum": "momentum coefficient",
    "beta1": "Adam's first-moment decay",
    "beta2": "Adam's second-moment decay",
    "eps": "added to the denominator",
    "alpha": "RMSprop's squared-gradient decay",
    "schedule": "learning-rate schedule",
    "step_epochs": "epochs between lr drops",
    "gamma": "lr factor per drop (step) or per epoch (exponential)",
    "min_lr": "smallest lr",
    "warmup_iterations": "iterations of linear warmup",
    "plateau_factor": "lr factor on a plateau",
    "plateau_patience": "evaluations without improvement before the lr drops",
    "plateau_min_delta": "smallest change of the monitored metric that counts as an improvement",
    "batch_size": "mini-batch size",
    "epochs": "passes over the training set",
    "iterations": "train this many iterations instead of --epochs",
    "sampling": "how mini-batches are drawn",
    "weight_decay": "L2 penalty (weight_decay/2)*sum(W^2) added to loss and gradient; for adamw its decoupled "
                    "decay p <- p - lr*weight_decay*p instead",
    "dropout": "Dropout rate after each hidden activation (inverted dropout, off at evaluation), e.g. 0.5",
    "batch_norm": "BatchNorm between each hidden Dense and its activation (--batch-norm, or true|false)",
    "clip_norm": "clip the gradient's global L2 norm to this value",
    "patience": "early stopping: evaluations without improvement before stopping (the --early-stopping N flag)",
    "monitor": "metric early stopping (and the plateau schedule) watches",
    "monitor_mode": "which way is better",
    "start_from_epoch": "early stopping ignores evaluations before this epoch",
    "min_delta": "early stopping: smallest change that counts as an improvement",
    "restore_best": "true|false: put the best evaluation's parameters back at the end",
    "eval_every": "evaluate every N iterations instead of every epoch",
    "train_metrics": "what metrics.csv's train_loss/train_acc measure",
    "gradient": "how the gradient is computed",
    "dtype": "floating-point type of the parameters",
    "seed": "seed of every random choice",
    "val_fraction": "fraction of train held out for validation when the dataset has none",
    "label_column": "CSV / Parquet datasets: name of the label column (text, boolean or number labels)",
    "test_fraction": "fraction held out (stratified) as the test split when the dataset has none; 0 keeps every "
                     "row for training and validation",
    "features": "CSV / Parquet datasets: the feature columns, e.g. a,b,c (default: all but the label and --drop)",
    "drop": "CSV / Parquet datasets: columns that are not features, e.g. id",
    "standardize": "scale each feature by the training split's mean and std inside the model (a Standardize "
                   "layer, kept in model.safetensors)",
    "impute": "mean: fill missing cells with the training split's column means (kept in the model); unset: "
              "refuse missing values",
    "threads": "BLAS threads (default: all cores)",
    "prefetch": "true|false: gather the next batch on a background thread while this one trains",
    "checkpoint_every": "also write runs/NAME/checkpoint.safetensors every N iterations (always at each epoch's end)",
    "checkpoint_seconds": "also write the checkpoint when this many seconds passed since the last one, so a kill "
                          "loses at most that much",
}
# What a choice means, where its name does not say it (the choices themselves come from config.CHOICES).
CHOICE_HELP = {
    "sampling": {"auto": "shuffle for data in memory, block-shuffle with prefetch for an on-disk store",
                 "shuffle": "a permutation per epoch",
                 "replacement": "i.i.d. draws, as in the tutorial",
                 "block-shuffle": "shuffled contiguous blocks: for on-disk stores whose random reads are slow"},
    "train_metrics": {"running": "mean loss and accuracy of the batches since the last evaluation, free",
                      "full": "the whole training set at each evaluation, as the tutorial does; costs a pass"},
    "gradient": {"numerical": "central differences, the tutorial's gradient"},
    "dtype": {"float32": "fast", "float64": "for checks"},
    "monitor_mode": {"auto": "min for losses, max for accuracies"},
}


def field_help(name):
    """--help of a TrainConfig field: its description, its choices or the classes it sets, and its default."""
    from ..config import CHOICES, OPTIMIZER_FIELDS, SCHEDULE_FIELDS, TUNED_LR, TrainConfig
    from ..optimizers import OPTIMIZERS, SCHEDULES
    from ..validation import setting_defaults

    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]
    text = FIELD_HELP.get(name, name.replace("_", " "))
    if name == "lr":
        return text.format(optimizer_lrs=", ".join(f"{k} {setting_defaults(c)['lr']:g}" for k, c in OPTIMIZERS.items()
                                                   if k not in TUNED_LR))
    if name in CHOICES:
        notes = CHOICE_HELP.get(name, {})
        text += ": " + " | ".join(f"{c} ({notes[c]})" if c in notes else c for c in CHOICES[name])
    for fields_to_settings, registry, kind in ((OPTIMIZER_FIELDS, OPTIMIZERS, "optimizer"),
                                               (SCHEDULE_FIELDS, SCHEDULES, "schedule")):
        if name in fields_to_settings:
            setting = fields_to_settings[name]
            users = []
            for key, cls in registry.items():
                defaults = setting_defaults(cls)
                if setting in defaults:
                    value = defaults[setting]
                    if name in ("beta1", "beta2"):
                        value = value[name == "beta2"]
                    users.append(f"{key} {value:g}")
            return f"{text}; {kind} " + ", ".join(users) + " (defaults)"
    if default is not None and default != "" and not isinstance(default, bool):
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text += f" (default {shown})"
    return text


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


def whole_at_least(low):
    """An argparse type: a whole number >= ``low`` (else a one-line usage error naming it)."""
    whole = number_type(int)

    def parse(text):
        value = whole(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a whole number >= {low}")
        return value

    parse.__name__ = "int"
    return parse


def add_config_flags(parser, as_text=False, config_help="TOML file of settings; flags override it"):
    """--config FILE and one flag per TrainConfig field (--batch-size for batch_size ...); unset flags stay absent.

    ``as_text`` keeps every value a string (a sweep's lists and ranges, parsed by ``sweep.parse_values``).
    """
    parser.add_argument("--config", help=config_help)
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
                            help=field_help(f.name), metavar=f.name.upper(), **bare)


def config_path(path):
    """--config's value; "" is refused (it would otherwise read as "no --config")."""
    from ..errors import ConfigError

    if not path.strip():
        raise ConfigError("--config '' is empty: give a TOML file")
    return path


def config_from_args(args):
    from ..config import TrainConfig

    values = {}
    if getattr(args, "config", None) is not None:
        values.update(TrainConfig.from_toml(config_path(args.config)).to_dict())
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return TrainConfig.from_dict(values)
