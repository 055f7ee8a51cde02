"""What the speed benchmarks share: the CPU's name, and the plain PyTorch loop they compare sgdlab with."""

import subprocess
import time


def cpu_model():
    """The CPU's model name as ``lscpu`` prints it (/proc/cpuinfo where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def torch_epoch(torch, net, opt, loss_fn, X, T, batch, generator, stop=None):
    """Seconds for one pass of a plain PyTorch loop: a fresh permutation, then manual slices of ``batch``
    samples up to ``stop`` (default: all of X), each zero_grad, forward, loss, backward, step."""
    t0 = time.perf_counter()
    perm = torch.randperm(len(X), generator=generator)
    for s in range(0, len(X) if stop is None else stop, batch):
        idx = perm[s : s + batch]
        opt.zero_grad()
        loss = loss_fn(net(X[idx]), T[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - t0
