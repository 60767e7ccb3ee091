"""Running a batch's groups of files on a Dask cluster (``pip install "softpool[dask]"``).

``--scheduler tcp://HOST:8786`` (or ``DASK_SCHEDULER_ADDRESS``) uses a running cluster;
``--scheduler local`` starts a `distributed.LocalCluster` of one single-threaded worker
process per CPU. The graph stays small for a million files: files go in groups (one task
each), at most a few groups per worker thread are in flight, and results are collected with
``as_completed`` as they come. With ``--device cuda`` the tasks ask for a ``GPU`` resource, so
only workers started with ``--resources GPU=1`` take them. A task whose worker dies is run
again elsewhere (``retries``); its outputs are stored in one step, so nothing partial is left.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from softpool_cli.batch.core import BatchSettings, FileResult, pool_group
from softpool_cli.errors import SoftpoolError

IN_FLIGHT_PER_THREAD = 2
RETRIES = 2


def connect(scheduler: str):
    """A Dask client: ``local`` starts a LocalCluster, anything else is a scheduler's address.

    Raises:
        SoftpoolError: Dask is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SoftpoolError('--scheduler needs Dask: pip install "softpool[dask]"') from None
    if scheduler == "local":
        from softpool.cpu.threads import usable_cpus

        cluster = LocalCluster(n_workers=usable_cpus(), threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster)
    try:
        return Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as error:
        raise SoftpoolError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def default_scheduler() -> str | None:
    return os.environ.get("DASK_SCHEDULER_ADDRESS")


def run_groups(groups: Iterable[list[tuple[str, str, str]]], settings: BatchSettings, client) -> Iterator[FileResult]:
    """Pool every group on the cluster, yielding each file's result as its group finishes."""
    from distributed import as_completed

    threads = max(1, sum(client.nthreads().values()))
    resources = {"GPU": 1} if settings.image.device == "cuda" else None
    iterator = iter(groups)
    futures = as_completed()

    def submit_next() -> bool:
        group = next(iterator, None)
        if group is None:
            return False
        futures.add(client.submit(pool_group, group, settings, pure=False, retries=RETRIES, resources=resources))
        return True

    for _ in range(threads * IN_FLIGHT_PER_THREAD):
        if not submit_next():
            break
    try:
        for future in futures:
            yield from future.result()
            future.release()
            submit_next()
    finally:
        for future in list(futures.futures):
            future.cancel()
