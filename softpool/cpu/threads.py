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
import queue
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
            while index < slices and not failures:
                extra = slice_arguments(index) if slice_arguments is not None else ()
                kernel(*arguments, *extra, bounds[index], bounds[index + 1])
                index = next(next_slice)
        except BaseException as error:  # re-raised in the calling thread below
            failures.append(error)

    workers = Workers([work] * (threads - 1))
    work()  # a Ctrl-C during the calling thread's share lands in failures, like any error
    # The kernels write through raw addresses: the buffers must outlive the last call.
    interrupted = workers.wait(on_interrupt=lambda: failures.append(KeyboardInterrupt()))
    if interrupted is not None:
        raise interrupted
    if failures:
        raise failures[0]


def put_unless_stopped(target: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` on a bounded queue, waiting for room unless ``stop`` is set; False when it is.

    For a producer thread whose consumer may stop taking: it never blocks past the stop."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class Workers:
    """Threads that each run a function, and a wait for them that a Ctrl-C cannot cut short.

    ``Thread.join`` can: on Python 3.11 at least, a ``KeyboardInterrupt`` raised while it waits
    marks the thread as finished though it still runs, and every later ``join`` returns at
    once. A thread that decodes, encodes or pools into buffers the caller is about to free
    must be waited for whatever arrives, so each thread here sets an event when its function
    returns, and `wait` waits on those.

    Args:
        targets: The functions, one thread each.
        names: The threads' names.
        daemon: Whether the process may exit while they run.
    """

    def __init__(self, targets: list[Callable[[], None]], names: list[str] | None = None, daemon: bool = False) -> None:
        self._done = [threading.Event() for _ in targets]
        self._threads = [
            threading.Thread(target=self._run, args=(target, done), name=name, daemon=daemon)
            for target, done, name in zip(targets, self._done, names or [None] * len(targets))
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _run(target: Callable[[], None], done: threading.Event) -> None:
        try:
            target()
        finally:
            done.set()

    def wait(self, on_interrupt: Callable[[], None] = lambda: None) -> BaseException | None:
        """Wait until every function has returned; give back the first interruption met meanwhile.

        Args:
            on_interrupt: Called at each interruption (``KeyboardInterrupt`` or a subclass),
                to tell the functions to stop early.
        """
        interrupted: BaseException | None = None
        for done in self._done:
            while True:
                try:
                    done.wait()
                    break
                except BaseException as error:  # KeyboardInterrupt, or SIGTERM's exception
                    interrupted = interrupted or error
                    on_interrupt()
        for thread in self._threads:  # each is past its function: this returns at once
            try:
                thread.join()
            except BaseException as error:
                interrupted = interrupted or error
        return interrupted
