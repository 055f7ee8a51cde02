"""Training speed side by side: sgdlab vs PyTorch (CPU) vs scikit-learn's MLPClassifier.

The same network, trained the same way (SGD, no momentum, lr 0.1, MNIST 50k,
float32, same batch size and thread count), timed in one process.  Prints
seconds per epoch (median of ``--repeats`` epochs after a warm-up epoch), test
accuracy after the timed epochs, peak memory growth, the ratio to sgdlab, and
the matrix-product limit: the time the forward/backward GEMMs alone take at
this machine's measured GEMM speed for those shapes.

    python benchmarks/train_speed.py                 # both configurations
    python benchmarks/train_speed.py --config small --repeats 5
    python benchmarks/train_speed.py --overhead      # per-iteration Python overhead, 784-8-10

Needs ``pip install torch==2.13.0 scikit-learn`` (optional: a missing one is skipped).
"""

import argparse
import gc
import os
import resource
import statistics
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import sgdlab as sl
from sgdlab.data import load_mnist
from sgdlab.optimizers import SGD
from sgdlab.training import Trainer

CONFIGS = {"small": ([784, 100, 10], 100), "large": ([784, 512, 512, 10], 128)}
LR = 0.1


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mnist_arrays():
    data = load_mnist()
    x = data.train.x.astype(np.float32) / 255
    xt = data.test.x.astype(np.float32) / 255
    return data, x, data.train.t, xt, data.test.t


def gemm_limit(sizes, batch, n, repeats=5):
    """Seconds per epoch of the GEMMs alone: forward x@W, backward x.T@dy and (past layer 1) dy@W.T."""
    rng = np.random.default_rng(0)
    steps = -(-n // batch)
    times = []
    ops = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        x = rng.random((batch, a), dtype=np.float32)
        w = rng.random((a, b), dtype=np.float32)
        dy = rng.random((batch, b), dtype=np.float32)
        y, dw, dx = np.empty((batch, b), np.float32), np.empty((a, b), np.float32), np.empty((batch, a), np.float32)
        ops.append((x, w, dy, y, dw, dx, k > 0))
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(200):
            for x, w, dy, y, dw, dx, need_dx in ops:
                np.matmul(x, w, out=y)
                np.matmul(x.T, dy, out=dw)
                if need_dx:
                    np.matmul(dy, w.T, out=dx)
        times.append((time.perf_counter() - t0) / 200)
    return statistics.median(times) * steps


def time_sgdlab(sizes, batch, repeats, data):
    model = sl.MLP(sizes, seed=0)
    epochs = []
    optimizer = SGD(LR)
    trainer = Trainer(model, data.train, optimizer, batch_size=batch, epochs=repeats + 1, progress=False)
    trainer._evaluate = lambda: None  # time training alone, as for the others
    per_epoch = trainer.iterations_per_epoch
    trainer.total_iterations = per_epoch
    for epoch in range(repeats + 1):
        t0 = time.perf_counter()
        trainer.run()
        epochs.append(time.perf_counter() - t0)
        trainer.total_iterations += per_epoch
        trainer._stop = None
    return statistics.median(epochs[1:]), model.evaluate(data.test)[1]


def time_torch(sizes, batch, repeats, x, t, xt, tt, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, T = torch.from_numpy(x), torch.from_numpy(t.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(X), generator=gen)
        for s in range(0, len(X), batch):
            idx = perm[s : s + batch]
            opt.zero_grad()
            loss = loss_fn(net(X[idx]), T[idx])
            loss.backward()
            opt.step()
        epochs.append(time.perf_counter() - t0)
    with torch.no_grad():
        acc = (net(torch.from_numpy(xt)).argmax(1).numpy() == tt).mean()
    return statistics.median(epochs[1:]), float(acc)


def time_sklearn(sizes, batch, repeats, x, t, xt, tt):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", momentum=0.0, learning_rate_init=LR,
                        batch_size=batch, max_iter=1, shuffle=True, random_state=0, tol=0, n_iter_no_change=10**9)
    epochs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            clf.partial_fit(x, t, classes=np.arange(10))
            epochs.append(time.perf_counter() - t0)
    return statistics.median(epochs[1:]), float(clf.score(xt, tt))


def overhead(data, n=3000):
    """Microseconds per iteration with a 784-8-10 net, where the matrix products are tiny."""
    model = sl.MLP([784, 8, 10], seed=0)
    results = []
    for _ in range(5):
        trainer = Trainer(model, data.train, SGD(LR), batch_size=100, iterations=n, progress=False)
        trainer._evaluate = lambda: None
        t0 = time.perf_counter()
        trainer.run()
        results.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["small", "large", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--overhead", action="store_true", help="only the per-iteration overhead figure")
    args = parser.parse_args()
    data, x, t, xt, tt = mnist_arrays()
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"# {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, threads={args.threads}, BLAS {blas}, "
          f"load {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]}, numpy {np.__version__}")
    with threadpool_limits(args.threads):
        print(f"overhead: {overhead(data):.1f} us per iteration (784-8-10, batch 100)")
        if args.overhead:
            return
        names = ["small", "large"] if args.config == "both" else [args.config]
        for name in names:
            sizes, batch = CONFIGS[name]
            limit = gemm_limit(sizes, batch, len(x))
            rows = []
            gc.collect()
            base = peak_rss_mb()
            sec, acc = time_sgdlab(sizes, batch, args.repeats, data)
            rows.append(("sgdlab", sec, acc, peak_rss_mb() - base))
            try:
                base = peak_rss_mb()
                sec, acc = time_torch(sizes, batch, args.repeats, x, t, xt, tt, args.threads)
                rows.append((f"pytorch {__import__('torch').__version__}", sec, acc, peak_rss_mb() - base))
            except ImportError:
                print("  (torch not installed: pip install torch==2.13.0)")
            try:
                base = peak_rss_mb()
                sec, acc = time_sklearn(sizes, batch, args.repeats, x, t, xt, tt)
                rows.append(("scikit-learn", sec, acc, peak_rss_mb() - base))
            except ImportError:
                print("  (scikit-learn not installed)")
            print(f"\n{'-'.join(map(str, sizes))}, batch {batch}, {args.repeats + 1} epochs each "
                  f"(first is warm-up); GEMM limit {limit:.3f} s/epoch")
            print(f"{'tool':<22}{'s/epoch':>9}{'test acc':>10}{'peak MB +':>11}{'vs sgdlab':>11}")
            ours = rows[0][1]
            for tool, sec, acc, mem in rows:
                print(f"{tool:<22}{sec:>9.3f}{acc:>10.4f}{mem:>11.0f}{sec / ours:>10.2f}x")
            print(f"sgdlab / pytorch = {ours / rows[1][1]:.2f}" if len(rows) > 1 else "", end="  ")
            print(f"sgdlab / sklearn = {ours / rows[-1][1]:.2f}" if rows[-1][0] == "scikit-learn" else "", end="  ")
            print(f"limit / sgdlab = {limit / ours:.2f}")


if __name__ == "__main__":
    main()
