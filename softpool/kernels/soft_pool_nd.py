r"""SoftPool forward and backward as Triton kernels, one family for 1D, 2D and 3D.

The kernels see every input as five axes: batch, channel and three spatial axes (rank 1 and
2 are lifted with size-1 axes). Batch and channel are pooled with a window of 1, so all five
axes are handled alike. The launcher orders the axes by the input's strides, innermost last,
and each program takes a tile over the two innermost axes: along W for (N, C, H, W) tensors,
along C for channels_last ones, so neighbouring lanes read neighbouring memory without a copy.

Math, for one window w and channel, over the window's valid positions (padding and positions
past the input are not part of it, as with max pooling's -inf padding):

    m = max_i x_i,   e_i = exp(beta (x_i - m)),   s = sum_i e_i,
    y = sum_i e_i x_i / s = m + sum_i e_i (x_i - m) / s.

Subtracting m keeps every e_i in (0, 1] whatever the magnitude of x; writing y as m plus a
non-positive mean keeps it inside [min x, max x]. Small windows (up to MAX_UNROLLED_WINDOW values)
are unrolled: each value is loaded once into registers, then two passes take m and the sums, one
exp per value. Larger windows are taken in chunks of lanes with an online (running max) update,
as in a flash-attention softmax.

Gradient. With w_i = e_i / s = softmax(beta x)_i and y = sum_i w_i x_i,

    dy/dx_i = w_i (1 + beta (x_i - y)),

and an input element receives sum over every window holding it of g_w w_{i,w} (1 + beta (x_i - y_w)),
g being the incoming gradient. The backward is a gather: each input element visits the at most
ceil(k / s) windows per axis that hold it (window indices floor((i + p) / s) down to
ceil((i + p - k + 1) / s)), so no atomics and bit-identical results run to run. It rebuilds

    w_i = exp(beta (x_i - y) - r),   r = log sum_j exp(beta (x_j - y)) = beta (m - y) + log s,

from two statistics the forward saves, only when a gradient is needed: y in float32 (the output
itself for float32 and float64 inputs) and r. Taking y rather than m as the reference keeps the
exponent exact where it matters: beta (m - y) = sum_j w_j beta (m - x_j) <= (n - 1) / e for a
window of n values, so for the weights that count both terms stay small whatever the magnitude
of x, and (x_i - y) uses y unrounded, also for half-precision outputs.

Loads are in the input dtype, arithmetic in float32 (float64 for float64 inputs), stores in the
output dtype. Positions along an axis are 32-bit (a grid holds fewer than 2**31 programs), and
offsets (position x stride) along the three outer axes are 64-bit, so tensors over 2**31 elements
work; offsets within a tile are 32-bit too, which saves instructions, unless the launcher finds
they could pass 2**31 (then positions and offsets are all 64-bit).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from .._arguments import PoolGeometry

try:
    INTERPRETED: bool = bool(triton.knobs.runtime.interpret)
except AttributeError:  # Triton before 3.4 had no knobs; the environment variable is what it read.
    INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Each program runs at most CUDA_WARPS warps, and its tile is sized so that each thread makes
# about *_LOADS_PER_THREAD loads (in the backward, one covering window = three loads): enough
# loads in flight to cover memory latency, and enough work to amortise a program's index
# arithmetic. Compiled for sm_90 (`benchmarks/gpu_checks.py --resources`), 2x2 windows then take
# about 19 instructions per input element in the forward and 40 in the backward, with 64-105
# registers and no spills; half these loads cost 20-25% more instructions per element.
CUDA_WARPS = 8
FORWARD_LOADS_PER_THREAD = 32
BACKWARD_LOADS_PER_THREAD = 16
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


@triton.jit
def _tile_position(tile, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    """First position of a tile along one axis: int32 unless WIDE (the launcher's offset check)."""
    if WIDE:
        position = tile.to(tl.int64) * BLOCK
    else:
        position = tile * BLOCK
    return position


@triton.jit
def _program_position(tiles_3, tiles_4, size_1, size_2):
    """This program's tiles along axes 3 and 4 and its position along axes 0-2 (tile_4 fastest).

    Unsigned 32-bit divisions, as a grid holds fewer than 2**31 programs: cheaper than signed
    ones, and free for counts of 1, which Triton turns into constants.
    """
    rest = tl.program_id(0).to(tl.uint32)
    tile_4 = rest % tl.cast(tiles_4, tl.uint32)
    rest = rest // tl.cast(tiles_4, tl.uint32)
    tile_3 = rest % tl.cast(tiles_3, tl.uint32)
    rest = rest // tl.cast(tiles_3, tl.uint32)
    position_2 = rest % tl.cast(size_2, tl.uint32)
    rest = rest // tl.cast(size_2, tl.uint32)
    position_1 = rest % tl.cast(size_1, tl.uint32)
    position_0 = rest // tl.cast(size_1, tl.uint32)
    return (
        position_0.to(tl.int32),
        position_1.to(tl.int32),
        position_2.to(tl.int32),
        tile_3.to(tl.int32),
        tile_4.to(tl.int32),
    )


@triton.jit
def _window_lane(
    k: tl.constexpr,
    x_windows,
    tile_offset,
    out_mask,
    start_0, start_1, start_2, start_3, start_4,
    in_0, in_1, in_2, in_3, in_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    EDGE_3: tl.constexpr, EDGE_4: tl.constexpr,
):
    """Pointers to, and mask of, value k (axis 4 fastest) of every window in the tile."""
    k_4: tl.constexpr = k % K4
    k_3: tl.constexpr = (k // K4) % K3
    k_2: tl.constexpr = (k // (K4 * K3)) % K2
    k_1: tl.constexpr = (k // (K4 * K3 * K2)) % K1
    k_0: tl.constexpr = k // (K4 * K3 * K2 * K1)
    p_0 = start_0 + k_0
    p_1 = start_1 + k_1
    p_2 = start_2 + k_2
    # Axes 0-2 are one position per program: their checks are scalar. A select rather than `&`
    # (the same code once compiled): the interpreter splats a scalar comparison to int32, and
    # Triton 3.9's interpreter rejects a load mask that is not boolean.
    inside = (p_0 >= 0) & (p_0 < in_0) & (p_1 >= 0) & (p_1 < in_1) & (p_2 >= 0) & (p_2 < in_2)
    valid = tl.where(inside, out_mask, False)
    if EDGE_3:
        valid = valid & (start_3 + k_3 >= 0) & (start_3 + k_3 < in_3)
    if EDGE_4:
        valid = valid & (start_4 + k_4 >= 0) & (start_4 + k_4 < in_4)
    step = (
        tl.cast(k_0, tl.int64) * xs_0
        + tl.cast(k_1, tl.int64) * xs_1
        + tl.cast(k_2, tl.int64) * xs_2
        + tl.cast(k_3, tl.int64) * xs_3
        + tl.cast(k_4, tl.int64) * xs_4
    )
    return x_windows + step + tile_offset, valid


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
    EDGE: tl.constexpr,
    EDGE_3: tl.constexpr,
    EDGE_4: tl.constexpr,
    BLOCK_3: tl.constexpr,
    BLOCK_4: tl.constexpr,
    WINDOW_BLOCK: tl.constexpr,
    WINDOW_CHUNKS: tl.constexpr,
    WIDE: tl.constexpr,
    SAVE_STATS: tl.constexpr,
    SAVE_REFERENCE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """SoftPool forward for a tile of BLOCK_3 x BLOCK_4 outputs (axes 3 and 4) at fixed axes 0-2.

    Axis d has input size in_d, output size out_d, strides xs_d (input) and ys_d (output and
    statistics), and window K_d, stride S_d, padding P_d. EDGE says some window reaches past the
    input (padding or ceil_mode), EDGE_d that one does along tile axis d, so those lanes need a
    mask. WINDOW_BLOCK = 0 unrolls the window (small windows); otherwise it is taken in
    WINDOW_CHUNKS chunks of WINDOW_BLOCK lanes. Writes y; with SAVE_STATS also r (see the module
    docstring), and with SAVE_REFERENCE y in COMPUTE_DTYPE (for half-precision outputs).
    """
    o_0, o_1, o_2, tile_3, tile_4 = _program_position(tiles_3, tiles_4, out_1, out_2)

    lane = tl.arange(0, BLOCK_3 * BLOCK_4)
    o_3 = _tile_position(tile_3, BLOCK_3, WIDE) + lane // BLOCK_4  # (BLOCK,)
    o_4 = _tile_position(tile_4, BLOCK_4, WIDE) + lane % BLOCK_4
    out_mask = (o_3 < out_3) & (o_4 < out_4)

    # First input position of each window, per axis; negative inside the left padding.
    start_0 = o_0 * S0 - P0
    start_1 = o_1 * S1 - P1
    start_2 = o_2 * S2 - P2
    start_3 = o_3 * S3 - P3
    start_4 = o_4 * S4 - P4
    x_windows = x_ptr + (start_0.to(tl.int64) * xs_0 + start_1.to(tl.int64) * xs_1 + start_2.to(tl.int64) * xs_2)
    tile_offset = start_3 * xs_3 + start_4 * xs_4  # (BLOCK,)

    beta = tl.cast(beta, COMPUTE_DTYPE)
    scale = beta * 1.4426950408889634  # exp(beta d) = exp2(scale d)
    if WINDOW_BLOCK == 0:
        window_max, weight_sum, weighted_diff = _unrolled_window(
            x_windows, tile_offset, out_mask,
            start_0, start_1, start_2, start_3, start_4,
            in_0, in_1, in_2, in_3, in_4,
            xs_0, xs_1, xs_2, xs_3, xs_4,
            scale, K0, K1, K2, K3, K4, EDGE, EDGE_3, EDGE_4, BLOCK_3 * BLOCK_4, COMPUTE_DTYPE,
        )  # fmt: skip
    else:
        window_max, weight_sum, weighted_diff = _chunked_window(
            x_windows, tile_offset, out_mask,
            start_0, start_1, start_2, start_3, start_4,
            in_0, in_1, in_2, in_3, in_4,
            xs_0, xs_1, xs_2, xs_3, xs_4,
            scale, K0, K1, K2, K3, K4, BLOCK_3 * BLOCK_4, WINDOW_BLOCK, WINDOW_CHUNKS, COMPUTE_DTYPE,
        )  # fmt: skip

    # Every output window holds at least one input (max pooling's rule): weight_sum >= 1 there.
    safe_sum = tl.where(out_mask, weight_sum, 1.0)
    y = window_max + weighted_diff / safe_sum

    out_scalar = o_0.to(tl.int64) * ys_0 + o_1.to(tl.int64) * ys_1 + o_2.to(tl.int64) * ys_2
    out_offset = o_3 * ys_3 + o_4 * ys_4  # (BLOCK,)
    tl.store(y_ptr + out_scalar + out_offset, y.to(y_ptr.dtype.element_ty), mask=out_mask)
    if SAVE_STATS:
        log_normalizer = (window_max - y) * beta + tl.log(safe_sum)
        tl.store(log_normalizer_ptr + out_scalar + out_offset, log_normalizer, mask=out_mask)
        if SAVE_REFERENCE:
            tl.store(reference_ptr + out_scalar + out_offset, y, mask=out_mask)


@triton.jit
def _unrolled_window(
    x_windows,
    tile_offset,
    out_mask,
    start_0, start_1, start_2, start_3, start_4,
    in_0, in_1, in_2, in_3, in_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    scale,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    EDGE: tl.constexpr, EDGE_3: tl.constexpr, EDGE_4: tl.constexpr,
    BLOCK: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """Window max m, sum of e_i and sum of e_i (x_i - m), over a window unrolled value by value.

    Two passes over the same loads: the compiler keeps the values in registers, so each is read
    from memory once and needs one exp. Without EDGE only outputs past the tile's end are masked,
    and their results are never stored, so no lane needs a select.
    """
    window_max = tl.full([BLOCK], float("-inf"), COMPUTE_DTYPE)
    for k in tl.static_range(K0 * K1 * K2 * K3 * K4):
        pointers, valid = _window_lane(
            k, x_windows, tile_offset, out_mask,
            start_0, start_1, start_2, start_3, start_4,
            in_0, in_1, in_2, in_3, in_4,
            xs_0, xs_1, xs_2, xs_3, xs_4,
            K1, K2, K3, K4, EDGE_3, EDGE_4,
        )  # fmt: skip
        values = tl.load(pointers, mask=valid, other=0.0).to(COMPUTE_DTYPE)
        if EDGE:
            values = tl.where(valid, values, float("-inf"))
        window_max = tl.maximum(window_max, values)
    # Outputs past the tile's end may have no valid value: a finite maximum keeps them NaN-free.
    window_max = tl.where(out_mask, window_max, 0.0)

    weight_sum = tl.zeros([BLOCK], COMPUTE_DTYPE)
    weighted_diff = tl.zeros([BLOCK], COMPUTE_DTYPE)
    for k in tl.static_range(K0 * K1 * K2 * K3 * K4):
        pointers, valid = _window_lane(
            k, x_windows, tile_offset, out_mask,
            start_0, start_1, start_2, start_3, start_4,
            in_0, in_1, in_2, in_3, in_4,
            xs_0, xs_1, xs_2, xs_3, xs_4,
            K1, K2, K3, K4, EDGE_3, EDGE_4,
        )  # fmt: skip
        values = tl.load(pointers, mask=valid, other=0.0).to(COMPUTE_DTYPE)
        diff = values - window_max  # <= 0 where valid
        if EDGE:
            diff = tl.where(valid, diff, 0.0)
        weights = tl.exp2(diff * scale)
        if EDGE:
            weights = tl.where(valid, weights, 0.0)
        weight_sum += weights
        weighted_diff += weights * diff
    return window_max, weight_sum, weighted_diff


@triton.jit
def _chunked_window(
    x_windows,
    tile_offset,
    out_mask,
    start_0, start_1, start_2, start_3, start_4,
    in_0, in_1, in_2, in_3, in_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    scale,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    BLOCK: tl.constexpr,
    WINDOW_BLOCK: tl.constexpr,
    WINDOW_CHUNKS: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """Window max m, sum of e_i and sum of e_i (x_i - m), over a large window in chunks of lanes.

    Each chunk is a (BLOCK, WINDOW_BLOCK) tile; the running sums are rescaled when a chunk raises
    the running maximum (an online softmax).
    """
    running_max = tl.full([BLOCK], float("-inf"), COMPUTE_DTYPE)
    weight_sum = tl.zeros([BLOCK], COMPUTE_DTYPE)  # sum of e_i, relative to running_max
    weighted_diff = tl.zeros([BLOCK], COMPUTE_DTYPE)  # sum of e_i (x_i - running_max)
    for chunk in tl.range(0, WINDOW_CHUNKS):
        j = chunk * WINDOW_BLOCK + tl.arange(0, WINDOW_BLOCK)  # flat index in the window, axis 4 fastest
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
        lane_ok = (j < K0 * K1 * K2 * K3 * K4) & (p_0 >= 0) & (p_0 < in_0) & (p_1 >= 0) & (p_1 < in_1)
        lane_ok = lane_ok & (p_2 >= 0) & (p_2 < in_2)
        p_3 = start_3[:, None] + k_3[None, :]
        p_4 = start_4[:, None] + k_4[None, :]
        valid = out_mask[:, None] & lane_ok[None, :] & (p_3 >= 0) & (p_3 < in_3) & (p_4 >= 0) & (p_4 < in_4)
        step = (
            k_0.to(tl.int64) * xs_0
            + k_1.to(tl.int64) * xs_1
            + k_2.to(tl.int64) * xs_2
            + k_3.to(tl.int64) * xs_3
            + k_4.to(tl.int64) * xs_4
        )  # (WINDOW_BLOCK,)
        values = tl.load((x_windows + step)[None, :] + tile_offset[:, None], mask=valid, other=0.0)
        values = values.to(COMPUTE_DTYPE)

        new_max = tl.maximum(running_max, tl.max(tl.where(valid, values, float("-inf")), axis=1))
        # Finite stand-ins keep masked lanes free of inf - inf: a window with nothing valid yet has
        # weight_sum 0, and its reference only needs to be finite.
        reference = tl.where(new_max == float("-inf"), 0.0, new_max)
        shift = tl.where(weight_sum > 0, running_max, reference) - reference  # <= 0
        rescale = tl.exp2(shift * scale)
        diff = tl.where(valid, values - reference[:, None], 0.0)  # <= 0 where valid
        weights = tl.where(valid, tl.exp2(diff * scale), 0.0)
        weighted_diff = rescale * (weighted_diff + weight_sum * shift) + tl.sum(weights * diff, axis=1)
        weight_sum = rescale * weight_sum + tl.sum(weights, axis=1)
        running_max = new_max
    return tl.where(weight_sum > 0, running_max, 0.0), weight_sum, weighted_diff


@triton.jit
def _holds(i, o, t, out, K: tl.constexpr, S: tl.constexpr, P: tl.constexpr, UNROLL: tl.constexpr):
    """Whether window o, the t-th candidate counted back from the last one starting at or before i,
    exists and holds position i along one axis."""
    holds = (o >= 0) & (o < out) & (i + P - o * S < K)
    if UNROLL:
        if t == 0:
            if S <= K:
                # o = floor((i + P) / S) >= 0 starts at most S - 1 <= K - 1 before i: it holds i.
                holds = o < out
    return holds


@triton.jit
def _gather_window(
    acc,
    t,
    x,
    in_mask,
    i_0, i_1, i_2, i_3, i_4,
    last_0, last_1, last_2, last_3, last_4,
    out_0, out_1, out_2, out_3, out_4,
    ys_0, ys_1, ys_2, ys_3, ys_4,
    dys_0, dys_1, dys_2, dys_3, dys_4,
    dy_ptr,
    reference_ptr,
    log_normalizer_ptr,
    beta,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr, S4: tl.constexpr,
    P0: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr, P3: tl.constexpr, P4: tl.constexpr,
    C0: tl.constexpr, C1: tl.constexpr, C2: tl.constexpr, C3: tl.constexpr, C4: tl.constexpr,
    UNROLL: tl.constexpr,
    GRAD_LIKE_STATS: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """Add the t-th candidate window's term g_w w_i (1 + beta (x_i - y_w)) to acc, where it holds i.

    t is a constant when UNROLL (then known-true checks are skipped), a loop counter otherwise.
    """
    t_4 = t % C4
    t_3 = (t // C4) % C3
    t_2 = (t // (C4 * C3)) % C2
    t_1 = (t // (C4 * C3 * C2)) % C1
    t_0 = t // (C4 * C3 * C2 * C1)
    o_0 = last_0 - t_0
    o_1 = last_1 - t_1
    o_2 = last_2 - t_2
    o_3 = last_3 - t_3
    o_4 = last_4 - t_4
    valid = (
        in_mask
        & (_holds(i_0, o_0, t_0, out_0, K0, S0, P0, UNROLL) & _holds(i_1, o_1, t_1, out_1, K1, S1, P1, UNROLL))
        & _holds(i_2, o_2, t_2, out_2, K2, S2, P2, UNROLL)
        & _holds(i_3, o_3, t_3, out_3, K3, S3, P3, UNROLL)
        & _holds(i_4, o_4, t_4, out_4, K4, S4, P4, UNROLL)
    )
    # The interpreter splats the scalar checks (axes 0-2) to int32, and Triton 3.9's rejects a
    # load mask that is not boolean: this select makes it boolean, and compiles to nothing.
    valid = tl.where(valid, True, False)
    stat_offset = (o_0.to(tl.int64) * ys_0 + o_1.to(tl.int64) * ys_1 + o_2.to(tl.int64) * ys_2) + (
        o_3 * ys_3 + o_4 * ys_4
    )
    if GRAD_LIKE_STATS:
        grad_offset = stat_offset
    else:
        grad_offset = (o_0.to(tl.int64) * dys_0 + o_1.to(tl.int64) * dys_1 + o_2.to(tl.int64) * dys_2) + (
            o_3 * dys_3 + o_4 * dys_4
        )
    grad = tl.load(dy_ptr + grad_offset, mask=valid, other=0.0).to(COMPUTE_DTYPE)
    y = tl.load(reference_ptr + stat_offset, mask=valid, other=0.0).to(COMPUTE_DTYPE)
    log_normalizer = tl.load(log_normalizer_ptr + stat_offset, mask=valid, other=0.0).to(COMPUTE_DTYPE)
    diff = x - y
    # -inf rather than the masked lanes' exponent, so they give 0 and never overflow.
    weight = tl.exp(tl.where(valid, diff * beta - log_normalizer, float("-inf")))
    weighted_grad = grad * weight
    return acc + weighted_grad + (weighted_grad * beta) * diff


@triton.jit
def _softpool_bwd_kernel(
    x_ptr,
    dy_ptr,
    reference_ptr,
    log_normalizer_ptr,
    dx_ptr,
    in_0, in_1, in_2, in_3, in_4,
    out_0, out_1, out_2, out_3, out_4,
    tiles_3, tiles_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    dxs_0, dxs_1, dxs_2, dxs_3, dxs_4,
    ys_0, ys_1, ys_2, ys_3, ys_4,
    dys_0, dys_1, dys_2, dys_3, dys_4,
    beta: tl.float64,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr, S4: tl.constexpr,
    P0: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr, P3: tl.constexpr, P4: tl.constexpr,
    BLOCK_3: tl.constexpr,
    BLOCK_4: tl.constexpr,
    WIDE: tl.constexpr,
    UNROLL: tl.constexpr,
    GRAD_LIKE_STATS: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """SoftPool backward for a tile of BLOCK_3 x BLOCK_4 inputs (axes 3 and 4) at fixed axes 0-2.

    dx_i = sum over windows w holding i of g_w w_{i,w} (1 + beta (x_i - y_w)), gathered from the
    at most ceil(K_d / S_d) windows per axis that can hold i. The saved y (in COMPUTE_DTYPE) and r
    share the strides ys_d; the incoming gradient has its own, dys_d (it may be broadcast), unless
    GRAD_LIKE_STATS says they are the same.
    """
    C0: tl.constexpr = (K0 + S0 - 1) // S0
    C1: tl.constexpr = (K1 + S1 - 1) // S1
    C2: tl.constexpr = (K2 + S2 - 1) // S2
    C3: tl.constexpr = (K3 + S3 - 1) // S3
    C4: tl.constexpr = (K4 + S4 - 1) // S4

    i_0, i_1, i_2, tile_3, tile_4 = _program_position(tiles_3, tiles_4, in_1, in_2)

    lane = tl.arange(0, BLOCK_3 * BLOCK_4)
    i_3 = _tile_position(tile_3, BLOCK_3, WIDE) + lane // BLOCK_4  # (BLOCK,)
    i_4 = _tile_position(tile_4, BLOCK_4, WIDE) + lane % BLOCK_4
    in_mask = (i_3 < in_3) & (i_4 < in_4)

    x_offset = (i_0.to(tl.int64) * xs_0 + i_1.to(tl.int64) * xs_1 + i_2.to(tl.int64) * xs_2) + (i_3 * xs_3 + i_4 * xs_4)
    x = tl.load(x_ptr + x_offset, mask=in_mask, other=0.0).to(COMPUTE_DTYPE)
    beta = tl.cast(beta, COMPUTE_DTYPE)

    # The last window along each axis that starts at or before i (i + P >= 0, so // is a floor).
    last_0 = (i_0 + P0) // S0
    last_1 = (i_1 + P1) // S1
    last_2 = (i_2 + P2) // S2
    last_3 = (i_3 + P3) // S3
    last_4 = (i_4 + P4) // S4

    acc = tl.zeros([BLOCK_3 * BLOCK_4], COMPUTE_DTYPE)
    if UNROLL:
        for t in tl.static_range(C0 * C1 * C2 * C3 * C4):
            acc = _gather_window(
                acc, t, x, in_mask,
                i_0, i_1, i_2, i_3, i_4,
                last_0, last_1, last_2, last_3, last_4,
                out_0, out_1, out_2, out_3, out_4,
                ys_0, ys_1, ys_2, ys_3, ys_4,
                dys_0, dys_1, dys_2, dys_3, dys_4,
                dy_ptr, reference_ptr, log_normalizer_ptr, beta,
                K0, K1, K2, K3, K4, S0, S1, S2, S3, S4, P0, P1, P2, P3, P4,
                C0, C1, C2, C3, C4, True, GRAD_LIKE_STATS, COMPUTE_DTYPE,
            )  # fmt: skip
    else:
        for t in tl.range(0, C0 * C1 * C2 * C3 * C4):
            acc = _gather_window(
                acc, t, x, in_mask,
                i_0, i_1, i_2, i_3, i_4,
                last_0, last_1, last_2, last_3, last_4,
                out_0, out_1, out_2, out_3, out_4,
                ys_0, ys_1, ys_2, ys_3, ys_4,
                dys_0, dys_1, dys_2, dys_3, dys_4,
                dy_ptr, reference_ptr, log_normalizer_ptr, beta,
                K0, K1, K2, K3, K4, S0, S1, S2, S3, S4, P0, P1, P2, P3, P4,
                C0, C1, C2, C3, C4, False, GRAD_LIKE_STATS, COMPUTE_DTYPE,
            )  # fmt: skip

    dx_offset = (i_0.to(tl.int64) * dxs_0 + i_1.to(tl.int64) * dxs_1 + i_2.to(tl.int64) * dxs_2) + (
        i_3 * dxs_3 + i_4 * dxs_4
    )
    tl.store(dx_ptr + dx_offset, acc.to(dx_ptr.dtype.element_ty), mask=in_mask)


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """One of the five axes the kernels see, with its window (1, 1, 0 for batch and channel)."""

    in_size: int
    out_size: int
    kernel: int
    stride: int
    padding: int

    @property
    def reaches_past_input(self) -> bool:
        """Whether some window starts in the left padding or ends past the input (needs a mask)."""
        return self.padding > 0 or (self.out_size - 1) * self.stride + self.kernel > self.in_size

    def offset_bound(self, stride: int) -> int:
        """A bound on |position| and |position x stride| over every input or window position the
        kernels form along this axis."""
        return (self.in_size + self.out_size * self.stride + 2 * self.kernel) * max(abs(stride), 1)


@dataclass(frozen=True)
class _Tile:
    """Launch shape: a rows x columns tile over the two innermost axes, and the program count."""

    rows: int
    columns: int
    num_warps: int
    programs: int


def _tile(outer: int, rows: int, columns: int, lanes: int, loads_per_thread: int) -> _Tile:
    """Pick a power-of-two tile for ``outer`` planes of rows x columns positions.

    Each position costs ``lanes`` loads (window values, or covering windows in the backward). The
    tile is filled along the innermost axis first, for contiguous accesses, up to the positions
    that CUDA_WARPS warps serve at ``loads_per_thread`` each; the warps then follow the tile's
    size. Under the interpreter the tile holds up to INTERPRETER_ELEMENTS loads instead.

    Raises:
        ValueError: when the launch would need more programs than a grid allows.
    """
    budget = INTERPRETER_ELEMENTS if INTERPRETED else loads_per_thread * 32 * CUDA_WARPS
    positions = _previous_power_of_2(max(1, budget // lanes))
    tile_columns = min(triton.next_power_of_2(columns), positions)
    tile_rows = max(1, min(triton.next_power_of_2(rows), positions // tile_columns))
    programs = outer * triton.cdiv(rows, tile_rows) * triton.cdiv(columns, tile_columns)
    if programs > MAX_PROGRAMS:
        raise ValueError(
            f"the Triton SoftPool kernels would need {programs} programs ({outer} x {rows} x {columns} "
            f"positions in tiles of {tile_rows} x {tile_columns}), more than the {MAX_PROGRAMS} a launch allows"
        )
    threads = tile_rows * tile_columns * lanes // loads_per_thread
    num_warps = min(CUDA_WARPS, _previous_power_of_2(max(1, threads // 32)))
    return _Tile(tile_rows, tile_columns, num_warps, programs)


def _previous_power_of_2(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def _axes(batch: int, channels: int, geometry: PoolGeometry) -> list[_Axis]:
    """The five kernel axes in logical order: batch, channel, spatial (leading size-1 axes for rank < 3)."""
    lifted = [_Axis(1, 1, 1, 1, 0)] * (3 - geometry.rank)
    spatial = [
        _Axis(*sizes)
        for sizes in zip(
            geometry.input_size, geometry.output_size, geometry.kernel_size, geometry.stride, geometry.padding
        )
    ]
    return [_Axis(batch, batch, 1, 1, 0), _Axis(channels, channels, 1, 1, 0), *lifted, *spatial]


def _lifted_strides(strides: tuple[int, ...], rank: int) -> list[int]:
    """Strides of an (N, C, *spatial) tensor for the five kernel axes (0 for the lifted size-1 axes)."""
    return [strides[0], strides[1], *([0] * (3 - rank)), *strides[2:]]


def _axis_order(axes: list[_Axis], x_strides: list[int]) -> list[int]:
    """Axes from outermost to innermost in the input's memory: size-1 axes first, then by stride."""
    return sorted(range(5), key=lambda a: (axes[a].in_size > 1 or axes[a].out_size > 1, -x_strides[a], a))


def _needs_wide_offsets(axes: list[_Axis], *strides: list[int]) -> bool:
    """Whether offsets within a tile (axes 3 and 4, kernel order) could pass 2**31 for some tensor."""
    return any(axes[3].offset_bound(s[3]) + axes[4].offset_bound(s[4]) > INT32_MAX for s in strides)


def _empty_output(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An output for ``x`` in its memory format (channels_last stays channels_last), as max pooling does."""
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim(), torch.contiguous_format)
    if layout is torch.contiguous_format or x.is_contiguous() or not x.is_contiguous(memory_format=layout):
        layout = torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)


def _compute_dtype(dtype: torch.dtype) -> tuple[torch.dtype, tl.dtype]:
    return (torch.float64, tl.float64) if dtype == torch.float64 else (torch.float32, tl.float32)


def _window_arguments(axes: list[_Axis]) -> dict[str, int]:
    """The constexpr window arguments K0..K4, S0..S4, P0..P4 of both kernels."""
    arguments = {}
    for name, field in (("K", "kernel"), ("S", "stride"), ("P", "padding")):
        arguments.update({f"{name}{d}": getattr(axis, field) for d, axis in enumerate(axes)})
    return arguments


def _launch(kernel, x: torch.Tensor, grid: tuple[int], arguments: tuple, options: dict) -> None:
    """Launch ``kernel`` on x's device: Triton launches on the current CUDA device."""
    if x.is_cuda and x.device.index != torch.cuda.current_device():
        with torch.cuda.device(x.device):
            kernel[grid](*arguments, **options)
    else:
        kernel[grid](*arguments, **options)


def _check_input(x: torch.Tensor, geometry: PoolGeometry) -> None:
    if x.dim() != geometry.rank + 2 or tuple(x.shape[2:]) != tuple(geometry.input_size):
        raise ValueError(
            f"soft_pool_triton expects a batched input of shape (N, C, {', '.join(map(str, geometry.input_size))}), "
            f"got {tuple(x.shape)}"
        )
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"soft_pool_triton expects a floating-point tensor, got {x.dtype}")


def _tunables() -> tuple:
    """The module settings a launch plan depends on: part of the plans' cache key, so that changing
    one (as the tests and the tile sweep do) takes effect at once."""
    return (
        INTERPRETED, INTERPRETER_ELEMENTS, CUDA_WARPS, FORWARD_LOADS_PER_THREAD, BACKWARD_LOADS_PER_THREAD,
        CHUNKED_LOADS_PER_THREAD, MAX_UNROLLED_WINDOW, MAX_WINDOW_BLOCK, MAX_UNROLLED_WINDOWS, MAX_PROGRAMS, INT32_MAX,
    )  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _forward_plan(
    shape: tuple[int, ...],
    x_strides: tuple[int, ...],
    y_strides: tuple[int, ...],
    dtype: torch.dtype,
    geometry: PoolGeometry,
    save_stats: bool,
    save_reference: bool,
    tunables: tuple,
) -> tuple[tuple[int], tuple[int, ...], dict]:
    """Grid, integer arguments and keyword arguments of the forward kernel, for tensors of this
    shape and these strides. Cached: working them out costs more than the launch of a small call."""
    logical = _axes(shape[0], shape[1], geometry)
    order = _axis_order(logical, _lifted_strides(x_strides, geometry.rank))
    axes = [logical[a] for a in order]
    x_lifted, y_lifted = ([_lifted_strides(t, geometry.rank)[a] for a in order] for t in (x_strides, y_strides))
    window_volume = math.prod(axis.kernel for axis in axes)
    # Small windows are unrolled (WINDOW_BLOCK 0); large ones go in chunks of window_block lanes.
    window_block = 0
    if window_volume > MAX_UNROLLED_WINDOW:
        window_block = min(triton.next_power_of_2(window_volume), MAX_WINDOW_BLOCK)
    outer = axes[0].out_size * axes[1].out_size * axes[2].out_size
    if window_block:
        tile = _tile(outer, axes[3].out_size, axes[4].out_size, window_block, CHUNKED_LOADS_PER_THREAD)
    else:
        tile = _tile(outer, axes[3].out_size, axes[4].out_size, window_volume, FORWARD_LOADS_PER_THREAD)
    integers = (
        *(axis.in_size for axis in axes),
        *(axis.out_size for axis in axes),
        triton.cdiv(axes[3].out_size, tile.rows),
        triton.cdiv(axes[4].out_size, tile.columns),
        *x_lifted,
        *y_lifted,
    )
    options = dict(
        **_window_arguments(axes),
        EDGE=any(axis.reaches_past_input for axis in axes),
        EDGE_3=axes[3].reaches_past_input,
        EDGE_4=axes[4].reaches_past_input,
        BLOCK_3=tile.rows,
        BLOCK_4=tile.columns,
        WINDOW_BLOCK=window_block,
        WINDOW_CHUNKS=triton.cdiv(window_volume, window_block) if window_block else 0,
        WIDE=_needs_wide_offsets(axes, x_lifted, y_lifted),
        SAVE_STATS=save_stats,
        SAVE_REFERENCE=save_reference,
        COMPUTE_DTYPE=_compute_dtype(dtype)[1],
        num_warps=tile.num_warps,
        num_stages=1,  # nothing to software-pipeline: the loads are unrolled or one per chunk
    )
    return (tile.programs,), integers, options


def _forward_launch(
    x: torch.Tensor,
    y: torch.Tensor,
    reference: torch.Tensor | None,
    log_normalizer: torch.Tensor | None,
    geometry: PoolGeometry,
    beta: float,
) -> tuple[tuple[int], tuple, dict]:
    """Grid, positional and keyword arguments of the forward kernel (statistics saved if given)."""
    save_stats = log_normalizer is not None
    grid, integers, options = _forward_plan(
        x.shape, x.stride(), y.stride(), x.dtype, geometry, save_stats, save_stats and reference is not y, _tunables()
    )
    # Without statistics their pointers are unused: y stands in.
    pointers = (x, y, reference, log_normalizer) if save_stats else (x, y, y, y)
    return grid, (*pointers, *integers, beta), options


@functools.lru_cache(maxsize=1024)
def _backward_plan(
    shape: tuple[int, ...],
    x_strides: tuple[int, ...],
    dx_strides: tuple[int, ...],
    stats_strides: tuple[int, ...],
    dy_strides: tuple[int, ...],
    dtype: torch.dtype,
    geometry: PoolGeometry,
    tunables: tuple,
) -> tuple[tuple[int], tuple[int, ...], dict]:
    """Grid, integer arguments and keyword arguments of the backward kernel (cached, as the forward's)."""
    logical = _axes(shape[0], shape[1], geometry)
    order = _axis_order(logical, _lifted_strides(x_strides, geometry.rank))
    axes = [logical[a] for a in order]
    x_lifted, dx_lifted, stats_lifted, dy_lifted = (
        [_lifted_strides(t, geometry.rank)[a] for a in order] for t in (x_strides, dx_strides, stats_strides, dy_strides)
    )
    covering = math.prod(-(-axis.kernel // axis.stride) for axis in axes)
    outer = axes[0].in_size * axes[1].in_size * axes[2].in_size
    tile = _tile(outer, axes[3].in_size, axes[4].in_size, covering, BACKWARD_LOADS_PER_THREAD)
    integers = (
        *(axis.in_size for axis in axes),
        *(axis.out_size for axis in axes),
        triton.cdiv(axes[3].in_size, tile.rows),
        triton.cdiv(axes[4].in_size, tile.columns),
        *x_lifted,
        *dx_lifted,
        *stats_lifted,
        *dy_lifted,
    )
    options = dict(
        **_window_arguments(axes),
        BLOCK_3=tile.rows,
        BLOCK_4=tile.columns,
        WIDE=_needs_wide_offsets(axes, x_lifted, dx_lifted, stats_lifted, dy_lifted),
        UNROLL=covering <= MAX_UNROLLED_WINDOWS,
        GRAD_LIKE_STATS=dy_lifted == stats_lifted,
        COMPUTE_DTYPE=_compute_dtype(dtype)[1],
        num_warps=tile.num_warps,
        num_stages=1,
    )
    return (tile.programs,), integers, options


def _backward_launch(
    x: torch.Tensor,
    grad_y: torch.Tensor,
    grad_x: torch.Tensor,
    reference: torch.Tensor,
    log_normalizer: torch.Tensor,
    geometry: PoolGeometry,
    beta: float,
) -> tuple[tuple[int], tuple, dict]:
    """Grid, positional and keyword arguments of the backward kernel."""
    grid, integers, options = _backward_plan(
        x.shape, x.stride(), grad_x.stride(), reference.stride(), grad_y.stride(), x.dtype, geometry, _tunables()
    )
    return grid, (x, grad_y, reference, log_normalizer, grad_x, *integers, beta), options


def _allocate_forward(
    x: torch.Tensor, geometry: PoolGeometry, save_stats: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """y (N, C, *out) in x's dtype and memory format; with ``save_stats`` the backward's statistics,
    shaped and strided like y: y in the compute dtype (y itself for float32 and float64) and r."""
    y = _empty_output(x, (*x.shape[:2], *geometry.output_size))  # (N, C, *out)
    if not save_stats:
        return y, None, None
    stats_dtype = _compute_dtype(x.dtype)[0]
    log_normalizer = torch.empty_strided(y.shape, y.stride(), dtype=stats_dtype, device=x.device)
    reference = y if y.dtype == stats_dtype else torch.empty_like(log_normalizer)
    return y, reference, log_normalizer


def _forward(
    x: torch.Tensor, geometry: PoolGeometry, beta: float, save_stats: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Run the forward kernel: y, and with ``save_stats`` the statistics (see `_allocate_forward`)."""
    y, reference, log_normalizer = _allocate_forward(x, geometry, save_stats)
    if y.numel() > 0:
        _launch(_softpool_fwd_kernel, x, *_forward_launch(x, y, reference, log_normalizer, geometry, beta))
    return y, reference, log_normalizer


def _backward(
    x: torch.Tensor,
    grad_y: torch.Tensor,
    reference: torch.Tensor,
    log_normalizer: torch.Tensor,
    geometry: PoolGeometry,
    beta: float,
) -> torch.Tensor:
    """Run the backward kernel: the gradient with respect to ``x``, gathered per input element.

    ``reference`` and ``log_normalizer`` are the statistics from `_forward` (same shape and strides).
    """
    out_shape = (*x.shape[:2], *geometry.output_size)
    if tuple(grad_y.shape) != out_shape:
        raise ValueError(f"grad_output must have the output's shape {out_shape}, got {tuple(grad_y.shape)}")
    grad_x = torch.empty_like(x)  # x's strides where dense, as autograd expects
    if x.numel() > 0:
        launch = _backward_launch(x, grad_y, grad_x, reference, log_normalizer, geometry, beta)
        _launch(_softpool_bwd_kernel, x, *launch)
    return grad_x


class _SoftPoolFunction(torch.autograd.Function):
    """Autograd glue: the forward saves x and the window statistics; the backward gathers."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, geometry: PoolGeometry, beta: float) -> torch.Tensor:
        y, reference, log_normalizer = _forward(x, geometry, beta, save_stats=True)
        ctx.save_for_backward(x, reference, log_normalizer)
        ctx.geometry = geometry
        ctx.beta = beta
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, reference, log_normalizer = ctx.saved_tensors
        grad_x = _backward(x, grad_y, reference, log_normalizer, ctx.geometry, ctx.beta)
        return grad_x, None, None


def soft_pool_triton(x: torch.Tensor, geometry: PoolGeometry, beta: float) -> torch.Tensor:
    """SoftPool of a batched ``x`` (N, C, *spatial) over the windows of ``geometry``, by the Triton kernels.

    Differentiable with respect to ``x``; the statistics for the backward are computed and kept
    only when autograd will need them.

    Args:
        x: CUDA tensor (or CPU tensor under the Triton interpreter), float16, bfloat16, float32 or
            float64, any strides.
        geometry: the checked windows (`softpool._arguments.pool_geometry`).
        beta: finite sharpness >= 0.

    Returns:
        (N, C, *geometry.output_size) in x's dtype, channels_last if x is.
    """
    _check_input(x, geometry)
    beta = float(beta)
    if torch.is_grad_enabled() and x.requires_grad:
        return _SoftPoolFunction.apply(x, geometry, beta)
    y, _, _ = _forward(x, geometry, beta, save_stats=False)
    return y


def soft_pool_triton_backward(
    grad_y: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float
) -> torch.Tensor:
    """The gradient of ``sum(grad_y * soft_pool_triton(x))`` with respect to ``x``, without autograd.

    For callers that keep only ``x`` (a custom op's backward): the forward runs again to rebuild
    the window statistics, then the gather kernel runs.
    """
    _check_input(x, geometry)
    beta = float(beta)
    with torch.no_grad():
        _, reference, log_normalizer = _forward(x.detach(), geometry, beta, save_stats=True)
        return _backward(x.detach(), grad_y, reference, log_normalizer, geometry, beta)
