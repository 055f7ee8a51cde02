"""Wall time of one sweep with 1 local worker vs N workers (BLAS threads = cores / workers).

    python benchmarks/sweep_speed.py [--dataset mnist] [--trials 6] [--epochs 1] [--repeats 3] [--workers 1 2]
                                     [--threads T]
    python benchmarks/sweep_speed.py --workers 1 2 1x1    # also 1 worker with 1 BLAS thread

Prints the median wall time of each worker count over the repeats (run interleaved), its ratio to the first, and the
load average before and after (the machine may be shared: read the figures with it).  A count written ``NxT`` runs N
workers with T BLAS threads each.  With ``1x1`` among them it also prints how much one worker gains from all the
cores' BLAS threads (s = time 1x1 / time 1 worker) and the best ratio N workers can then reach, s / N: one worker
already uses the other cores for its matrix products, so N workers cannot be N times faster than it.
"""

import argparse
import os
import statistics
import tempfile
import time

from sgdlab.config import TrainConfig
from sgdlab.sweep import TRIAL_DEFAULTS, Sweep, build_space, local_executor_factory, threads_per_worker


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
    parser.add_argument("--workers", nargs="+", default=["1", "2"], help="worker counts, or NxT (N workers x T threads)")
    parser.add_argument("--threads", type=int, help="BLAS threads per worker (default cores / workers)")
    args = parser.parse_args()
    base = TrainConfig(dataset=args.dataset, layers=(100,), optimizer="sgd", epochs=args.epochs, **TRIAL_DEFAULTS)
    _, space = build_space({"lr": args.lr}, trials=args.trials, grid=True)
    print(f"sweep: {args.dataset} 784-100-10 sgd, {len(space.points())} trials x {args.epochs} epoch(s), "
          f"{os.cpu_count()} cores; load average before {os.getloadavg()}")
    layouts = [layout(w, args.threads) for w in args.workers]
    times = {lay: [] for lay in layouts}
    for _ in range(args.repeats):  # interleaved (1, 2, 1, 2, ...): a drifting machine load hits every count alike
        for workers, threads in layouts:
            times[workers, threads].append(one_sweep(base, space, workers, threads))
    medians = {}
    for (workers, threads), seconds in times.items():
        medians[workers, threads] = statistics.median(seconds)
        print(f"workers={workers} x {threads} BLAS threads: median "
              f"{medians[workers, threads]:.2f}s (runs: {', '.join(f'{t:.2f}' for t in seconds)})", flush=True)
    first = medians[layouts[0]]
    print(f"{'workers':>8} {'threads':>8} {'median s':>9} {'ratio':>6}")
    for (workers, threads), seconds in medians.items():
        print(f"{workers:>8} {threads:>8} {seconds:>9.2f} {seconds / first:>6.2f}")
    single = medians.get((1, 1))
    for (workers, threads), seconds in medians.items():
        if single and workers == 1 and threads > 1:
            gain = single / seconds
            print(f"1 worker gains {gain:.2f}x from {threads} BLAS threads: N workers x 1 thread can reach at best "
                  f"{gain:.2f} / N of its time ({gain / 2:.2f} for 2)")
    print(f"load average after {os.getloadavg()}")


def layout(text, threads):
    """(workers, BLAS threads per worker) from "N" (threads: --threads, else cores / N) or "NxT"."""
    workers, _, per_worker = text.partition("x")
    workers = int(workers)
    return workers, int(per_worker) if per_worker else threads or threads_per_worker(workers)


if __name__ == "__main__":
    main()
