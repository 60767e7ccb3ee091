"""Running a batch's groups of files on this machine: in this process, or in worker processes.

Each worker is a fresh ("spawn") process that gets its share of the CPUs for every engine
(`softpool_cli.cpu.limit_threads`). Groups are submitted a few per worker at a time, so a
million files never sit in the queue at once. Ctrl-C and SIGTERM stop the workers: their
running files write nothing at the output paths (results are stored in one step), and the
files not started are left for the next run.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from softpool_cli.batch.core import BatchSettings, FileResult, pool_group

# Groups in flight per worker: enough to keep it busy, few enough to stop quickly.
IN_FLIGHT_PER_WORKER = 2
RETRIES = 2  # times a group whose worker died is run again



def _init_worker(threads: int) -> None:
    from softpool_cli.cpu import limit_threads

    # The parent decides when to stop: a terminal's Ctrl-C reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # It stops a worker with SIGTERM: unwind the running file, whose cleanup removes the
    # temporary it was writing (dying on the spot would leave it beside the outputs).
    signal.signal(signal.SIGTERM, _end_worker)
    sys.unraisablehook = _quiet_ending(sys.unraisablehook)
    limit_threads(threads)


_ending: int | None = None  # the signal ending this worker


def _end_worker(signum: int, frame: object) -> None:
    global _ending
    _ending = signum
    raise SystemExit(128 + signum)  # ends a worker without a traceback, even between groups


def _quiet_ending(hook):
    """Python raises the handler's exception in whatever Python code runs next; in a callback
    from C (pyvips's) it is printed as "ignored" and lost. No traceback for it: the worker
    ends after the file (`_pool_group`)."""

    def quiet(unraisable) -> None:
        if not (_ending is not None and isinstance(unraisable.exc_value, SystemExit)):
            hook(unraisable)

    return quiet


def _pool_group(items: list[tuple[str, str, str]], settings: BatchSettings) -> list[FileResult]:
    """`pool_group` in a worker, which a SIGTERM lost in a callback still ends between files."""
    results = []
    for item in items:
        if _ending is not None:
            raise SystemExit(128 + _ending)
        results += pool_group([item], settings)
    return results


def run_groups(
    groups: Iterable[list[tuple[str, str, str]]],
    settings: BatchSettings,
    workers: int,
    *,
    on_start: Callable[[Any], None] | None = None,
) -> Iterator[FileResult]:
    """Pool every group, yielding each file's result as its group finishes.

    Args:
        groups: Lists of (source, target without suffix, fingerprint).
        settings: How to pool.
        workers: Processes to use; 1 runs in this process.
        on_start: Called with the executor once it exists (the command's signal handling).
    """
    if workers <= 1:
        for group in groups:
            yield from pool_group(group, settings)
        return

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from softpool_cli.cpu import share

    context = multiprocessing.get_context("spawn")

    def start() -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(share(workers),)
        )
        if on_start is not None:
            on_start(executor)
        return executor

    executor = start()
    pending: dict = {}  # future -> (group, tries)
    retry: list = []  # groups whose worker died, to run again
    iterator = iter(groups)
    try:
        while True:
            while len(pending) < workers * IN_FLIGHT_PER_WORKER:
                if retry:
                    group, tries = retry.pop()
                else:
                    group, tries = next(iterator, None), 0
                    if group is None:
                        break
                pending[executor.submit(_pool_group, group, settings)] = (group, tries)
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                group, tries = pending.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    # A worker died (killed, out of memory): run its groups again, twice at most.
                    broken = True
                    if tries < RETRIES:
                        retry.append((group, tries + 1))
                    else:
                        yield from (FileResult(source, target, "failed", f"{source}: the worker pooling it died")
                                    for source, target, _ in group)  # fmt: skip
                    continue
                yield from results
            if broken:
                retry.extend(pending.values())
                pending.clear()
                stop_workers(executor)
                executor = start()
    finally:
        for future in pending:
            future.cancel()
        stop_workers(executor)


def stop_workers(executor: Any) -> None:
    """Shut the pool down now: queued groups dropped, running workers ended, none left behind."""
    processes = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
