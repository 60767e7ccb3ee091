"""Threads that a Ctrl-C cannot leave running: `Workers` and `run_rows` wait for every thread."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from softpool.cpu.threads import Workers, run_rows


@pytest.fixture
def interrupt_after():
    """``interrupt_after(seconds)``: a KeyboardInterrupt in the main thread that much later,
    as Ctrl-C would raise it."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, handler)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_a_ctrl_c_during_the_wait_still_waits_for_every_thread(interrupt_after):
    finished = []
    release = threading.Event()

    def slow(index: int):
        def run() -> None:
            release.wait(2.0)
            time.sleep(0.05 * index)
            finished.append(index)

        return run

    workers = Workers([slow(i) for i in range(3)])
    interrupt_after(0.1)
    stops = []
    interrupted = workers.wait(on_interrupt=lambda: (stops.append(1), release.set()))
    assert isinstance(interrupted, KeyboardInterrupt)
    assert stops == [1]
    assert sorted(finished) == [0, 1, 2]  # none was still running when the wait returned


def test_without_an_interruption_the_wait_gives_none_and_the_threads_are_done():
    finished = []
    workers = Workers([lambda: finished.append(1)] * 4, names=["a", "b", "c", "d"])
    assert workers.wait() is None
    assert finished == [1] * 4


def test_run_rows_raises_a_ctrl_c_only_once_every_slice_in_flight_is_done(interrupt_after):
    calls, done = [], []

    def kernel(first: int, end: int) -> None:
        # Stands in for a compiled kernel: the calling thread's calls end at once, so the
        # interruption comes while it waits for the other thread, whose call must finish.
        worker = threading.current_thread() is not threading.main_thread()
        calls.append((worker, first))
        if worker:
            time.sleep(0.3)
        done.append((worker, first))

    interrupt_after(0.1)
    with pytest.raises(KeyboardInterrupt):
        run_rows(kernel, 64, 1, (), threads=2, min_values_per_thread=1)
    assert sorted(done) == sorted(calls)  # no call outlived run_rows


def test_run_rows_covers_every_row_once():
    seen = []
    run_rows(lambda first, end: seen.extend(range(first, end)), 37, 1, (), threads=3, min_values_per_thread=1)
    assert sorted(seen) == list(range(37))
