"""``sgdlab predict`` and ``sgdlab evaluate``: use a saved model."""

import os
import sys

from ..errors import SgdlabError
from .args import field_help, number_type


def read_inputs(path, n_features):
    """Features to predict from .npy, .npz (``x``/``X`` or its only array) or .csv (optional header row)."""
    import tokenize
    import zipfile
    import zlib

    import numpy as np

    from ..errors import DataError

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

    from ..checkpoint import load_model, write_text_atomic

    model = load_model(args.model)
    x = read_inputs(args.input, model.n_in).astype(model.params.dtype)
    y = model.predict_proba(x) if args.proba else model.predict(x)
    y = np.asarray(y)
    if args.out and args.out.endswith(".npy"):
        from ..checkpoint import atomic_path

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
    from ..checkpoint import load_model
    from ..data import load_dataset
    from ..training import check_data_fits

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


def add_parser(sub):
    predict = sub.add_parser("predict", help="predictions of a saved model for new inputs",
                             description="Load MODEL (a model.safetensors; never runs code from it) and print one "
                                         "prediction per row of INPUT (.npy, .npz with x, or .csv of features).")
    predict.add_argument("input", metavar="INPUT")
    predict.add_argument("--proba", action="store_true", help="class probabilities instead of labels")
    predict.add_argument("--out", help="write to FILE (.npy, else comma-separated text) instead of printing")
    evaluate = sub.add_parser("evaluate", help="loss and accuracy of a saved model on a dataset",
                              description="Load MODEL and print loss and accuracy on each split of DATASET.")
    evaluate.add_argument("--dataset", required=True, help=field_help("dataset"))
    evaluate.add_argument("--seed", type=number_type(int), default=0, help="seed of the train/val split (default 0)")
    evaluate.add_argument("--val-fraction", type=number_type(float), default=0.1, help=field_help("val_fraction"))
    evaluate.add_argument("--label-column", help=field_help("label_column"))
    for p, handler in ((predict, cmd_predict), (evaluate, cmd_evaluate)):
        p.add_argument("--model", required=True, help="a model.safetensors written by sgdlab")
        p.set_defaults(handler=handler)
