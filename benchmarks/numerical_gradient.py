"""Numerical gradient: plain per-parameter loop vs the fast batched path vs backprop.

784-50-10 MLP (ReLU, softmax cross-entropy), one batch of 100 MNIST images (random pixels
if MNIST is not cached), float64.  The plain loop (two full forward passes per parameter)
takes many seconds for all 39,760 parameters, so by default it runs on a random subset and
its time per parameter is multiplied by the total (said in the output); --loop-params all
runs it on every parameter.

    python benchmarks/numerical_gradient.py [--loop-params 2000] [--repeat 3] [--threads N]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np


def batch(n=100, seed=0):
    try:
        cache = Path(os.environ.get("SGDLAB_DATA") or Path.home() / ".cache" / "sgdlab") / "mnist"
        if not any(cache.glob("*.npy")):
            raise FileNotFoundError(cache)  # no download from a benchmark
        from sgdlab.data import load_mnist

        x, t = load_mnist().train.batch(np.arange(n))
        return x.astype(np.float64), t, "MNIST train[:100]"
    except Exception:
        rng = np.random.default_rng(seed)
        return rng.random((n, 784)), rng.integers(0, 10, n), "random pixels (MNIST not cached)"


def best_time(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-params", default="2000", help="parameters the plain loop runs on, or 'all'")
    parser.add_argument("--repeat", type=int, default=3, help="timings per method (best is reported)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as configured)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from sgdlab import MLP
    from sgdlab.fast_gradient import _loop_gradient, _prepare, scaled_steps

    x, t, source = batch(seed=args.seed)
    model = MLP([784, 50, 10], dtype=np.float64, seed=args.seed)
    n_params = model.params.size
    rng = np.random.default_rng(args.seed)
    subset = (np.arange(n_params) if args.loop_params == "all"
              else np.sort(rng.choice(n_params, size=min(int(args.loop_params), n_params), replace=False)))
    with threadpool_limits(args.threads):
        t_bp, (_, g_bp) = best_time(lambda: model.gradient(x, t), args.repeat)
        g_bp = g_bp.copy()
        t_fast, g_fast = best_time(lambda: model.numerical_gradient(x, t), args.repeat)
        t_complex, g_complex = best_time(lambda: model.numerical_gradient(x, t, method="complex"), args.repeat)
        x64, t64 = _prepare(model, x, t)
        steps = scaled_steps(model.params)
        start = time.perf_counter()
        g_loop = _loop_gradient(model, x64, t64, steps, subset)
        t_loop_part = time.perf_counter() - start
    t_loop = t_loop_part / subset.size * n_params
    scale = np.max(np.abs(g_bp))
    loop_vs_fast = np.max(np.abs(g_loop - g_fast[subset]))
    loop_vs_bp = np.max(np.abs(g_loop - g_bp[subset]))

    print(f"numerical gradient, 784-50-10 ReLU MLP, batch 100 ({source}), float64, {n_params} parameters")
    measured = "all parameters" if subset.size == n_params else (
        f"{subset.size} random parameters, x {n_params / subset.size:.1f} for the total")
    rows = [
        ("plain loop (2 forward passes/param)", t_loop, f"{loop_vs_bp / scale:.2e}", measured),
        ("fast central differences", t_fast, f"{np.max(np.abs(g_fast - g_bp)) / scale:.2e}",
         f"all parameters; vs plain loop: max |diff| {loop_vs_fast:.2e} = {loop_vs_fast / scale:.2e} of max |g|"),
        ("fast complex step (h=1e-20)", t_complex, f"{np.max(np.abs(g_complex - g_bp)) / scale:.2e}",
         "all parameters"),
        ("backprop", t_bp, "0", ""),
    ]
    print(f"{'method':<38}{'s/gradient':>12}{'vs backprop':>14}  notes")
    print(f"{'(relative: max|diff| / max|g|)':<38}{'':>12}{'':>14}")
    for name, seconds, diff, note in rows:
        print(f"{name:<38}{seconds:>12.4g}{diff:>14}  {note}")
    print(f"speed: fast central / plain loop = {t_loop / t_fast:.0f}x faster; "
          f"complex step {t_loop / t_complex:.0f}x; backprop {t_fast / t_bp:.0f}x faster than fast central")
    print(f"plain loop per parameter: {t_loop_part / subset.size * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
