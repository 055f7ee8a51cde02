"""Training from disk: 10,000,000 MNIST-like samples (7.8 GB of uint8) against 50,000 in memory.

Writes ``sgdlab data synth mnist-shifted --samples N`` into a folder (default
/tmp; it needs N * 784 bytes free), then trains 784-100-10, batch 100, for the
same number of iterations on the store and on in-memory MNIST (50k), each run a
fresh ``sgdlab train`` process under ``/usr/bin/time -v`` (else ``os.wait4``)
for its peak RSS.  Iterations/s are the loop's own: the only evaluation is at
the end, after the loop's clock stops (metrics.csv's ``seconds``), but the peak
RSS includes the full chunked passes over all N samples that evaluation does.
Runs alternate and the table shows medians of ``--repeats``.  The store is
deleted at the end unless ``--keep``.

    python benchmarks/out_of_core.py                        # 10M samples, 7.8 GB
    python benchmarks/out_of_core.py --samples 1000000 --repeats 1
    python benchmarks/out_of_core.py --store /tmp/mnist10m --keep   # reuse a written store
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {  # name -> extra `sgdlab train` flags (None: in-memory MNIST 50k)
    "in-memory 50k": None,
    "store, shuffle": [],
    "store, shuffle + prefetch": ["--prefetch"],
    "store, block-shuffle + prefetch": ["--sampling", "block-shuffle", "--prefetch"],
}


def run_measured(cmd):
    """(exit code, peak RSS in MB, wall seconds, stderr tail) of one process."""
    start = time.perf_counter()
    if shutil.which("time") and os.path.exists("/usr/bin/time"):
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - start
        line = next((x for x in proc.stderr.splitlines() if "Maximum resident set size" in x), None)
        rss = int(line.split(":")[1]) / 1024 if line else float("nan")
        return proc.returncode, rss, wall, proc.stderr[-600:]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, time.perf_counter() - start, ""


def train_cmd(dataset, out, args, extra):
    return [sys.executable, "-m", "sgdlab", "train", "--dataset", str(dataset), "--layers", "100",
            "--batch-size", "100", "--optimizer", "sgd", "--lr", "0.1", "--iterations", str(args.iterations),
            "--eval-every", str(args.iterations), "--threads", str(args.threads), "--quiet",
            "--overwrite", "--out", str(out), *extra]


def loop_seconds(out):
    with open(Path(out) / "metrics.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["seconds"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the store is written (default /tmp)")
    ap.add_argument("--store", help="use this existing store instead of writing one")
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads in every run (default 1)")
    ap.add_argument("--keep", action="store_true", help="do not delete the store")
    ap.add_argument("--skip-plain", action="store_true", help="leave out the store run without prefetch")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sgdlab-ooc-", dir=args.dir))
    store = Path(args.store) if args.store else work / "store"
    try:
        if not args.store:
            need = args.samples * 785 * 1.02
            free = shutil.disk_usage(args.dir).free
            if free < need + (1 << 30):
                sys.exit(f"{args.dir} has {free / 1e9:.1f} GB free; the store needs {need / 1e9:.1f} GB (+1 GB)")
            cmd = [sys.executable, "-m", "sgdlab", "data", "synth", "mnist-shifted", str(store),
                   "--samples", str(args.samples), "--quiet"]
            code, rss, wall, err = run_measured(cmd)
            if code:
                sys.exit(f"synth failed: {err}")
            size = sum(os.path.getsize(store / f) for f in ("x.npy", "t.npy"))
            print(f"wrote {store}: {args.samples:,} training samples, {size / 1e9:.2f} GB in {wall:.0f} s "
                  f"({size / 1e6 / wall:.0f} MB/s), writer peak RSS {rss:.0f} MB")
        meta = json.loads((store / "meta.json").read_text())
        variants = {k: v for k, v in VARIANTS.items() if not (args.skip_plain and v == [])}
        results = {name: {"its": [], "rss": [], "wall": []} for name in variants}
        for r in range(args.repeats):
            for name, extra in variants.items():
                out = work / f"run-{r}-{len(results[name]['its'])}"
                dataset = "mnist" if extra is None else store
                code, rss, wall, err = run_measured(train_cmd(dataset, out, args, extra or []))
                if code:
                    sys.exit(f"{name} failed (exit {code}): {err}")
                results[name]["its"].append(args.iterations / loop_seconds(out))
                results[name]["rss"].append(rss)
                results[name]["wall"].append(wall)
                shutil.rmtree(out)
                print(f"  repeat {r + 1}: {name}: {results[name]['its'][-1]:.0f} it/s, peak RSS {rss:.0f} MB, "
                      f"process {wall:.1f} s", flush=True)
        base = statistics.median(results["in-memory 50k"]["its"])
        print(f"\n784-100-10, batch 100, SGD lr 0.1, {args.iterations} iterations, {args.threads} BLAS thread(s), "
              f"store of {meta['splits']['train'][1]:,} training samples; medians of {args.repeats}; "
              f"load average {os.getloadavg()[0]:.2f} (2 cores shared)")
        print(f"{'variant':34s} {'it/s':>8s} {'vs in-memory':>13s} {'peak RSS MB':>12s} {'process s':>10s}")
        for name, res in results.items():
            its = statistics.median(res["its"])
            print(f"{name:34s} {its:8.0f} {its / base:12.0%} {max(res['rss']):12.0f} "
                  f"{statistics.median(res['wall']):10.1f}")
    finally:
        if args.keep:
            print(f"kept {store}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
