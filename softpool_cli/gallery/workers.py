"""Running the gallery's jobs: in this process, or in worker processes that share the CPUs.

A job that fails becomes a :class:`Failure` with its one-line reason; Ctrl-C stops running
jobs (their temporary files are removed) and drops the others.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from softpool_cli.errors import Terminated, check_interrupted, describe_failure, is_bug, quiet_interruptions

if TYPE_CHECKING:
    from softpool_cli.gallery.jobs import Job, Outcome


@dataclass(frozen=True)
class Failure:
    """A job that did not complete: the one-line reason, naming the file."""

    message: str


_busy = False  # set while a worker runs a job: Ctrl-C interrupts jobs, not idle workers
_stop: Any = None  # the pool's stop event, set by the main process on Ctrl-C


def _on_ctrl_c(signum: int, frame: object) -> None:
    if _busy:
        raise KeyboardInterrupt


def _init_worker(threads: int, stop: Any) -> None:
    """Share the CPUs among the workers, and let Ctrl-C stop a running job cleanly."""
    global _stop
    from softpool_cli.cpu import limit_threads

    limit_threads(threads)
    _stop = stop
    # Workers start with Ctrl-C ignored (see `execute`): from here on it interrupts a job.
    signal.signal(signal.SIGINT, _on_ctrl_c)
    # One that a callback from C swallows lets the job finish (its files are written whole):
    # no traceback for it.
    sys.unraisablehook = quiet_interruptions(sys.unraisablehook)


def attempt(job: Job, debug: bool) -> Outcome | Failure:
    """Run one job; expected problems become a :class:`Failure`, bugs too unless ``debug``."""
    from softpool_cli.gallery.jobs import run_job

    global _busy
    if _stop is not None and _stop.is_set():
        raise KeyboardInterrupt  # queued before Ctrl-C: not started
    _busy = True
    try:
        return run_job(job)
    except Exception as error:
        if debug and is_bug(error):
            raise
        return Failure(describe_failure(error, job.source))
    finally:
        _busy = False


def execute(jobs: Sequence[Job], workers: int, debug: bool) -> Iterator[tuple[int, Outcome | Failure]]:
    """Run the jobs, yielding ``(index, result)`` as each one finishes.

    One worker runs them in this process; more run in fresh ("spawn") processes, which
    neither inherit PyTorch's thread pools nor a CUDA context. On Ctrl-C (the terminal sends
    it to the workers too) running jobs stop and remove their temporary files, and the jobs
    not started are dropped.
    """
    if workers <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            check_interrupted()
            yield index, attempt(job, debug)
        return

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    workers = min(workers, len(jobs))
    from softpool_cli.cpu import share

    threads = share(workers)
    stop = context.Event()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(threads, stop)
    )
    try:
        # Workers are started by the first submissions; they inherit an ignored Ctrl-C, so one
        # pressed while they import their modules ends the run without tracebacks from them.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            futures = {pool.submit(attempt, job, debug): index for index, job in enumerate(jobs)}
        finally:
            signal.signal(signal.SIGINT, previous)
        for future in as_completed(futures):
            check_interrupted()
            yield futures[future], future.result()
    except BaseException as error:
        stop.set()
        if not isinstance(error, KeyboardInterrupt) or isinstance(error, Terminated):
            # Ctrl-C reached the workers from the terminal; SIGTERM (or a failure here) reached
            # only this process: pass it on, so running jobs stop and remove their temporaries.
            _interrupt_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _interrupt_workers(pool: Any) -> None:
    for process in list(getattr(pool, "_processes", {}).values()):
        try:
            os.kill(process.pid, signal.SIGINT)
        except (ProcessLookupError, TypeError):
            pass  # already gone, or not started
