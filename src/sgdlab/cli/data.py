"""``sgdlab data convert | info | synth``: on-disk dataset stores."""

import os

from .args import Parser, number_type


def cmd_data(args):
    """``sgdlab data convert | info | synth``: write and describe on-disk stores."""
    from .. import data

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


def add_parser(sub):
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
    convert.add_argument("--val-samples", type=number_type(int), default=0,
                         help="the last N training samples become the validation split (default 0: none)")
    synth = cmds.add_parser("synth", help="write a large MNIST-like store (random shifts and small rotations)",
                            description="mnist-shifted: random MNIST digits shifted by up to 2 pixels and "
                                        "rotated by up to 10 degrees, written in chunks.")
    synth.add_argument("name", choices=("mnist-shifted",), metavar="NAME", help="mnist-shifted")
    synth.add_argument("dst", metavar="DST")
    synth.add_argument("--samples", type=number_type(int), required=True, help="training samples to write")
    synth.add_argument("--val-samples", type=number_type(int), default=10000, help="validation samples (10000)")
    synth.add_argument("--test-samples", type=number_type(int), default=10000, help="test samples (10000)")
    synth.add_argument("--seed", type=number_type(int), default=0, help="seed (default 0)")
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
