r"""The SoftPool backward for windows that do not overlap: one lane per output, recomputing.

When no input lies in two windows (K_d <= S_d on every axis), each window's gradient depends on
its own values alone. The kernel takes a tile of outputs as the forward does, recomputes m, s
and sum e a from x, loads the incoming gradient once per output, and writes every input's

    dx_i = g w_i (1 + beta (x_i - y)) = (g / s) e_i (1 + ln 2 (a_i - sum_j e_j a_j / s))

with the same loads, vectorised along axis 4 as in the forward. The forward saves nothing but
x; the backward moves x, dy and dx once (4.5 bytes per input in float16 for 2x2 windows).
Inputs in no window are zeroed before the launch (see `launch.covers_input`).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .chunked import _chunk_offsets, _chunked_window
from .window import LN_2, _exponent, _part_gradient, _part_offsets, _part_pointers, _program_position, _reciprocal
from .window import _scale, _tile_start, _unrolled_window, _window_columns


@triton.jit
def _softpool_window_bwd_kernel(
    x_ptr,
    dy_ptr,
    dx_ptr,
    in_0, in_1, in_2, in_3, in_4,
    out_0, out_1, out_2, out_3, out_4,
    tiles_3, tiles_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    dys_0, dys_1, dys_2, dys_3, dys_4,
    dxs_0, dxs_1, dxs_2, dxs_3, dxs_4,
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
    DX_LIKE_X: tl.constexpr,
    WINDOW_BLOCK: tl.constexpr,
    WINDOW_CHUNKS: tl.constexpr,
    WIDE: tl.constexpr,
    GRID_3D: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    FAST_MATH: tl.constexpr,
):
    """SoftPool backward for a tile of BLOCK_3 x BLOCK_4 non-overlapping windows (see the
    module docstring); the arguments are the forward's, with dys_d the incoming gradient's
    strides and dxs_d the gradient's (the same as x's when DX_LIKE_X).

    The infinities follow `window`: in a window with +inf, each +inf value takes g / (their
    count) and the others 0; -inf values take 0; a NaN in the window makes its gradient NaN.
    """
    o_0, o_1, o_2, tile_3, tile_4 = _program_position(tiles_3, tiles_4, out_1, out_2, GRID_3D)
    o_3 = _tile_start(tile_3, BLOCK_3, WIDE) + tl.arange(0, BLOCK_3)  # (BLOCK_3,)
    o_4, lane_starts = _window_columns(tile_4, K4, S4, P4, BLOCK_4, ROW_BLOCK, OUTPUT_VECTOR, WIDE)
    start_0 = o_0 * S0 - P0
    start_1 = o_1 * S1 - P1
    start_2 = o_2 * S2 - P2
    row_starts = o_3 * S3 - P3
    outer_offset = start_0.to(tl.int64) * xs_0 + start_1.to(tl.int64) * xs_1 + start_2.to(tl.int64) * xs_2
    dx_outer_offset = start_0.to(tl.int64) * dxs_0 + start_1.to(tl.int64) * dxs_1 + start_2.to(tl.int64) * dxs_2

    scale = _scale(beta, COMPUTE_DTYPE)
    parts = ()
    if WINDOW_BLOCK == 0:
        window_max, scaled_max, weight_sum, weighted_exponent, parts = _unrolled_window(
            x_ptr, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4, scale,
            K0, K1, K2, K3, K4, BLOCK_3, BLOCK_4, ROW_BLOCK, EDGE, OUTER_EDGE, MASK_ROWS, MASK_COLUMNS,
            X_ALIGN, COLUMN_ALIGN, True, COMPUTE_DTYPE,
        )  # fmt: skip
    else:
        window_max, scaled_max, weight_sum, weighted_exponent = _chunked_window(
            x_ptr, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4, scale,
            K0, K1, K2, K3, K4, BLOCK_3, BLOCK_4, WINDOW_BLOCK, WINDOW_CHUNKS, True, COMPUTE_DTYPE,
        )  # fmt: skip

    # Which outputs exist: lanes past them must not write the inputs they happen to cover.
    output_rows = o_3 < out_3
    output_columns = o_4 < out_4
    if OUTPUT_COLUMN_ALIGN > 1:
        output_columns = tl.max_constancy(output_columns, OUTPUT_COLUMN_ALIGN)
    out_mask = tl.full([BLOCK_3, BLOCK_4], True, tl.int1)
    if MASK_OUTPUT_ROWS:
        out_mask = out_mask & output_rows[:, None]
    if MASK_OUTPUT_COLUMNS:
        out_mask = out_mask & output_columns[None, :]
    grad_scalar = o_0.to(tl.int64) * dys_0 + o_1.to(tl.int64) * dys_1 + o_2.to(tl.int64) * dys_2
    grad_rows = o_3 * dys_3
    if Y_ALIGN > 1:
        grad_scalar = tl.multiple_of(grad_scalar, Y_ALIGN)
        grad_rows = tl.multiple_of(grad_rows, Y_ALIGN)
    grad_offsets = grad_scalar + grad_rows[:, None] + (o_4 * dys_4)[None, :]
    grad = tl.load(dy_ptr + grad_offsets, mask=out_mask, other=0.0).to(COMPUTE_DTYPE)

    # s = 0 only without a finite value (a window of -inf, or lanes past the output): every e_i
    # is 0 there, and any finite stand-in keeps the products finite.
    reciprocal = _reciprocal(tl.where(weight_sum > 0, weight_sum, 1.0), FAST_MATH)
    mean_exponent = weighted_exponent * reciprocal  # beta log2(e) (y - m)
    grad_scale = tl.where(window_max != window_max, window_max, grad * reciprocal)  # NaN stays NaN

    if WINDOW_BLOCK == 0:
        _unrolled_gradient(
            parts, dx_ptr, outer_offset, dx_outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4, dxs_0, dxs_1, dxs_2, dxs_3, dxs_4,
            out_4, scale, scaled_max, mean_exponent, grad_scale, output_rows, output_columns,
            K0, K1, K2, K3, K4, P4, BLOCK_3, BLOCK_4, ROW_BLOCK, EDGE, OUTER_EDGE, MASK_ROWS, MASK_COLUMNS,
            MASK_OUTPUT_ROWS, MASK_OUTPUT_COLUMNS, X_ALIGN, COLUMN_ALIGN, OUTPUT_COLUMN_ALIGN, DX_LIKE_X,
            COMPUTE_DTYPE,
        )  # fmt: skip
    else:
        for chunk in tl.range(0, WINDOW_CHUNKS):
            offsets, inside = _chunk_offsets(
                chunk, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
                in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4, K0, K1, K2, K3, K4, WINDOW_BLOCK,
            )  # fmt: skip
            values = tl.load(x_ptr + offsets, mask=inside, other=float("-inf")).to(COMPUTE_DTYPE)
            exponent = _exponent(values, scale, scaled_max[:, :, None], True)
            term = (exponent - mean_exponent[:, :, None]) * (grad_scale * LN_2)[:, :, None] + grad_scale[:, :, None]
            gradient = tl.exp2(exponent) * term
            if not DX_LIKE_X:
                offsets, _ = _chunk_offsets(
                    chunk, dx_outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
                    in_0, in_1, in_2, in_3, in_4, dxs_0, dxs_1, dxs_2, dxs_3, dxs_4, K0, K1, K2, K3, K4, WINDOW_BLOCK,
                )  # fmt: skip
            store_mask = inside & (output_rows[:, None] & output_columns[None, :])[:, :, None]
            tl.store(dx_ptr + offsets, gradient.to(dx_ptr.dtype.element_ty), mask=store_mask)


@triton.jit
def _unrolled_gradient(
    parts,
    dx_ptr,
    outer_offset,
    dx_outer_offset,
    start_0, start_1, start_2,
    row_starts,
    lane_starts,
    in_0, in_1, in_2, in_3, in_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    dxs_0, dxs_1, dxs_2, dxs_3, dxs_4,
    out_4,
    scale, scaled_max, mean_exponent, grad_scale,
    output_rows, output_columns,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    P4: tl.constexpr,
    BLOCK_3: tl.constexpr, BLOCK_4: tl.constexpr,
    ROW_BLOCK: tl.constexpr, EDGE: tl.constexpr, OUTER_EDGE: tl.constexpr,
    MASK_ROWS: tl.constexpr, MASK_COLUMNS: tl.constexpr,
    MASK_OUTPUT_ROWS: tl.constexpr, MASK_OUTPUT_COLUMNS: tl.constexpr,
    X_ALIGN: tl.constexpr, COLUMN_ALIGN: tl.constexpr, OUTPUT_COLUMN_ALIGN: tl.constexpr,
    DX_LIKE_X: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """Write dx for every value of the tile's windows, part by part, from the parts' values
    kept in registers since the sums."""
    if ROW_BLOCK:
        PARTS: tl.constexpr = K0 * K1 * K2 * K3
        LANES: tl.constexpr = BLOCK_4 * K4
        # Lane j of the tile holds a value of output j // K4 (lane_starts + P4 counts from 0).
        lane_columns = (lane_starts + P4) // K4 < out_4
        if OUTPUT_COLUMN_ALIGN > 1:
            lane_columns = tl.max_constancy(lane_columns, OUTPUT_COLUMN_ALIGN * K4)
    else:
        PARTS: tl.constexpr = K0 * K1 * K2 * K3 * K4
        LANES: tl.constexpr = BLOCK_4
        lane_columns = output_columns
    store_inside = tl.full([BLOCK_3, LANES], True, tl.int1)
    if MASK_OUTPUT_ROWS:
        store_inside = store_inside & output_rows[:, None]
    if MASK_OUTPUT_COLUMNS:
        store_inside = store_inside & lane_columns[None, :]
    for k in tl.static_range(PARTS):
        scalar, row_offsets, column_offsets, inside = _part_offsets(
            k, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4,
            K1, K2, K3, K4, ROW_BLOCK, OUTER_EDGE, MASK_ROWS, MASK_COLUMNS, X_ALIGN, COLUMN_ALIGN,
        )  # fmt: skip
        gradient = _part_gradient(
            parts[k], scale, scaled_max, mean_exponent, grad_scale, BLOCK_3, BLOCK_4, K4, ROW_BLOCK
        )
        if not DX_LIKE_X:
            scalar, row_offsets, column_offsets, _ = _part_offsets(
                k, dx_outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
                in_0, in_1, in_2, in_3, in_4, dxs_0, dxs_1, dxs_2, dxs_3, dxs_4,
                K1, K2, K3, K4, ROW_BLOCK, OUTER_EDGE, MASK_ROWS, MASK_COLUMNS, 1, COLUMN_ALIGN,
            )  # fmt: skip
        pointers = _part_pointers(dx_ptr, scalar, row_offsets, column_offsets)
        tl.store(pointers, gradient.to(dx_ptr.dtype.element_ty), mask=inside & store_inside)
