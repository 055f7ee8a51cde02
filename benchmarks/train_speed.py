"""Training speed side by side: sgdlab vs PyTorch (CPU) vs scikit-learn's MLPClassifier.

The same network, trained the same way (SGD, no momentum, lr 0.1, MNIST 50k,
float32, same batch size and thread count), timed in one process.  sgdlab is
called as a user calls it: ``sl.fit`` with its defaults, one call per epoch.  Prints
seconds per epoch (median of ``--repeats`` epochs after a warm-up epoch; the tools'
epochs interleaved), test accuracy after the timed epochs, peak memory growth,
the ratio to sgdlab, and the matrix-product limit: the time the forward/backward
GEMMs alone take for those shapes, timed epoch by epoch among the tools' epochs.

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

from reference import cpu_model, torch_epoch

CONFIGS = {"small": ([784, 100, 10], 100), "large": ([784, 512, 512, 10], 128)}
LR = 0.1


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mnist_arrays():
    data = load_mnist()
    x = data.train.x.astype(np.float32) / 255
    xt = data.test.x.astype(np.float32) / 255
    return data, x, data.train.t, xt, data.test.t


class GemmLimit:
    """The forward/backward GEMMs alone, for one epoch's worth of steps at these shapes: x@W,
    x.T@dy and (past layer 1) dy@W.T, into preallocated outputs.  Timed like a tool (interleaved with
    them), so a machine that changes speed mid-run moves the limit and the tools alike."""

    name = "GEMM limit"

    def __init__(self, sizes, batch, data, x, t, threads):
        rng = np.random.default_rng(0)
        self.steps = -(-len(x) // batch)
        self.ops = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            xk, w, dy = (rng.random(shape, dtype=np.float32) for shape in ((batch, a), (a, b), (batch, b)))
            outs = np.empty((batch, b), np.float32), np.empty((a, b), np.float32), np.empty((batch, a), np.float32)
            self.ops.append((xk, w, dy, *outs, k > 0))

    def epoch(self):
        t0 = time.perf_counter()
        for _ in range(self.steps):
            for x, w, dy, y, dw, dx, need_dx in self.ops:
                np.matmul(x, w, out=y)
                np.matmul(x.T, dy, out=dw)
                if need_dx:
                    np.matmul(dy, w.T, out=dx)
        return time.perf_counter() - t0

    def accuracy(self, xt, tt):
        return float("nan")


class SgdlabRunner:
    """sgdlab as a user calls it: ``sl.fit(model, data.train, optimizer, batch_size=..., epochs=1)`` per epoch, with
    fit's defaults (running train metrics, automatic sampling); no validation set, as for the others."""

    name = "sgdlab"

    def __init__(self, sizes, batch, data, x, t, threads):
        self.model, self.data, self.batch = sl.MLP(sizes, seed=0), data, batch
        self.optimizer = SGD(lr=LR)
        self.seed = 0

    def epoch(self):
        self.seed += 1  # a new permutation each epoch, as the others draw
        t0 = time.perf_counter()
        sl.fit(self.model, self.data.train, self.optimizer, batch_size=self.batch, epochs=1, seed=self.seed,
               progress=False)
        return time.perf_counter() - t0

    def accuracy(self, xt, tt):
        return self.model.evaluate(self.data.test)[1]


class TorchRunner:
    """PyTorch: a plain manual-slicing loop over a fresh permutation each epoch."""

    def __init__(self, sizes, batch, data, x, t, threads):
        import torch

        self.torch, self.name = torch, f"pytorch {torch.__version__}"
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        layers = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if k < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.X, self.T = torch.from_numpy(x), torch.from_numpy(t.astype(np.int64))
        self.gen, self.batch = torch.Generator().manual_seed(0), batch

    def epoch(self):
        return torch_epoch(self.torch, self.net, self.opt, self.loss_fn, self.X, self.T, self.batch, self.gen)

    def accuracy(self, xt, tt):
        with self.torch.no_grad():
            return float((self.net(self.torch.from_numpy(xt)).argmax(1).numpy() == tt).mean())


class SklearnRunner:
    """scikit-learn's MLPClassifier (sgd, momentum 0), one ``partial_fit`` per epoch."""

    name = "scikit-learn"

    def __init__(self, sizes, batch, data, x, t, threads):
        from sklearn.neural_network import MLPClassifier

        self.clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", momentum=0.0,
                                 learning_rate_init=LR, batch_size=batch, max_iter=1, shuffle=True, random_state=0,
                                 tol=0, n_iter_no_change=10**9)
        self.x, self.t = x, t

    def epoch(self):
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            self.clf.partial_fit(self.x, self.t, classes=np.arange(10))
            return time.perf_counter() - t0

    def accuracy(self, xt, tt):
        return float(self.clf.score(xt, tt))


RUNNERS = (SgdlabRunner, TorchRunner, SklearnRunner, GemmLimit)


def compare(sizes, batch, repeats, data, x, t, xt, tt, threads, tools=("sgdlab", "torch", "sklearn")):
    """[(tool, median s/epoch, test accuracy, peak MB growth)], the GEMM limit last: a warm-up epoch each,
    then epochs interleaved.

    Interleaving (sgdlab, torch, sklearn, sgdlab, ...) makes a machine that speeds up or slows
    down mid-run (shared, noisy) weigh on every tool alike instead of on whichever ran then.
    """
    runners, growth = [], []
    for cls in [c for c in RUNNERS if c is GemmLimit or c.__name__.lower().startswith(tools)]:
        gc.collect()
        base = peak_rss_mb()
        try:
            runner = cls(sizes, batch, data, x, t, threads)
        except ImportError as exc:
            print(f"  ({cls.__name__}: {exc.name} not installed: pip install torch==2.13.0 scikit-learn)")
            continue
        runner.epoch()  # warm-up
        runners.append(runner)
        growth.append(peak_rss_mb() - base)
    seconds = [[] for _ in runners]
    for _ in range(repeats):
        for k, runner in enumerate(runners):
            seconds[k].append(runner.epoch())
    return [(r.name, statistics.median(s), r.accuracy(xt, tt), g) for r, s, g in zip(runners, seconds, growth)]


def overhead(data, n=3000):
    """Microseconds per iteration with a 784-8-10 net, where the matrix products are tiny (``sl.fit``, defaults)."""
    model = sl.MLP([784, 8, 10], seed=0)
    results = []
    for _ in range(5):
        t0 = time.perf_counter()
        sl.fit(model, data.train, SGD(LR), batch_size=100, iterations=n, progress=False)
        results.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["small", "large", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--overhead", action="store_true", help="only the per-iteration overhead figure")
    parser.add_argument("--tools", nargs="+", default=["sgdlab", "torch", "sklearn"],
                        help="tools to time (default all; sgdlab comes first and is always among them)")
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
            *rows, (_, limit, _, _) = compare(sizes, batch, args.repeats, data, x, t, xt, tt, args.threads,
                                                 tuple({"sgdlab", *args.tools}))
            print(f"\n{'-'.join(map(str, sizes))}, batch {batch}, {args.repeats + 1} epochs each "
                  f"(first is warm-up, then interleaved, the GEMM limit's too); GEMM limit {limit:.3f} s/epoch")
            print(f"CPU: {cpu_model()}")
            print(f"{'tool':<22}{'s/epoch':>9}{'test acc':>10}{'peak MB +':>11}{'vs sgdlab':>11}")
            ours = rows[0][1]
            for tool, sec, acc, mem in rows:
                print(f"{tool:<22}{sec:>9.3f}{acc:>10.4f}{mem:>11.0f}{sec / ours:>10.2f}x")
            others = {tool.split()[0]: sec for tool, sec, _, _ in rows[1:]}
            ratios = [f"sgdlab / {tool} = {ours / sec:.2f}" for tool, sec in others.items()]
            print("  ".join([*ratios, f"limit / sgdlab = {limit / ours:.2f}"]))


if __name__ == "__main__":
    main()
