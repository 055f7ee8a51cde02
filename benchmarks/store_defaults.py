"""`sgdlab train` with default flags: a large on-disk store against MNIST in memory, page cache warm and evicted.

The same command, ``sgdlab train --dataset D --layers 100 --iterations N --quiet``,
on MNIST (50k, in memory) and on a store of ``--samples`` MNIST-like samples
(written with ``sgdlab data synth mnist-shifted``), in separate processes,
interleaved: MNIST, store (page cache warm), store after
``posix_fadvise(POSIX_FADV_DONTNEED)`` on its files (evicted), per repeat.
Nothing but the dataset differs: sampling ``auto`` picks block-shuffle with
prefetch for the store by itself.  Iterations/s are the loop's (N / summary.json
``seconds``) and the whole command's (N / process wall time).  The store is
deleted at the end unless ``--keep``.

    python benchmarks/store_defaults.py                       # 3,000,000 samples (2.4 GB) in /tmp
    python benchmarks/store_defaults.py --store /tmp/s3m --keep --repeats 5
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def evict(store):
    """Drop the store's files from the page cache (the kernel reads them from disk again)."""
    for name in ("x.npy", "t.npy"):
        fd = os.open(store / name, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cached_fraction(path):
    """Fraction of ``path``'s bytes in the page cache (util-linux ``fincore``), or None where it is missing."""
    if not shutil.which("fincore"):
        return None
    proc = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", str(path)],
                          capture_output=True, text=True)
    try:
        resident, size = map(int, proc.stdout.split()[:2])
    except ValueError:
        return None
    return min(1.0, resident / size) if size else None


def train(dataset, out, iterations, threads):
    """(loop it/s, command it/s, first output line) of one ``sgdlab train`` with default flags."""
    cmd = [sys.executable, "-m", "sgdlab", "train", "--dataset", str(dataset), "--layers", "100",
           "--iterations", str(iterations), "--out", str(out)]
    if threads:
        cmd += ["--threads", str(threads)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr[-500:]}")
    summary = json.loads((Path(out) / "summary.json").read_text())
    chosen = next((line for line in proc.stdout.splitlines() if line.startswith("sampling auto")), "")
    shutil.rmtree(out)
    return iterations / summary["seconds"], iterations / wall, chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=3_000_000)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the store is written (default /tmp)")
    ap.add_argument("--store", help="use (or write, and with --keep keep) the store at this path")
    ap.add_argument("--iterations", type=int, default=6000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="BLAS threads (default: sgdlab's default, all cores)")
    ap.add_argument("--keep", action="store_true", help="do not delete the store")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sgdlab-store-defaults-", dir=args.dir))
    store = Path(args.store) if args.store else work / "store"
    try:
        if not (store / "meta.json").exists():
            need = args.samples * 785 * 1.02
            free = shutil.disk_usage(store.parent).free
            if free < need + (2 << 30):
                sys.exit(f"{store.parent} has {free / 1e9:.1f} GB free; the store needs {need / 1e9:.1f} GB (+2 GB)")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sgdlab", "data", "synth", "mnist-shifted", str(store),
                            "--samples", str(args.samples), "--quiet"], check=True, capture_output=True)
            print(f"wrote {store} ({args.samples:,} samples) in {time.perf_counter() - start:.0f} s", flush=True)
        size = sum(os.path.getsize(store / f) for f in ("x.npy", "t.npy"))
        results = {"mnist (in memory)": [], "store, page cache warm": [], "store, evicted": []}
        chosen = ""
        for r in range(args.repeats):
            for name in results:
                if name == "store, evicted":
                    evict(store)
                    before = cached_fraction(store / "x.npy")
                elif name == "store, page cache warm":
                    before = cached_fraction(store / "x.npy")
                else:
                    before = None
                dataset = "mnist" if name.startswith("mnist") else store
                loop, command, line = train(dataset, work / f"run-{r}", args.iterations, args.threads)
                chosen = line or chosen
                results[name].append((loop, command))
                cached = "" if before is None else f", {before:.0%} of x.npy cached at start"
                print(f"  repeat {r + 1}: {name}: loop {loop:.0f} it/s, command {command:.0f} it/s{cached}",
                      flush=True)
        base_loop = [loop for loop, _ in results["mnist (in memory)"]]
        base_cmd = [cmd for _, cmd in results["mnist (in memory)"]]
        print(f"\n`sgdlab train --dataset D --layers 100 --iterations {args.iterations}` (defaults otherwise); store "
              f"of {args.samples:,} samples ({size / 1e9:.2f} GB); {chosen or 'sampling auto'}; {args.repeats} "
              f"repeats interleaved; load {os.getloadavg()[0]:.2f}")
        print(f"{'run':26s} {'loop it/s':>18s} {'vs mnist':>18s} {'command it/s':>18s} {'vs mnist':>18s}")
        for name, runs in results.items():
            loop = [v for v, _ in runs]
            cmd = [v for _, v in runs]
            ratio_loop = [a / b for a, b in zip(loop, base_loop)]
            ratio_cmd = [a / b for a, b in zip(cmd, base_cmd)]

            def spread(values, fmt):
                return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"

            print(f"{name:26s} {spread(loop, '{:.0f}'.format):>18s} {spread(ratio_loop, '{:.2f}'.format):>18s} "
                  f"{spread(cmd, '{:.0f}'.format):>18s} {spread(ratio_cmd, '{:.2f}'.format):>18s}")
        print("(median (min-max) over repeats; ratios per repeat against that repeat's MNIST run)")
    finally:
        if args.keep:
            print(f"kept {store}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            if args.store:
                shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
