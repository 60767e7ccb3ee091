"""The SoftPool forward kernel: one lane per output, a tile of BLOCK_3 x BLOCK_4 outputs."""

from __future__ import annotations

import triton
import triton.language as tl

from .chunked import _chunked_window
from .window import _log2, _program_position, _reciprocal, _scale, _tile_start, _unrolled_window, _window_columns


@triton.jit
def _softpool_fwd_kernel(
    x_ptr,
    y_ptr,
    reference_ptr,
    log_normalizer_ptr,
    in_0, in_1, in_2, in_3, in_4,
    out_0, out_1, out_2, out_3, out_4,
    tiles_3, tiles_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    ys_0, ys_1, ys_2, ys_3, ys_4,
    beta: tl.float64,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr, S4: tl.constexpr,
    P0: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr, P3: tl.constexpr, P4: tl.constexpr,
    BLOCK_3: tl.constexpr,
    BLOCK_4: tl.constexpr,
    ROW_BLOCK: tl.constexpr,
    OUTPUT_VECTOR: tl.constexpr,
    EDGE: tl.constexpr,
    OUTER_EDGE: tl.constexpr,
    MASK_ROWS: tl.constexpr,
    MASK_COLUMNS: tl.constexpr,
    MASK_OUTPUT_ROWS: tl.constexpr,
    MASK_OUTPUT_COLUMNS: tl.constexpr,
    X_ALIGN: tl.constexpr,
    COLUMN_ALIGN: tl.constexpr,
    Y_ALIGN: tl.constexpr,
    OUTPUT_COLUMN_ALIGN: tl.constexpr,
    WINDOW_BLOCK: tl.constexpr,
    WINDOW_CHUNKS: tl.constexpr,
    WIDE: tl.constexpr,
    GRID_3D: tl.constexpr,
    SAVE_STATS: tl.constexpr,
    SAVE_REFERENCE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    FAST_MATH: tl.constexpr,
):
    """SoftPool forward for a tile of BLOCK_3 x BLOCK_4 outputs (axes 3 and 4) at fixed axes 0-2.

    Axis d has input size in_d, output size out_d, strides xs_d (input) and ys_d (output and
    statistics), and window K_d, stride S_d, padding P_d. Per window, with a_i = beta log2(e)
    (x_i - m) clamped as `window` describes, e_i = 2**a_i and s = sum e_i:

        y = m + sum e_i a_i / (s beta log2(e))  for a finite max m, else y = m (+-inf, NaN).

    ROW_BLOCK (K4 = S4, a power of two): each tile row of a window part is one contiguous run
    of BLOCK_4 * K4 inputs, split into windows in registers, so loads along axis 4 are vectors.
    EDGE: some window reaches past the input (padding, ceil_mode), so masked values are -inf;
    OUTER_EDGE, MASK_ROWS, MASK_COLUMNS: which checks the loads need; MASK_OUTPUT_*: which the
    stores need (the tile overhangs the output). X_ALIGN, COLUMN_ALIGN, Y_ALIGN and
    OUTPUT_COLUMN_ALIGN are the divisibility facts the launcher proved (see `_part_offsets`).
    WINDOW_BLOCK = 0 unrolls the window; otherwise it is taken in WINDOW_CHUNKS chunks.
    SAVE_STATS also writes r = log2 sum_j 2**(beta log2(e) (x_j - y)) for the gather backward
    (+inf for a window of only -inf), and SAVE_REFERENCE y in COMPUTE_DTYPE (half outputs).
    """
    o_0, o_1, o_2, tile_3, tile_4 = _program_position(tiles_3, tiles_4, out_1, out_2, GRID_3D)
    o_3 = _tile_start(tile_3, BLOCK_3, WIDE) + tl.arange(0, BLOCK_3)  # (BLOCK_3,)
    o_4, lane_starts = _window_columns(tile_4, K4, S4, P4, BLOCK_4, ROW_BLOCK, OUTPUT_VECTOR, WIDE)

    # First input position of each window, per axis; negative inside the left padding.
    start_0 = o_0 * S0 - P0
    start_1 = o_1 * S1 - P1
    start_2 = o_2 * S2 - P2
    row_starts = o_3 * S3 - P3
    outer_offset = start_0.to(tl.int64) * xs_0 + start_1.to(tl.int64) * xs_1 + start_2.to(tl.int64) * xs_2

    scale = _scale(beta, COMPUTE_DTYPE)
    parts = ()
    if WINDOW_BLOCK == 0:
        window_max, scaled_max, weight_sum, weighted_exponent, parts = _unrolled_window(
            x_ptr, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4, scale,
            K0, K1, K2, K3, K4, BLOCK_3, BLOCK_4, ROW_BLOCK, EDGE, OUTER_EDGE, MASK_ROWS, MASK_COLUMNS,
            X_ALIGN, COLUMN_ALIGN, SAVE_STATS, COMPUTE_DTYPE,
        )  # fmt: skip
    else:
        window_max, scaled_max, weight_sum, weighted_exponent = _chunked_window(
            x_ptr, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4, scale,
            K0, K1, K2, K3, K4, BLOCK_3, BLOCK_4, WINDOW_BLOCK, WINDOW_CHUNKS, SAVE_STATS, COMPUTE_DTYPE,
        )  # fmt: skip

    # A finite max has weight 1, so s >= 1 there; elsewhere y is the max (+-inf or NaN).
    reciprocal = _reciprocal(weight_sum, FAST_MATH)
    y = window_max + weighted_exponent * (reciprocal * (1.0 / scale))
    y = tl.where(tl.abs(window_max) < float("inf"), y, window_max)

    out_scalar = o_0.to(tl.int64) * ys_0 + o_1.to(tl.int64) * ys_1 + o_2.to(tl.int64) * ys_2
    out_rows = o_3 * ys_3
    if Y_ALIGN > 1:
        out_scalar = tl.multiple_of(out_scalar, Y_ALIGN)
        out_rows = tl.multiple_of(out_rows, Y_ALIGN)
    out_offsets = out_scalar + out_rows[:, None] + (o_4 * ys_4)[None, :]  # (BLOCK_3, BLOCK_4)
    out_mask = tl.full([BLOCK_3, BLOCK_4], True, tl.int1)
    if MASK_OUTPUT_ROWS:
        out_mask = out_mask & (o_3 < out_3)[:, None]
    if MASK_OUTPUT_COLUMNS:
        column_inside = o_4 < out_4
        if OUTPUT_COLUMN_ALIGN > 1:
            column_inside = tl.max_constancy(column_inside, OUTPUT_COLUMN_ALIGN)
        out_mask = out_mask & column_inside[None, :]
    tl.store(y_ptr + out_offsets, y.to(y_ptr.dtype.element_ty), mask=out_mask)
    if SAVE_STATS:
        mean_exponent = weighted_exponent * reciprocal  # beta log2(e) (y - m)
        log_normalizer = tl.where(
            window_max == float("-inf"), float("inf"), _log2(weight_sum, FAST_MATH) - mean_exponent
        )
        tl.store(log_normalizer_ptr + out_offsets, log_normalizer, mask=out_mask)
        if SAVE_REFERENCE:
            tl.store(reference_ptr + out_offsets, y, mask=out_mask)
