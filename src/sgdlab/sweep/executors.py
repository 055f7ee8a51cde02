"""Where trials run: fresh local process pools, or a Dask cluster, behind ``concurrent.futures.Executor``."""

import os

from ..errors import ConfigError


def local_executor_factory(workers):
    """Fresh ProcessPoolExecutors (spawned processes: no inherited BLAS threads or locks)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def make():
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    return make


def dask_client(scheduler, workers):
    """A dask.distributed Client for ``tcp://HOST:PORT``, or a new LocalCluster for 'local'."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--scheduler needs Dask: pip install 'sgdlab[dask]'") from None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="10s"), None
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {scheduler!r}: cannot reach a Dask scheduler there ({exc})") from None


def threads_per_worker(workers, cores=None):
    """BLAS threads for each of ``workers`` processes so that workers x threads = cores (at least 1)."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


def _shutdown(executor, wait):
    """Stop an executor, dropping trials not yet started (a Dask ClientExecutor cancels its futures)."""
    from concurrent.futures import ProcessPoolExecutor

    if isinstance(executor, ProcessPoolExecutor):
        executor.shutdown(wait=wait, cancel_futures=True)
    else:
        executor.shutdown(wait=False)


def stop_workers(executor, grace=10.0):
    """Stop an executor at once: a process pool's workers get SIGTERM (a trial then stops at its next
    iteration, as ``sgdlab train`` does), SIGKILL after ``grace`` seconds; no process outlives the sweep."""
    from concurrent.futures import ProcessPoolExecutor

    if not isinstance(executor, ProcessPoolExecutor):
        executor.shutdown(wait=False)
        return
    processes = list((getattr(executor, "_processes", None) or {}).values())  # the pool keeps no public list
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(grace)
        if p.is_alive():
            p.kill()
            p.join()
    executor.shutdown(wait=True, cancel_futures=True)
