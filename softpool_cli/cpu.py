"""One CPU budget per process: the one place where every engine's thread count is set.

A process that shares the machine with other workers (the gallery's, a batch's) calls
`limit_threads` once with its share, before it pools: the pixel engine, OpenCV and, where it
is loaded, PyTorch then each use at most that many threads, so N workers x N threads never
happens.
"""

from __future__ import annotations

import os
import sys

from softpool.cpu.threads import usable_cpus


def share(workers: int) -> int:
    """Threads each of ``workers`` processes may use: the usable CPUs split between them."""
    return max(1, usable_cpus() // max(1, workers))


def limit_threads(threads: int) -> None:
    """Let every engine in this process use at most ``threads`` threads."""
    from softpool_cli.pixels import engine

    engine.threads_budget = threads
    # Libraries that read these when they start (OpenMP, OpenBLAS) and are not loaded yet.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
