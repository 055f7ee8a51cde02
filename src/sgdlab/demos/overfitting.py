"""``sgdlab demo overfitting``: the tutorial's overfitting experiment, and its remedies.

300 MNIST training samples, 6 hidden ReLU layers of 100, SGD lr 0.01, batch 100,
200 epochs: plain, with L2 weight decay 0.1, and with dropout 0.2.  Curves are
train vs validation accuracy per epoch (validation = 1,000 held-out MNIST
training images); final accuracies use the 10,000 test images.  The plain run
is trained once more with early stopping on val_loss, to show where it stops and
what restoring the best epoch gives.
"""

import os
import time

import numpy as np

N_TRAIN, N_VAL = 300, 1000
HIDDEN = [100] * 6
LR, BATCH_SIZE, EPOCHS, QUICK_EPOCHS = 0.01, 100, 200, 125
PATIENCE = 20
VARIANTS = {"plain": {}, "weight_decay": {"weight_decay": 0.1}, "dropout": {"dropout": 0.2}}


def overfitting(out_dir, show=False, quick=False, seed=0):
    """Train the three variants, draw ``overfitting.png``; returns accuracies, gaps, onsets, early stopping.

    ``show`` prints the numbers and opens the picture where a display exists.
    """
    from threadpoolctl import threadpool_limits

    from ..data import load_mnist
    from . import show_figures

    mnist = load_mnist()
    train = mnist.train.subset(np.arange(N_TRAIN))
    val = mnist.val.subset(np.arange(N_VAL))
    test = mnist.test
    epochs = QUICK_EPOCHS if quick else EPOCHS
    # batches of 100 x 100 units: one BLAS thread is faster than several (no thread hand-offs)
    with threadpool_limits(limits=1):
        results, histories = {}, {}
        for name, settings in VARIANTS.items():
            result, history, _ = _train(settings, train, val, test, epochs, seed)
            results[name], histories[name] = result, history
        early = _early_stopping_run(train, val, test, epochs, seed, results["plain"])
    plain_gap = results["plain"]["gap"]
    for result in results.values():
        result["gap_ratio"] = result["gap"] / plain_gap if plain_gap > 0 else float("nan")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(os.fspath(out_dir), "overfitting.png")
    _draw(histories, results, early).savefig(path, dpi=110)
    if show:
        _print(results, early, epochs)
        show_figures([path], show)
    return {"files": [path], "epochs": epochs, "n_train": N_TRAIN, "variants": results, "early_stopping": early}


def _model(settings, seed):
    from ..model import MLP

    return MLP([784, *HIDDEN, 10], activation="relu", seed=seed, **settings)


def _train(settings, train, val, test, epochs, seed, callbacks=()):
    from ..optimizers import SGD
    from ..training import fit, overfitting_onset

    model = _model(settings, seed)
    start = time.perf_counter()
    history = fit(model, train, SGD(LR), batch_size=BATCH_SIZE, epochs=epochs, validation=val,
                  callbacks=callbacks, seed=seed, progress=False,
                  train_metrics="full")  # the curves compare train and test accuracy of the same parameters
    seconds = time.perf_counter() - start
    _, train_acc = model.evaluate(train)
    _, test_acc = model.evaluate(test)
    result = {"settings": dict(settings), "train_accuracy": train_acc, "val_accuracy": history.rows[-1]["val_acc"],
              "test_accuracy": test_acc, "gap": train_acc - test_acc,
              "onset_epoch": overfitting_onset(history),
              "early_stop_epoch": would_stop_at(history, PATIENCE), "seconds": round(seconds, 2)}
    return result, history, model


def would_stop_at(history, patience, monitor="val_loss"):
    """The epoch where EarlyStopping(monitor, patience) would have ended this run; None if it would not."""
    from ..callbacks import early_stop_epoch

    return early_stop_epoch(history.rows, monitor=monitor, patience=patience)


def _early_stopping_run(train, val, test, epochs, seed, plain):
    """The plain variant with EarlyStopping(val_loss, patience, restore_best): where it stops, what it restores."""
    from ..training import Callback, EarlyStopping

    stopper = EarlyStopping(monitor="val_loss", patience=PATIENCE, restore_best=True)
    last = {}

    class LastEpoch(Callback):
        """Test accuracy of the last epoch's parameters (runs before the stopper restores the best)."""

        def on_train_end(self, trainer):
            last["test_accuracy"] = trainer.model.evaluate(test)[1]

    result, history, model = _train({}, train, val, test, epochs, seed, callbacks=[LastEpoch(), stopper])
    restored_val_loss, _ = model.evaluate(val)
    return {"status": history.status, "stopped_reason": history.stopped_reason,
            "stopped_epoch": history.rows[-1]["epoch"], "best_epoch": history.best_epoch,
            "best_val_loss": history.best_row["val_loss"], "restored_val_loss": restored_val_loss,
            "restored_test_accuracy": result["test_accuracy"], "last_epoch_test_accuracy": last["test_accuracy"],
            "full_run_test_accuracy": plain["test_accuracy"]}


def _draw(histories, results, early):
    from ..plots import _figure

    fig = _figure(width=15, height=4.4)
    axes = fig.subplots(1, len(histories), sharey=True)
    titles = {"plain": "no regularisation", "weight_decay": "weight decay 0.1", "dropout": "dropout 0.2"}
    for ax, (name, history) in zip(axes, histories.items()):
        r = results[name]
        epochs = [row["epoch"] for row in history.rows]
        ax.plot(epochs, history.column("train_acc"), "-", color="tab:blue", label="train")
        ax.plot(epochs, history.column("val_acc"), "-", color="tab:orange", label="validation")
        if r["onset_epoch"] is not None:
            ax.axvline(r["onset_epoch"], color="tab:purple", linestyle="--",
                       label=f"overfitting onset: epoch {r['onset_epoch']}")
        if r["early_stop_epoch"] is not None:
            ax.axvline(r["early_stop_epoch"], color="tab:red", linestyle=":",
                       label=f"early stopping (val_loss, patience {PATIENCE}): epoch {r['early_stop_epoch']}")
        ax.set_title(f"{titles[name]}\ntrain {r['train_accuracy']:.3f}, test {r['test_accuracy']:.3f}, "
                     f"gap {r['gap']:.3f}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(0, 1.02)
    fig.suptitle(f"Overfitting: {N_TRAIN} MNIST samples, 6x100 ReLU, SGD lr {LR}; early stopping restores epoch "
                 f"{early['best_epoch']} (test {early['restored_test_accuracy']:.3f})")
    return fig


def _print(results, early, epochs):
    print(f"{epochs} epochs on {N_TRAIN} samples")
    for name, r in results.items():
        print(f"{name:>13}: train {r['train_accuracy']:.4f}  test {r['test_accuracy']:.4f}  gap {r['gap']:.4f} "
              f"({r['gap_ratio']:.2f} of plain)  onset {r['onset_epoch']}  early stop {r['early_stop_epoch']}  "
              f"{r['seconds']:.1f}s")
    print(f"early stopping: {early['stopped_reason']}; test {early['restored_test_accuracy']:.4f} restored vs "
          f"{early['last_epoch_test_accuracy']:.4f} at its last epoch")
