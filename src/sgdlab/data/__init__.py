"""The data: datasets (MNIST, digits, synthetic, files, on-disk stores), splits.

``datasets`` holds Dataset, Splits and the synthetic sets; ``files`` reads .npz /
.npy / CSV; ``mnist`` the IDX format, the restricted unpickler and the MNIST
cache; ``store`` the on-disk stores (memory maps) and ``converters`` writes them.
Nothing here can run code from a file.
"""

from pathlib import Path

from sgdlab.errors import ConfigError, DataError

from .converters import SYNTH_NAMES, convert, synth_mnist_shifted
from .datasets import (_SYNTHETIC, DATASET_NAMES, Dataset, Splits, _split, load_digits, make_blobs, make_circles,
                       make_spirals, make_xor, train_val_split)
from .files import labelled, load_arrays
from .mnist import MNIST_PICKLE_SHA256, load_mnist, load_mnist_pickle, read_idx
from .store import STORE_FORMAT, StoreWriter, is_store, open_store, read_meta, verify_store

__all__ = [
    "Dataset", "Splits", "as_dataset", "load_mnist", "load_mnist_pickle", "read_idx", "load_digits",
    "make_spirals", "make_blobs", "make_circles", "make_xor", "load_arrays",
    "train_val_split", "load_dataset", "DATASET_NAMES", "MNIST_PICKLE_SHA256",
    "STORE_FORMAT", "StoreWriter", "is_store", "open_store", "read_meta", "verify_store",
    "convert", "synth_mnist_shifted", "SYNTH_NAMES", "labelled",
]


def as_dataset(data, role="training"):
    """A Dataset as it is, or a pair ``(x, t)`` of arrays wrapped in one; anything else is refused by name."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return labelled(data[0], data[1], name=role)          # labels as they come: text, bool, any integers
    raise ConfigError(f"the {role} data is a {type(data).__name__}: give a sgdlab.Dataset or a pair (x, t) of arrays")


def load_dataset(name_or_path, seed=0, val_fraction=0.2, label_column=None, cache_dir=None, flatten=True,
                 test_fraction=0.0, features=None, drop=None, impute=None, classes=None, columns=None) -> Splits:
    """A dataset by name (mnist, digits, spirals, blobs, circles, xor), a store folder, or a file (load_arrays).

    MNIST keeps its fixed split (val_fraction is ignored); a synthetic set is drawn with 3x the
    default samples: one third becomes the test set, val_fraction of all the val set, the rest train.
    A store keeps its split ranges; without a val range its last val_fraction of train is the val set.
    A file without ready splits holds out test_fraction (stratified for classes) as its test set.
    ``classes`` / ``columns`` (a trained model's): encode labels and table columns as that model was trained.
    ``flatten=False``: MNIST and digits as images (n, 1, H, W); files and stores keep the shape they hold.
    """
    key = str(name_or_path).lower()
    if key == "mnist":
        return load_mnist(cache_dir=cache_dir, flatten=flatten)
    if key == "digits":
        return load_digits(val_fraction=val_fraction, test_fraction=0.2, seed=seed, flatten=flatten)
    if key in _SYNTHETIC:
        ds = _SYNTHETIC[key](n_samples=900, seed=seed)
        return _split(ds, val_fraction, 1.0 / 3.0, seed)
    if is_store(name_or_path):
        return open_store(name_or_path, val_fraction=val_fraction)
    if Path(name_or_path).exists():
        return load_arrays(name_or_path, label_column=label_column, val_fraction=val_fraction, seed=seed,
                           test_fraction=test_fraction, features=features, drop=drop, impute=impute,
                           classes=classes, columns=columns)
    raise DataError(f"dataset={str(name_or_path)!r} is unknown: use {', '.join(DATASET_NAMES)} "
                    "or a path to a store folder, .npz, .npy, .csv or .parquet")
