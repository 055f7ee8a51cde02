"""Wall time of one sweep with 1 local worker vs N workers (BLAS threads = cores / workers).

    python benchmarks/sweep_speed.py [--dataset mnist] [--trials 6] [--epochs 1] [--repeats 3] [--workers 1 2]
                                     [--threads T]

Prints the median wall time of each worker count over the repeats (run interleaved), its ratio to 1 worker, and the
load average before and after (the machine may be shared: read the figures with it).
"""

import argparse
import os
import statistics
import tempfile
import time

from sgdlab.config import TrainConfig
from sgdlab.sweep import Sweep, build_space, local_executor_factory, threads_per_worker


def one_sweep(base, space, workers, threads):
    """Seconds from starting the pool to the last trial's row in sweep.csv."""
    with tempfile.TemporaryDirectory(prefix="sgdlab-bench-") as tmp:
        start = time.perf_counter()
        sweep = Sweep(base, space, os.path.join(tmp, "sweep"), local_executor_factory(workers), workers,
                      threads=threads)
        rows = sweep.run()
        seconds = time.perf_counter() - start
    assert len(rows) == len(space.points()) and all(r["status"] != "failed" for r in rows)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--trials", type=int, default=6, help="lr grid points (default 6)")
    parser.add_argument("--lr", default="1e-2:1:log", help="lr range, MIN:MAX:log (default 1e-2:1:log)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, help="BLAS threads per worker (default cores / workers)")
    args = parser.parse_args()
    base = TrainConfig(dataset=args.dataset, layers=(100,), optimizer="sgd", epochs=args.epochs)
    _, space = build_space({"lr": args.lr}, trials=args.trials, grid=True)
    print(f"sweep: {args.dataset} 784-100-10 sgd, {len(space.points())} trials x {args.epochs} epoch(s), "
          f"{os.cpu_count()} cores; load average before {os.getloadavg()}")
    times = {workers: [] for workers in args.workers}
    for _ in range(args.repeats):  # interleaved (1, 2, 1, 2, ...): a drifting machine load hits every count alike
        for workers in args.workers:
            times[workers].append(one_sweep(base, space, workers, args.threads or threads_per_worker(workers)))
    medians = {}
    for workers, seconds in times.items():
        medians[workers] = statistics.median(seconds)
        print(f"workers={workers} x {args.threads or threads_per_worker(workers)} BLAS threads: median "
              f"{medians[workers]:.2f}s (runs: {', '.join(f'{t:.2f}' for t in seconds)})", flush=True)
    first = medians[args.workers[0]]
    print(f"{'workers':>8} {'median s':>9} {'ratio':>6}")
    for workers, seconds in medians.items():
        print(f"{workers:>8} {seconds:>9.2f} {seconds / first:>6.2f}")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
