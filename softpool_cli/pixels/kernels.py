"""The pixel kernels, as plain Python over raw pointers, for Numba to compile as C functions.

This module imports Numba and is imported only to compile (see `softpool_cli.pixels.native`,
which keeps compiled copies on disk and holds the kernels' argument lists). Every kernel
takes its output's rows ``row = t' * H' + y'`` from ``first_row`` to ``end_row`` last, so that
callers can split the rows between threads.

Layout: pixels (T, H, W, C) C-contiguous, T = 1 for a still image, seen as (T, H, W * C);
output (T', H', W' * C) likewise.

Two families:

- Whole windows of one size and stride (the common case: a factor, kernel = stride),
  compiled for the window, stride, channel count and series length: the window loops unroll
  and the loop over the output row vectorises. 8-bit SoftPool with weights relative to white,
  ``w = exp(a_c (p - 255))``, evaluated by a short series and repeated squaring in float32
  (exact to about 1e-7, which rounding to 8 bits cannot see but within 1e-4 of a .5 tie).
  ``small_windows`` does one output value at a time (windows of up to 12 samples); ``separable``
  first sums each input column over the window's rows, then sums columns.
- Any windows, listed per axis as int64 ranges [start, end): ``general_soft`` reads w and w p
  from tables (float64, 8- or 16-bit), in two separable passes like ``separable``;
  ``max_relative_soft`` subtracts each window's maximum first (for a beta at which weights
  relative to white underflow even in float64); ``general_max`` takes window maxima.
  Alpha channels (``channels - colours`` last ones) are averaged by every kernel.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

_WHITE = np.float32(255.0)


@njit(inline="always", fastmath={"nnan", "ninf", "nsz", "contract", "afn", "reassoc"})
def _series_weight(s, squarings):
    """exp(s * 2**squarings) for s in [-0.25, 0]: a degree-6 series, then ``squarings`` squarings.

    Every fast-math flag but "arcp": with it the compiler may divide through an approximate
    reciprocal, and an exact .5 mean (average pooling) would round the wrong way.
    """
    c1, c2, c3 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24)
    c4, c5 = np.float32(1 / 120), np.float32(1 / 720)
    e = np.float32(1.0) + s * (np.float32(1.0) + s * (c1 + s * (c2 + s * (c3 + s * (c4 + s * c5)))))
    for _ in range(squarings):
        e = e * e
    return e


def small_windows(channels: int, kernel: tuple[int, int, int], stride: tuple[int, int, int], squarings: int):
    """Whole windows, one output value at a time, for at most 12 samples per output value."""
    kt, kh, kw = kernel
    st, sh, sw = stride

    def pool(
        source_pointer, frames, height, values, r0, r1, r2, r3,
        out_pointer, frames_out, height_out, width_out, rows_whole, columns_whole,
        scratch_pointer, first_row, end_row,
    ):  # fmt: skip
        source = carray(source_pointer, (frames, height, values))
        out = carray(out_pointer, (frames_out, height_out, width_out * channels))
        # Scalars, not an array: the compiler then knows that writes to `out` cannot change them.
        rates = (r0, r1, r2, r3)
        for row in range(first_row, end_row):
            ot = row // rows_whole
            oy = row - ot * rows_whole
            for ox in range(columns_whole):
                for c in range(channels):
                    rate = rates[c]
                    total = np.float32(0.0)
                    weighted = np.float32(0.0)
                    for dt in range(kt):
                        for dy in range(kh):
                            for dx in range(kw):
                                p = np.float32(source[st * ot + dt, sh * oy + dy, (sw * ox + dx) * channels + c])
                                w = _series_weight(rate * (p - _WHITE), squarings)
                                total += w
                                weighted += w * p
                    out[ot, oy, ox * channels + c] = np.uint8(np.rint(weighted / total))

    return pool


def separable(channels: int, kernel: tuple[int, int, int], stride: tuple[int, int, int], squarings: int):
    """Whole windows of any size, in two passes per output row.

    A pixel's weight does not depend on its window, so the first pass sums the weights and
    weighted pixels of the window's rows (and frames) column by column, over the flat
    interleaved row, where every loop is contiguous and vectorises whatever the channel count;
    the second sums ``KW`` columns per output value and divides.
    """
    kt, kh, kw = kernel
    st, sh, sw = stride

    def pool(
        source_pointer, frames, height, values, r0, r1, r2, r3,
        out_pointer, frames_out, height_out, width_out, rows_whole, columns_whole,
        scratch_pointer, first_row, end_row,
    ):  # fmt: skip
        source = carray(source_pointer, (frames, height, values))
        out = carray(out_pointer, (frames_out, height_out, width_out * channels))
        rates = (r0, r1, r2, r3)
        used = (sw * (columns_whole - 1) + kw) * channels
        scratch = carray(scratch_pointer, (3, values))  # this call's own: one per slice of rows
        rate_row = scratch[0]
        for i in range(used):
            rate_row[i] = rates[i % channels]
        total = scratch[1]  # per input column and channel
        weighted = scratch[2]
        for row in range(first_row, end_row):
            ot = row // rows_whole
            oy = row - ot * rows_whole
            for window_row in range(kt * kh):
                line = source[st * ot + window_row // kh, sh * oy + window_row % kh]
                if window_row == 0:
                    for i in range(used):
                        p = np.float32(line[i])
                        w = _series_weight(rate_row[i] * (p - _WHITE), squarings)
                        total[i] = w
                        weighted[i] = w * p
                else:
                    for i in range(used):
                        p = np.float32(line[i])
                        w = _series_weight(rate_row[i] * (p - _WHITE), squarings)
                        total[i] += w
                        weighted[i] += w * p
            line_out = out[ot, oy]
            for ox in range(columns_whole):
                for c in range(channels):
                    column_total = np.float32(0.0)
                    column_weighted = np.float32(0.0)
                    for dx in range(kw):
                        column_total += total[(sw * ox + dx) * channels + c]
                        column_weighted += weighted[(sw * ox + dx) * channels + c]
                    line_out[ox * channels + c] = np.uint8(np.rint(column_weighted / column_total))

    return pool


def general_soft(
    source_pointer, frames, height, width, channels,
    time_starts_pointer, time_ends_pointer, frames_out,
    row_starts_pointer, row_ends_pointer, height_out,
    column_starts_pointer, column_ends_pointer, width_out,
    weight_pointer, weighted_pointer, levels, out_pointer, scratch_pointer, first_row, end_row,
):  # fmt: skip
    """Any windows; w and w p per channel from tables of ``levels`` entries each, float64."""
    source = carray(source_pointer, (frames, height, width * channels))
    time_starts = carray(time_starts_pointer, (frames_out,))
    time_ends = carray(time_ends_pointer, (frames_out,))
    row_starts = carray(row_starts_pointer, (height_out,))
    row_ends = carray(row_ends_pointer, (height_out,))
    column_starts = carray(column_starts_pointer, (width_out,))
    column_ends = carray(column_ends_pointer, (width_out,))
    weight_table = carray(weight_pointer, (channels * levels,))
    weighted_table = carray(weighted_pointer, (channels * levels,))
    out = carray(out_pointer, (frames_out, height_out, width_out * channels))
    values = width * channels
    scratch = carray(scratch_pointer, (2, values))  # this call's own: one per slice of rows
    totals = scratch[0]
    sums = scratch[1]
    for row in range(first_row, end_row):
        ot = row // height_out
        oy = row - ot * height_out
        for i in range(values):
            totals[i] = 0.0
            sums[i] = 0.0
        for t in range(time_starts[ot], time_ends[ot]):
            for y in range(row_starts[oy], row_ends[oy]):
                line = source[t, y]
                for x in range(width):
                    for c in range(channels):
                        i = x * channels + c
                        index = c * levels + np.int64(line[i])
                        totals[i] += weight_table[index]
                        sums[i] += weighted_table[index]
        line_out = out[ot, oy]
        for ox in range(width_out):
            for c in range(channels):
                total = 0.0
                weighted = 0.0
                for x in range(column_starts[ox], column_ends[ox]):
                    total += totals[x * channels + c]
                    weighted += sums[x * channels + c]
                line_out[ox * channels + c] = np.rint(weighted / total)


def max_relative_soft(
    source_pointer, frames, height, width, channels,
    time_starts_pointer, time_ends_pointer, frames_out,
    row_starts_pointer, row_ends_pointer, height_out,
    column_starts_pointer, column_ends_pointer, width_out,
    decay_pointer, levels, out_pointer, scratch_pointer, first_row, end_row,
):  # fmt: skip
    """Any windows, each window's maximum m subtracted first: w = decay[c, m - p] = exp(-a_c (m - p))."""
    source = carray(source_pointer, (frames, height, width, channels))
    time_starts = carray(time_starts_pointer, (frames_out,))
    time_ends = carray(time_ends_pointer, (frames_out,))
    row_starts = carray(row_starts_pointer, (height_out,))
    row_ends = carray(row_ends_pointer, (height_out,))
    column_starts = carray(column_starts_pointer, (width_out,))
    column_ends = carray(column_ends_pointer, (width_out,))
    decay = carray(decay_pointer, (channels, levels))
    out = carray(out_pointer, (frames_out, height_out, width_out, channels))
    for row in range(first_row, end_row):
        ot = row // height_out
        oy = row - ot * height_out
        t0, t1 = time_starts[ot], time_ends[ot]
        y0, y1 = row_starts[oy], row_ends[oy]
        for ox in range(width_out):
            x0, x1 = column_starts[ox], column_ends[ox]
            for c in range(channels):
                top = np.int64(0)
                for t in range(t0, t1):
                    for y in range(y0, y1):
                        for x in range(x0, x1):
                            top = max(top, np.int64(source[t, y, x, c]))
                total = 0.0
                weighted = 0.0
                for t in range(t0, t1):
                    for y in range(y0, y1):
                        for x in range(x0, x1):
                            p = np.int64(source[t, y, x, c])
                            w = decay[c, top - p]
                            total += w
                            weighted += w * p
                out[ot, oy, ox, c] = np.rint(weighted / total)


def general_max(
    source_pointer, frames, height, width, channels,
    time_starts_pointer, time_ends_pointer, frames_out,
    row_starts_pointer, row_ends_pointer, height_out,
    column_starts_pointer, column_ends_pointer, width_out,
    colours, out_pointer, scratch_pointer, first_row, end_row,
):  # fmt: skip
    """Any windows: the maximum of each colour channel, the mean of the others (alpha)."""
    source = carray(source_pointer, (frames, height, width * channels))
    time_starts = carray(time_starts_pointer, (frames_out,))
    time_ends = carray(time_ends_pointer, (frames_out,))
    row_starts = carray(row_starts_pointer, (height_out,))
    row_ends = carray(row_ends_pointer, (height_out,))
    column_starts = carray(column_starts_pointer, (width_out,))
    column_ends = carray(column_ends_pointer, (width_out,))
    out = carray(out_pointer, (frames_out, height_out, width_out * channels))
    values = width * channels
    scratch = carray(scratch_pointer, (2, values))  # this call's own: one per slice of rows
    tops = scratch[0]  # integers, exact in float64
    sums = scratch[1]
    for row in range(first_row, end_row):
        ot = row // height_out
        oy = row - ot * height_out
        for i in range(values):
            tops[i] = 0
            sums[i] = 0.0
        for t in range(time_starts[ot], time_ends[ot]):
            for y in range(row_starts[oy], row_ends[oy]):
                line = source[t, y]
                for i in range(values):
                    p = np.float64(line[i])
                    tops[i] = max(tops[i], p)
                    sums[i] += p
        rows = (time_ends[ot] - time_starts[ot]) * (row_ends[oy] - row_starts[oy])
        line_out = out[ot, oy]
        for ox in range(width_out):
            x0, x1 = column_starts[ox], column_ends[ox]
            for c in range(colours):
                top = 0.0
                for x in range(x0, x1):
                    top = max(top, tops[x * channels + c])
                line_out[ox * channels + c] = top
            for c in range(colours, channels):
                total = 0.0
                for x in range(x0, x1):
                    total += sums[x * channels + c]
                line_out[ox * channels + c] = np.rint(total / (rows * (x1 - x0)))


FACTORIES = {"small_windows": small_windows, "separable": separable}
FUNCTIONS = {"general_soft": general_soft, "max_relative_soft": max_relative_soft, "general_max": general_max}
