r"""The SoftPool backward for overlapping windows: a gather, one lane per input element.

Each input element visits the at most ceil(k / s) windows per axis that hold it (window indices
floor((i + p) / s) down to ceil((i + p - k + 1) / s)), so no atomics and bit-identical results
run to run. With the forward's statistics y (in the compute dtype) and
r = log2 sum_j 2**(beta log2(e) (x_j - y)), a window's weight of x_i is

    w_i = 2**(a_i - r),  a_i = beta log2(e) (x_i - y),

and x_i receives sum over its windows of g w_i (1 + ln 2 a_i) = g w_i (1 + beta (x_i - y)).
Taking y rather than m as the reference keeps the exponent exact where it matters:
beta (m - y) = sum_j w_j beta (m - x_j) <= (n - 1) / e for a window of n values, so for the
weights that count both terms stay small whatever the magnitude of x, and x_i - y uses y
unrounded, also for half-precision outputs.

Infinities: where x_i equals its window's y, both +inf (or both -inf, in a window of only
-inf), a_i is 0, so a +inf value takes g 2**-r = g / (the window's count of +inf) and a window
of -inf (r = +inf) gives 0; a_i >= LOWEST_EXPONENT keeps -inf values at 0 rather than NaN.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .window import LN_2, LOWEST_EXPONENT, _program_position, _scale, _tile_start


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
    scale,
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
    log_normalizer = tl.load(log_normalizer_ptr + stat_offset, mask=valid, other=float("inf")).to(COMPUTE_DTYPE)
    exponent = tl.where(x == y, 0.0, (x - y) * scale)  # 0, not NaN, for an infinite y
    exponent = tl.maximum(exponent, LOWEST_EXPONENT, propagate_nan=tl.PropagateNan.ALL)
    # Windows that do not hold i load r = +inf: weight 0, and a finite exponent keeps it 0.
    exponent = tl.where(valid, exponent, 0.0)
    weight = tl.exp2(exponent - log_normalizer)
    weighted_grad = grad * weight
    return acc + weighted_grad + (weighted_grad * LN_2) * exponent


@triton.jit
def _softpool_gather_bwd_kernel(
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

    i_0, i_1, i_2, tile_3, tile_4 = _program_position(tiles_3, tiles_4, in_1, in_2, False)

    lane = tl.arange(0, BLOCK_3 * BLOCK_4)
    i_3 = _tile_start(tile_3, BLOCK_3, WIDE) + lane // BLOCK_4  # (BLOCK,)
    i_4 = _tile_start(tile_4, BLOCK_4, WIDE) + lane % BLOCK_4
    in_mask = (i_3 < in_3) & (i_4 < in_4)

    x_offset = (i_0.to(tl.int64) * xs_0 + i_1.to(tl.int64) * xs_1 + i_2.to(tl.int64) * xs_2) + (i_3 * xs_3 + i_4 * xs_4)
    x = tl.load(x_ptr + x_offset, mask=in_mask, other=0.0).to(COMPUTE_DTYPE)
    scale = _scale(beta, COMPUTE_DTYPE)

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
                dy_ptr, reference_ptr, log_normalizer_ptr, scale,
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
                dy_ptr, reference_ptr, log_normalizer_ptr, scale,
                K0, K1, K2, K3, K4, S0, S1, S2, S3, S4, P0, P1, P2, P3, P4,
                C0, C1, C2, C3, C4, False, GRAD_LIKE_STATS, COMPUTE_DTYPE,
            )  # fmt: skip

    dx_offset = (i_0.to(tl.int64) * dxs_0 + i_1.to(tl.int64) * dxs_1 + i_2.to(tl.int64) * dxs_2) + (
        i_3 * dxs_3 + i_4 * dxs_4
    )
    tl.store(dx_ptr + dx_offset, acc.to(dx_ptr.dtype.element_ty), mask=in_mask)
