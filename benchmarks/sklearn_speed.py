"""sgdlab.sklearn.MLPClassifier vs scikit-learn's MLPClassifier, same settings, same process.

MNIST 50k train (pixels / 255 as float32), hidden_layer_sizes=(100,), solver sgd
(momentum 0.9, Nesterov: sklearn's defaults), learning_rate_init 0.001 (sklearn's
default) unless --lr, batch 100, exactly 10 epochs (tol=0 and n_iter_no_change
above max_iter, so nothing stops early), alpha 1e-4.  Prints each library's fit
seconds (median of --repeats fits, the two libraries' fits interleaved), test
accuracy on the 10k test set, and the ratios: targets are time <= 0.4x and
accuracy within 0.5 points of scikit-learn.

    python benchmarks/sklearn_speed.py                  # 3 fits each, all BLAS threads
    python benchmarks/sklearn_speed.py --threads 1      # one BLAS thread for both (steadier on a busy machine)
    python benchmarks/sklearn_speed.py --repeats 1 --epochs 2

Wall seconds are what the targets are about; CPU seconds (process time) are printed
beside them because on a shared machine they move less with other people's load.

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
from threadpoolctl import threadpool_info, threadpool_limits

from sgdlab.data import load_mnist
from sgdlab.sklearn import MLPClassifier


def settings(epochs, lr):
    return dict(hidden_layer_sizes=(100,), solver="sgd", batch_size=100, max_iter=epochs, tol=0.0,
                n_iter_no_change=epochs + 1, learning_rate_init=lr, random_state=0)


def one_fit(cls, x, t, xt, tt, **params):
    """(fit wall seconds, fit CPU seconds, test accuracy) of one fresh estimator."""
    clf = cls(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start, start_cpu = time.perf_counter(), time.process_time()
        clf.fit(x, t)
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return seconds, cpu, float(np.mean(clf.predict(xt) == tt))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads for both (default: all)")
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        compare(args)


def compare(args):
    data = load_mnist()
    x = data.train.x.astype(np.float32) / 255
    xt = data.test.x.astype(np.float32) / 255
    t, tt = data.train.t, data.test.t
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    print(f"MNIST train {x.shape}, test {xt.shape}, float32; BLAS {blas}; load {os.getloadavg()[0]:.2f}")
    params = settings(args.epochs, args.lr)
    print(f"settings: {params} (momentum 0.9, nesterovs_momentum, alpha 1e-4: defaults)")
    tools = (("sgdlab.sklearn", MLPClassifier), ("scikit-learn", SklearnMLP))
    fits = {name: [] for name, _ in tools}
    for _ in range(args.repeats):  # interleaved: a machine changing speed mid-run weighs on both alike
        for name, cls in tools:
            fits[name].append(one_fit(cls, x, t, xt, tt, **params))
    rows = []
    for name, _ in tools:
        each = [f[0] for f in fits[name]]
        sec, cpu, acc = statistics.median(each), statistics.median(f[1] for f in fits[name]), fits[name][-1][2]
        rows.append((name, sec, cpu, acc))
        print(f"{name:>15}: fit {sec:7.2f} s (median of {[round(s, 2) for s in each]}), CPU {cpu:7.2f} s, "
              f"test accuracy {acc:.4f}")
    (_, ours, our_cpu, our_acc), (_, theirs, their_cpu, their_acc) = rows
    print(f"time ratio sgdlab/sklearn = {ours / theirs:.3f} (target <= 0.4), CPU {our_cpu / their_cpu:.3f}; "
          f"accuracy difference = {100 * (our_acc - their_acc):+.2f} points (target within 0.5); "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
