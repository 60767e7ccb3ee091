"""Large windows (more than MAX_UNROLLED_WINDOW values: global pooling, say), taken in chunks.

Each chunk is a (BLOCK_3, BLOCK_4, WINDOW_BLOCK) tile of the windows' values in order; the sums
follow an online max, as a flash-attention softmax does, and are rescaled by 2**shift (shift
<= 0) when a chunk raises it. The clamps of `window._exponent` keep the infinities' rules.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .window import _exponent, _maximum_keeping_nan


@triton.jit
def _chunk_offsets(
    chunk,
    outer_offset,
    start_0, start_1, start_2,
    row_starts,
    lane_starts,
    in_0, in_1, in_2, in_3, in_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    WINDOW_BLOCK: tl.constexpr,
):
    """Offsets (BLOCK_3, BLOCK_4, WINDOW_BLOCK) of chunk `chunk` of every window in the tile
    (the window's values in order, axis 4 fastest), and which of them lie inside the input."""
    j = chunk * WINDOW_BLOCK + tl.arange(0, WINDOW_BLOCK)
    k_4 = j % K4
    j_rest = j // K4
    k_3 = j_rest % K3
    j_rest = j_rest // K3
    k_2 = j_rest % K2
    j_rest = j_rest // K2
    k_1 = j_rest % K1
    k_0 = j_rest // K1
    p_0 = start_0 + k_0
    p_1 = start_1 + k_1
    p_2 = start_2 + k_2
    lane_inside = (j < K0 * K1 * K2 * K3 * K4) & (p_0 >= 0) & (p_0 < in_0) & (p_1 >= 0) & (p_1 < in_1)
    lane_inside = lane_inside & (p_2 >= 0) & (p_2 < in_2)
    p_3 = row_starts[:, None, None] + k_3[None, None, :]
    p_4 = lane_starts[None, :, None] + k_4[None, None, :]
    inside = lane_inside[None, None, :] & (p_3 >= 0) & (p_3 < in_3) & (p_4 >= 0) & (p_4 < in_4)
    step = k_0.to(tl.int64) * xs_0 + k_1.to(tl.int64) * xs_1 + k_2.to(tl.int64) * xs_2  # (WINDOW_BLOCK,)
    offsets = (outer_offset + step)[None, None, :] + p_3 * xs_3 + p_4 * xs_4
    return offsets, inside


@triton.jit
def _chunked_window(
    x_ptr,
    outer_offset,
    start_0, start_1, start_2,
    row_starts,
    lane_starts,
    in_0, in_1, in_2, in_3, in_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    scale,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    BLOCK_3: tl.constexpr, BLOCK_4: tl.constexpr,
    WINDOW_BLOCK: tl.constexpr, WINDOW_CHUNKS: tl.constexpr,
    COUNT_INFINITE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """m, scale m, s and sum e a over large windows, in chunks of WINDOW_BLOCK values with an
    online max: the sums are rescaled by 2**shift when a chunk raises the max (shift <= 0)."""
    window_max = tl.full([BLOCK_3, BLOCK_4], float("-inf"), COMPUTE_DTYPE)
    scaled_max = tl.zeros([BLOCK_3, BLOCK_4], COMPUTE_DTYPE)
    weight_sum = tl.zeros([BLOCK_3, BLOCK_4], COMPUTE_DTYPE)
    weighted_exponent = tl.zeros([BLOCK_3, BLOCK_4], COMPUTE_DTYPE)
    for chunk in tl.range(0, WINDOW_CHUNKS):
        offsets, inside = _chunk_offsets(
            chunk, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4, K0, K1, K2, K3, K4, WINDOW_BLOCK,
        )  # fmt: skip
        values = tl.load(x_ptr + offsets, mask=inside, other=float("-inf")).to(COMPUTE_DTYPE)
        new_max = _maximum_keeping_nan(window_max, tl.reduce(values, 2, _maximum_keeping_nan))
        # The scaled max of a window of only -inf so far is 0 (see _scaled_max), so that shift
        # stays finite; its sums are 0 then, whatever the rescale.
        new_scaled_max = tl.where(new_max == float("-inf"), 0.0, new_max) * scale
        shift = _exponent(scaled_max, 1.0, new_scaled_max, True)
        rescale = tl.exp2(shift)
        exponent = _exponent(values, scale, new_scaled_max[:, :, None], COUNT_INFINITE)
        weights = tl.exp2(exponent)
        weighted_exponent = rescale * (weighted_exponent + weight_sum * shift) + tl.sum(weights * exponent, axis=2)
        weight_sum = rescale * weight_sum + tl.sum(weights, axis=2)
        window_max = new_max
        scaled_max = new_scaled_max
    return window_max, scaled_max, weight_sum, weighted_exponent
