"""Best final training loss per optimizer on MNIST over an lr grid (issue 4's comparison).

784-100-10 ReLU MLP (seed 0), batch 100, 3 epochs of the 50,000 training images,
the same shuffled batches for every run; the training loss is evaluated on all
50,000 images after the last epoch.  Each optimizer tries its lr grid and the
table reports its best.  Run: ``.venv/bin/python benchmarks/optimizer_comparison.py``
(``--epochs``, ``--only sgd,adam``, ``--threads``).
"""

import argparse
import math
import os
import time

from threadpoolctl import threadpool_limits

import sgdlab
from sgdlab.optimizers import get_optimizer

GRIDS = {
    "sgd": [0.01, 0.03, 0.1, 0.3],
    "momentum": [0.01, 0.03, 0.1, 0.3],
    "nesterov": [0.01, 0.03, 0.1, 0.3],
    "adagrad": [0.003, 0.01, 0.03, 0.1],
    "rmsprop": [1e-4, 3e-4, 1e-3, 3e-3],
    "adam": [1e-4, 3e-4, 1e-3, 3e-3],
    "adamw": [1e-4, 3e-4, 1e-3, 3e-3],
}


def train_loss(data, name, lr, epochs):
    """(final training loss over the whole training set, status, seconds) of one run."""
    model = sgdlab.MLP([784, 100, 10], seed=0)
    start = time.perf_counter()
    history = sgdlab.fit(model, data.train, get_optimizer(name, lr), batch_size=100, epochs=epochs, seed=0,
                         progress=False)
    seconds = time.perf_counter() - start
    loss = history.rows[-1]["train_loss"] if history.rows else math.nan
    return loss, history.status, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", default=",".join(GRIDS), help="comma-separated optimizer names")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (1 is fastest for batch 100)")
    args = parser.parse_args()
    data = sgdlab.data.load_mnist()
    print(f"MNIST 784-100-10, batch 100, {args.epochs} epochs; load average {os.getloadavg()[0]:.2f}")
    print(f"{'optimizer':<10} {'lr':>8} {'train loss':>11} {'status':>10} {'seconds':>8}")
    best = {}
    with threadpool_limits(limits=args.threads):
        for name in args.only.split(","):
            for lr in GRIDS[name]:
                loss, status, seconds = train_loss(data, name, lr, args.epochs)
                print(f"{name:<10} {lr:>8g} {loss:>11.4f} {status:>10} {seconds:>8.1f}", flush=True)
                if status == "completed" and math.isfinite(loss) and loss < best.get(name, (math.inf,))[0]:
                    best[name] = (loss, lr)
    print(f"\nbest per optimizer (load average {os.getloadavg()[0]:.2f}):")
    print(f"{'optimizer':<10} {'best lr':>8} {'train loss':>11}")
    for name, (loss, lr) in sorted(best.items(), key=lambda item: item[1][0]):
        print(f"{name:<10} {lr:>8g} {loss:>11.4f}")
    if "sgd" in best:
        sgd = best["sgd"][0]
        beaten = [n for n in ("momentum", "adam") if n in best and best[n][0] < sgd]
        print(f"lower than plain SGD's best ({sgd:.4f}): {', '.join(beaten) if beaten else 'none'}")


if __name__ == "__main__":
    main()
