"""The overfitting demo's experiment over several seeds: how far do the remedies shrink the gap?

For each seed: 300 MNIST samples, 6x100 ReLU, SGD lr 0.01, batch 100, 200 epochs (the
demo's settings), trained plain, with weight decay 0.1, and with dropout at each
``--dropout`` rate. Prints train and test accuracy, the gap (train - test), and the gap as
a fraction of the plain run's. The issue asks for <= 0.67, a shrink by a third. Then the
plain run with EarlyStopping(patience 20, restore_best) on val_loss and on val_acc: the
restored model's test accuracy against the last epoch's.

    python benchmarks/overfitting_seeds.py                   # seeds 0-4, dropout 0.2
    python benchmarks/overfitting_seeds.py --seeds 3 --dropout 0.1 0.2 0.3
"""

import argparse
import statistics

import numpy as np
from threadpoolctl import threadpool_limits

from sgdlab.data import load_mnist
from sgdlab.demos import overfitting as demo
from sgdlab.training import Callback, EarlyStopping


def early_stopping(train, val, test, seed, monitor):
    """(restored model's test accuracy, last epoch's test accuracy, best epoch, stopped epoch)."""
    stopper = EarlyStopping(monitor=monitor, patience=demo.PATIENCE, restore_best=True)
    last = {}

    class LastEpoch(Callback):
        def on_train_end(self, trainer):
            last["acc"] = trainer.model.evaluate(test)[1]

    result, history, _ = demo._train({}, train, val, test, demo.EPOCHS, seed, callbacks=[LastEpoch(), stopper])
    return result["test_accuracy"], last["acc"], history.best_epoch, history.rows[-1]["epoch"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.2])
    args = parser.parse_args()
    mnist = load_mnist()
    train = mnist.train.subset(np.arange(demo.N_TRAIN))
    val, test = mnist.val.subset(np.arange(demo.N_VAL)), mnist.test
    variants = {"weight decay 0.1": {"weight_decay": 0.1}}
    variants.update({f"dropout {r:g}": {"dropout": r} for r in args.dropout})
    ratios = {name: [] for name in variants}
    print(f"{demo.N_TRAIN} samples, 6x100 ReLU, SGD lr {demo.LR}, batch {demo.BATCH_SIZE}, {demo.EPOCHS} epochs")
    with threadpool_limits(limits=1):
        for seed in range(args.seeds):
            plain, _, _ = demo._train({}, train, val, test, demo.EPOCHS, seed)
            print(f"seed {seed} plain: train {plain['train_accuracy']:.4f} test {plain['test_accuracy']:.4f} "
                  f"gap {plain['gap']:.4f}")
            for name, settings in variants.items():
                r, _, _ = demo._train(settings, train, val, test, demo.EPOCHS, seed)
                ratios[name].append(r["gap"] / plain["gap"])
                print(f"seed {seed} {name}: train {r['train_accuracy']:.4f} test {r['test_accuracy']:.4f} "
                      f"gap {r['gap']:.4f} = {ratios[name][-1]:.2f} of plain", flush=True)
            for monitor in ("val_loss", "val_acc"):
                restored, last, best, stopped = early_stopping(train, val, test, seed, monitor)
                print(f"seed {seed} early stopping on {monitor}: best epoch {best}, stopped {stopped}; test "
                      f"{restored:.4f} restored vs {last:.4f} at the last epoch "
                      f"({'>=' if restored >= last else '<'})", flush=True)
    for name, values in ratios.items():
        print(f"{name}: gap / plain gap, median {statistics.median(values):.2f} "
              f"(seeds: {', '.join(f'{v:.2f}' for v in values)}); target <= 0.67")


if __name__ == "__main__":
    main()
