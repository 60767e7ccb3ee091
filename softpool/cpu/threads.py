"""Splitting a compiled kernel's rows between threads, and how many CPUs there are to use.

The kernels release the GIL, so plain threads started per call run them in parallel. Numba's
own ``parallel=True`` would be simpler, but its default OpenMP layer kills a forked child (a
DataLoader worker) that pools again, and its fallback layer aborts on concurrent calls;
threads started per call have neither problem and leave no pool behind.

No PyTorch here: the command line's 8-bit engine uses this module too.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable

# Work slices per thread: a thread that the OS runs less (other processes) takes fewer slices
# instead of holding up the call.
SLICES_PER_THREAD = 4


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def run_rows(
    kernel: Callable,
    rows: int,
    row_values: int,
    arguments: tuple,
    *,
    threads: int,
    min_values_per_thread: int,
    slice_arguments: Callable[[int], tuple] | None = None,
) -> None:
    """Call ``kernel(*arguments, first_row, end_row)`` on contiguous slices of ``rows`` in parallel.

    Args:
        kernel: A compiled kernel that releases the GIL and takes a row range last.
        rows: How many rows there are.
        row_values: Output values per row, to size the work per thread.
        arguments: The kernel's other arguments.
        threads: At most this many threads (the caller's CPU budget).
        min_values_per_thread: Below this many values per thread, fewer threads are faster.
        slice_arguments: ``slice_arguments(index)`` gives more arguments for slice ``index``
            (fewer than ``threads * SLICES_PER_THREAD``), passed before the row range: working
            memory that each call has to itself.
    """
    threads = max(1, min(threads, rows, rows * row_values // min_values_per_thread))
    slices = 1 if threads == 1 else threads * SLICES_PER_THREAD
    bounds = [rows * i // slices for i in range(slices + 1)]
    next_slice = itertools.count()  # next() on it is atomic under the GIL
    failures: list[BaseException] = []

    def work() -> None:
        try:
            index = next(next_slice)
            while index < slices:
                extra = slice_arguments(index) if slice_arguments is not None else ()
                kernel(*arguments, *extra, bounds[index], bounds[index + 1])
                index = next(next_slice)
        except BaseException as error:  # re-raised in the calling thread below
            failures.append(error)

    workers = [threading.Thread(target=work) for _ in range(threads - 1)]
    for worker in workers:
        worker.start()
    work()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]
