"""Tunable constants of the Triton kernels, each with the reason for its value.

The launch plans read these at call time (they are part of the plans' cache key), so tests and
the tile sweep can change one with ``monkeypatch.setattr(config, NAME, value)``.
"""

from __future__ import annotations

import os

import triton

try:
    INTERPRETED: bool = bool(triton.knobs.runtime.interpret)
except AttributeError:  # Triton before 3.4 had no knobs; the environment variable is what it read.
    INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Each program runs at most CUDA_WARPS warps. A thread of the forward (and of the backward for
# windows that do not overlap) handles ELEMENTS_PER_THREAD input values: with 16-byte loads that
# is 8 loads per thread in float16, enough bytes in flight to cover memory latency at 2-3
# programs per SM, and enough work to amortise a program's index arithmetic (about 2 SASS
# instructions per value at 64, 4 at 32; `benchmarks/kernel_report.py`). At 128 the forward
# needs about 250 registers.
CUDA_WARPS = 8
ELEMENTS_PER_THREAD = 64
# The gather backward (overlapping windows) makes three scalar loads per covering window.
BACKWARD_LOADS_PER_THREAD = 16
# A launch should give every SM at least this many programs, so that the last wave and the
# memory pipes stay busy; tiles shrink (down to one warp) until it does. Without a device to ask
# (compiling for sm_90 on a machine without a GPU) the SM count is that of an H100/H200.
MIN_PROGRAMS_PER_SM = 4
DEFAULT_SM_COUNT = 132
# Tile edges are powers of two. A smaller edge that leaves fewer positions idle is taken when it
# idles at least this share of positions less (56 wide: 8 rather than 64, 0% instead of 12.5%),
# but not for a sliver (1080 rows: 16 rather than 8, 0.7% idle).
IDLE_SHARE_WORTH_A_SMALLER_TILE = 1 / 32
# Loads along the contiguous axis cover whole 32-byte sectors where the shape allows: a tile
# row of fewer bytes would leave the rest of its sectors to another program.
SECTOR_BYTES = 32
# The widest global access, in bytes (ld.global.v4.b32).
VECTOR_BYTES = 16
# The interpreter runs programs one after another in Python at a few milliseconds each, and its
# cost barely grows with the tile: few, large programs keep the tests fast.
INTERPRETER_ELEMENTS = 1 << 15
# Forward: windows of up to this many values are unrolled, each value loaded once into registers
# for both passes (max, then weights). Larger windows (global pooling, say) are taken in chunks
# of up to MAX_WINDOW_BLOCK lanes with an online max.
MAX_UNROLLED_WINDOW = 32
MAX_WINDOW_BLOCK = 1024
# A chunk lives in registers as a (positions, lanes) tile with its masks, 64-bit pointers and
# temporaries: at 8 lanes per thread it compiles to about 80 registers (130 in float64).
CHUNKED_LOADS_PER_THREAD = 8
# Backward: unroll the loop over covering windows up to this many; beyond, a runtime loop keeps
# compile time and code size bounded (a 3x3x3 window at stride 1 covers 27).
MAX_UNROLLED_WINDOWS = 32
# A launch grid holds at most 2**31 - 1 programs along its first axis.
MAX_PROGRAMS = 2**31 - 1
INT32_MAX = 2**31 - 1


def tunables() -> tuple:
    """The settings a launch plan depends on: part of the plans' cache key, so that changing one
    (as the tests and the tile sweep do) takes effect at once."""
    return (
        INTERPRETED, CUDA_WARPS, ELEMENTS_PER_THREAD, BACKWARD_LOADS_PER_THREAD, MIN_PROGRAMS_PER_SM,
        IDLE_SHARE_WORTH_A_SMALLER_TILE, SECTOR_BYTES, VECTOR_BYTES, INTERPRETER_ELEMENTS, MAX_UNROLLED_WINDOW,
        MAX_WINDOW_BLOCK, CHUNKED_LOADS_PER_THREAD, MAX_UNROLLED_WINDOWS, MAX_PROGRAMS, INT32_MAX,
    )  # fmt: skip
