"""sgdlab.sklearn.MLPClassifier vs scikit-learn's MLPClassifier, same settings, same process.

MNIST 50k train (pixels / 255 as float32), hidden_layer_sizes=(100,), solver sgd
(momentum 0.9, Nesterov: sklearn's defaults), learning_rate_init 0.001 (sklearn's
default) unless --lr, batch 100, exactly 10 epochs (tol=0 and n_iter_no_change
above max_iter, so nothing stops early), alpha 1e-4.  Prints each library's fit
seconds (median of --repeats fits), test accuracy on the 10k test set, and the
ratios: targets are time <= 0.4x and accuracy within 0.5 points of scikit-learn.

    python benchmarks/sklearn_speed.py                  # 3 fits each
    python benchmarks/sklearn_speed.py --repeats 1 --epochs 2

Needs scikit-learn (``pip install -e '.[sklearn]'``).
"""

import argparse
import os
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLP
from threadpoolctl import threadpool_info

from sgdlab.data import load_mnist
from sgdlab.sklearn import MLPClassifier


def settings(epochs, lr):
    return dict(hidden_layer_sizes=(100,), solver="sgd", batch_size=100, max_iter=epochs, tol=0.0,
                n_iter_no_change=epochs + 1, learning_rate_init=lr, random_state=0)


def time_fits(cls, repeats, x, t, xt, tt, **params):
    """(median fit seconds, test accuracy of the last fit, per-fit seconds)."""
    seconds, accuracy = [], None
    for _ in range(repeats):
        clf = cls(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            clf.fit(x, t)
            seconds.append(time.perf_counter() - start)
        accuracy = float(np.mean(clf.predict(xt) == tt))
    return statistics.median(seconds), accuracy, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.001)
    args = parser.parse_args()
    data = load_mnist()
    x = data.train.x.astype(np.float32) / 255
    xt = data.test.x.astype(np.float32) / 255
    t, tt = data.train.t, data.test.t
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    print(f"MNIST train {x.shape}, test {xt.shape}, float32; BLAS {blas}; load {os.getloadavg()[0]:.2f}")
    params = settings(args.epochs, args.lr)
    print(f"settings: {params} (momentum 0.9, nesterovs_momentum, alpha 1e-4: defaults)")
    rows = []
    for name, cls in (("sgdlab.sklearn", MLPClassifier), ("scikit-learn", SklearnMLP)):
        sec, acc, each = time_fits(cls, args.repeats, x, t, xt, tt, **params)
        rows.append((name, sec, acc))
        print(f"{name:>15}: fit {sec:7.2f} s (median of {[round(s, 2) for s in each]})  test accuracy {acc:.4f}")
    (_, ours, our_acc), (_, theirs, their_acc) = rows
    print(f"time ratio sgdlab/sklearn = {ours / theirs:.3f} (target <= 0.4); "
          f"accuracy difference = {100 * (our_acc - their_acc):+.2f} points (target within 0.5); "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
