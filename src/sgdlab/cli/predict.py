"""``sgdlab predict`` and ``sgdlab evaluate``: use a saved model."""

import sys

from .args import FIELD_HELP, field_help, number_type, whole_at_least


def read_inputs(path, n_features, columns=None):
    """Features to predict (see ``sgdlab.data.files.load_inputs``)."""
    from ..data.files import load_inputs

    return load_inputs(path, n_features, columns)


def _model_columns(model):
    from ..data.frame import Columns

    return None if model.inputs is None else Columns.from_description(model.inputs)


def _say_warnings(caught):
    """Data warnings (unseen categories) as one line each on stderr."""
    for w in caught:
        print(f"sgdlab: warning: {w.message}", file=sys.stderr)


def cmd_predict(args):
    """Predictions of a saved model: class labels as the training data named them (or --proba probabilities,
    headed by the class names), or regression outputs."""
    import warnings

    import numpy as np

    from ..checkpoint import load_model, write_text_atomic
    from ..data.frame import DataWarning

    from ..data.checks import check_fits_dtype
    from ..runfolder import check_output_file

    if args.out is not None:
        check_output_file(args.out, protected=[args.model, args.input], overwrite=args.overwrite)
    model = load_model(args.model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        x = read_inputs(args.input, model.n_in, _model_columns(model))
    _say_warnings(caught)
    check_fits_dtype(x, model.params.dtype, f"input {args.input!r}")
    x = x.astype(model.params.dtype)
    y = model.predict_proba(x) if args.proba else model.predict(x)
    y = np.asarray(y)
    if args.out is not None and args.out.endswith(".npy"):
        from ..checkpoint import atomic_path

        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, y, allow_pickle=False)
    else:
        from ..tables import format_rows

        rows = [[str(v) if y.dtype.kind in "iuUSb" else f"{v:.6g}" for v in row] for row in y.reshape(len(y), -1)]
        if args.proba:
            names = model.classes.tolist() if model.classes is not None else list(range(y.shape[1]))
            text = format_rows([str(c) for c in names], rows)
        else:
            text = format_rows(["prediction"], rows).split("\n", 1)[1]
        if args.out is not None:
            write_text_atomic(args.out, text)
        else:
            print(text, end="")
    if args.out is not None:
        print(f"{len(y)} predictions written to {args.out}", file=sys.stderr)
    return 0


def cmd_evaluate(args):
    """Loss, accuracy and per-class precision / recall / F1 (or MAE / RMSE / R^2) of a saved model on each split."""
    import warnings

    from ..checkpoint import load_model
    from ..data.frame import DataWarning
    from ..metrics import format_report, model_report
    from ..training import check_data_fits

    model = load_model(args.model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        splits = load_evaluation_data(model, args)
    _say_warnings(caught)
    for role in ("train", "val", "test"):
        ds = getattr(splits, role, None)
        if ds is None or len(ds) == 0:
            continue
        check_data_fits(model, ds, role)
        loss, acc = model.evaluate(ds)
        print(f"{role:<5} {len(ds):>7} samples  loss {loss:.6f}" + ("" if acc is None else f"  accuracy {acc:.4f}"))
        if role == ("test" if splits.test is not None else "val") or args.all_splits:
            print(format_report(model_report(model, ds)))
    return 0


SPLIT_SETTINGS = {"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1, "label_column": None}


def load_evaluation_data(model, args):
    """The dataset's splits as training made them (seed, fractions and label column: the flags, else the model's
    own run config, else the defaults); a table's features are picked and encoded by the model's own columns,
    labels encoded against the model's classes."""
    import json

    from ..data import load_dataset

    try:
        trained = json.loads(getattr(model, "metadata", {}).get("config", "{}"))
    except ValueError:
        trained = {}
    settings = {name: getattr(args, name) if getattr(args, name) is not None else trained.get(name, default)
                for name, default in SPLIT_SETTINGS.items()}
    return load_dataset(args.dataset, **settings, classes=model.classes, columns=_model_columns(model))


def add_parser(sub):
    predict = sub.add_parser("predict", help="predictions of a saved model for new inputs",
                             description="Load MODEL (a model.safetensors; never runs code from it) and print one "
                                         "prediction per row of INPUT (.npy, .npz with x, or .csv of features).")
    predict.add_argument("input", metavar="INPUT")
    predict.add_argument("--proba", action="store_true", help="class probabilities instead of labels")
    predict.add_argument("--out", help="write to FILE (.npy, else comma-separated text) instead of printing")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    evaluate = sub.add_parser("evaluate", help="loss, accuracy and per-class metrics of a saved model on a dataset",
                              description="Load MODEL and print loss and accuracy on each split of DATASET, and "
                                          "for the test split (else val) per-class precision, recall, F1, "
                                          "support and the confusion matrix (regression: MAE, RMSE, R^2).")
    evaluate.add_argument("--dataset", required=True, help=field_help("dataset"))
    trained = " (default: the model's training run's, else {})"
    evaluate.add_argument("--seed", type=whole_at_least(0), help="seed of the splits" + trained.format(0))
    evaluate.add_argument("--val-fraction", type=number_type(float),
                          help=FIELD_HELP["val_fraction"] + trained.format(0.1))
    evaluate.add_argument("--label-column", help=FIELD_HELP["label_column"] + trained.format("none"))
    evaluate.add_argument("--test-fraction", type=number_type(float),
                          help=FIELD_HELP["test_fraction"] + trained.format(0.1))
    evaluate.add_argument("--all-splits", action="store_true", help="per-class metrics for every split")
    for p, handler in ((predict, cmd_predict), (evaluate, cmd_evaluate)):
        p.add_argument("--model", required=True, help="a model.safetensors written by sgdlab")
        p.set_defaults(handler=handler)
