"""Conv-net training speed: sgdlab vs a plain PyTorch CPU loop, on chapter 7's network (issue 18).

Conv(1->16, 5x5) ReLU MaxPool(2) Conv(16->32, 5x5) ReLU MaxPool(2) Flatten Dense(512->100) ReLU
Dense(100->10); SGD momentum 0.9, lr 0.05, batch 100, MNIST 50k, float32, the same thread count for
both.  Prints, with the CPU model:

* seconds per epoch, every epoch after the first, the two tools' epochs interleaved in one process
  (the order alternates each epoch, so a machine that slows down mid-run weighs on both alike);
  median, min and max, and the ratio sgdlab / PyTorch;
* test accuracy after each epoch;
* peak RSS growth: each tool alone in a child process, peak resident memory while it builds the
  model, trains ``--rss-iterations`` iterations and evaluates the test set, minus the resident memory
  before (data loaded and libraries imported);
* where an sgdlab iteration goes: each layer's forward and backward timed through its public
  methods, the conv layers' matrix products timed alone at the same shapes; GEMM = those + Dense
  layers, im2col/col2im = the conv layers' remaining time (with bias and weight reordering),
  pooling = pool layers, rest = a whole iteration timed in the same loop minus all of these
  (ReLU, Flatten, loss, optimizer step, batch gathering).

    python benchmarks/conv_speed.py --epochs 3 --threads 2

Needs ``pip install torch==2.13.0``.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import sgdlab as sl
from sgdlab.conv import Conv2D, Flatten, MaxPool2D
from sgdlab.data import load_mnist
from sgdlab.layers import Dense, ReLU
from sgdlab.optimizers import Momentum

from reference import cpu_model, torch_epoch

LR, MOMENTUM, BATCH = 0.05, 0.9, 100


def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def reset_peak_rss():
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Sgdlab:
    """sgdlab as a user writes it: the layers, ``sl.fit`` one epoch per call, ``model.evaluate``."""

    name = "sgdlab"

    def __init__(self, data, threads):
        self.data = data
        self.model = sl.Sequential([Conv2D(1, 16, 5), ReLU(), MaxPool2D(2), Conv2D(16, 32, 5), ReLU(), MaxPool2D(2),
                                    Flatten(), Dense(512, 100), ReLU(), Dense(100, 10)], input_shape=(1, 28, 28),
                                   seed=0)
        self.optimizer = Momentum(lr=LR, momentum=MOMENTUM)
        self.epochs = 0

    def train(self, epochs=1, iterations=None):
        t0 = time.perf_counter()
        sl.fit(self.model, self.data.train, self.optimizer, batch_size=BATCH, epochs=None if iterations else epochs,
               iterations=iterations, seed=self.epochs, progress=False, train_metrics="running")
        self.epochs += 1
        return time.perf_counter() - t0

    def accuracy(self):
        return self.model.evaluate(self.data.test)[1]


class Torch:
    """PyTorch: the same network, a plain loop over a fresh permutation each epoch."""

    def __init__(self, data, threads):
        import torch

        self.torch, self.name = torch, f"pytorch {torch.__version__}"
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        nn = torch.nn
        self.net = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(),
                                 nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 100), nn.ReLU(), nn.Linear(100, 10))
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM)
        self.loss_fn = nn.CrossEntropyLoss()
        as_float = lambda ds: torch.from_numpy(ds.x.reshape(-1, 1, 28, 28).astype(np.float32) / 255)  # noqa: E731
        self.X, self.T = as_float(data.train), torch.from_numpy(data.train.t.astype(np.int64))
        self.Xt, self.Tt = as_float(data.test), data.test.t
        self.gen = torch.Generator().manual_seed(0)

    def train(self, epochs=1, iterations=None):
        return torch_epoch(self.torch, self.net, self.opt, self.loss_fn, self.X, self.T, BATCH, self.gen,
                           stop=None if iterations is None else iterations * BATCH)

    def accuracy(self):
        with self.torch.no_grad():
            labels = np.concatenate([self.net(self.Xt[s : s + 1000]).argmax(1).numpy()
                                     for s in range(0, len(self.Xt), 1000)])
        return float(np.mean(labels == self.Tt))


TOOLS = {"sgdlab": Sgdlab, "torch": Torch}


def rss_child(tool, threads, iterations):
    """Run in a child process: peak RSS growth of one tool training ``iterations`` and evaluating."""
    data = load_mnist(flatten=False)
    if tool == "torch":
        import torch  # noqa: F401  (imported before the baseline, like sgdlab)
    with threadpool_limits(threads):
        base = rss_mb()
        reset_peak_rss()
        runner = TOOLS[tool](data, threads)
        runner.train(iterations=iterations)
        runner.accuracy()
        print(json.dumps({"growth_mb": peak_rss_mb() - base}))


def rss_growth(tool, threads, iterations):
    out = subprocess.run([sys.executable, __file__, "--rss-child", tool, "--threads", str(threads),
                          "--rss-iterations", str(iterations)], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["growth_mb"]


def time_shares(runner, batches=30):
    """({GEMM, im2col/col2im, pooling, rest}, iteration): seconds, from public methods, measured together.

    An iteration (gather a batch, ``model.gradient``, ``optimizer.update``) is timed in the same loop as
    the layers' forward and backward passes, so a machine whose speed changes moves both alike.
    """
    model, rng, train = runner.model, np.random.default_rng(0), runner.data.train
    optimizer = Momentum(lr=1e-9, momentum=MOMENTUM)  # a real update that leaves the trained model as it is
    layer_time, iteration = np.zeros((len(model.layers), 3)), 0.0  # forward, backward, the GEMMs alone
    gemms = {k: conv_gemms(layer, need_dx=k > 0) for k, layer in enumerate(model.layers) if isinstance(layer, Conv2D)}
    for _ in range(batches):
        for k, products in gemms.items():
            t0 = time.perf_counter()
            products()
            layer_time[k, 2] += time.perf_counter() - t0
        t0 = time.perf_counter()
        x, t = train.batch(rng.integers(0, len(train), BATCH))
        model.gradient(x, t)
        optimizer.update(model.params, model.grads)
        iteration += time.perf_counter() - t0
        y = x.reshape(BATCH, *model.input_shape)
        for k, layer in enumerate(model.layers):
            t0 = time.perf_counter()
            y = layer.forward(y, True)
            layer_time[k, 0] += time.perf_counter() - t0
        model.loss_layer.forward(y, t)
        dy = model.loss_layer.backward()
        for k in range(len(model.layers) - 1, -1, -1):
            t0 = time.perf_counter()
            dy = model.layers[k].backward(dy, need_dx=k > 0)
            layer_time[k, 1] += time.perf_counter() - t0
    layer_time /= batches
    iteration /= batches
    shares = {"GEMM": 0.0, "im2col/col2im": 0.0, "pooling": 0.0}
    for k, layer in enumerate(model.layers):
        total, gemm = layer_time[k, :2].sum(), layer_time[k, 2]
        if isinstance(layer, Dense):
            shares["GEMM"] += total
        elif isinstance(layer, Conv2D):
            shares["GEMM"] += gemm
            shares["im2col/col2im"] += max(total - gemm, 0.0)
        elif type(layer).__name__.endswith("Pool2D"):
            shares["pooling"] += total
    shares["rest"] = max(iteration - sum(shares.values()), 0.0)
    return shares, iteration


def conv_gemms(layer, need_dx):
    """The conv layer's matrix products alone, same shapes: forward and [dW; db] (im2col's extra column of
    ones carries the bias) and, unless it is the first layer, the input gradient."""
    (kh, kw), (oh, ow) = layer.kernel, layer.out_hw
    rows, k, o = BATCH * oh * ow, kh * kw * layer.in_channels, layer.out_channels
    rng = np.random.default_rng(0)
    cols, w, dy = (rng.random(s, dtype=np.float32) for s in ((rows, k + 1), (k + 1, o), (rows, o)))
    y, dw, dcols = np.empty((rows, o), np.float32), np.empty((k + 1, o), np.float32), np.empty((rows, k), np.float32)

    def products():
        np.matmul(cols, w, out=y)
        np.matmul(cols.T, dy, out=dw)
        if need_dx:
            np.matmul(dy, w[:k].T, out=dcols)

    return products


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per tool (the first is not timed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-iterations", type=int, default=100)
    parser.add_argument("--rss-child", choices=list(TOOLS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.threads, args.rss_iterations)
    data = load_mnist(flatten=False)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  {cpu_model()}, {os.cpu_count()} cores, threads={args.threads}, "
          f"load {os.getloadavg()[0]:.2f}, numpy {np.__version__}")
    with threadpool_limits(args.threads):
        runners = [Sgdlab(data, args.threads), Torch(data, args.threads)]
        seconds, accuracy = [[] for _ in runners], [[] for _ in runners]
        for epoch in range(args.epochs):
            order = range(len(runners)) if epoch % 2 == 0 else reversed(range(len(runners)))
            for k in order:
                took = runners[k].train()
                if epoch > 0:
                    seconds[k].append(took)
                accuracy[k].append(runners[k].accuracy())
            print(f"epoch {epoch + 1}: " + "  ".join(
                f"{r.name} {accuracy[k][-1]:.4f}" + (f" ({seconds[k][-1]:.2f} s)" if epoch else " (warm-up)")
                for k, r in enumerate(runners)), flush=True)
        shares, iteration = time_shares(runners[0])
    growth = [rss_growth(tool, args.threads, args.rss_iterations) for tool in TOOLS]
    print(f"\nchapter 7 conv net, batch {BATCH}, {args.epochs} epochs each, the first a warm-up")
    print(f"{'tool':<16}{'s/epoch med':>12}{'min':>8}{'max':>8}{'test acc':>10}{'peak RSS +MB':>14}")
    for k, r in enumerate(runners):
        s = seconds[k] or [float("nan")]
        print(f"{r.name:<16}{statistics.median(s):>12.2f}{min(s):>8.2f}{max(s):>8.2f}{accuracy[k][-1]:>10.4f}"
              f"{growth[k]:>14.0f}")
    if seconds[0] and seconds[1]:
        ratios = [a / b for a, b in zip(seconds[0], seconds[1])]
        print(f"sgdlab / pytorch: s/epoch {statistics.median(seconds[0]) / statistics.median(seconds[1]):.2f}x "
              f"(per epoch pair {', '.join(f'{r:.2f}' for r in ratios)}), accuracy "
              f"{100 * (accuracy[0][-1] - accuracy[1][-1]):+.2f} points, RSS growth {growth[0] / growth[1]:.2f}x")
    print(f"an sgdlab iteration (timed apart, {1e3 * iteration:.1f} ms): " + ", ".join(
        f"{name} {100 * value / iteration:.0f}% ({1e3 * value:.1f} ms)" for name, value in shares.items()))


if __name__ == "__main__":
    main()
