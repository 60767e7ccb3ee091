r"""Triton building blocks shared by the kernels: program indexing, window loads, window sums.

Exponents are in base 2 and pre-scaled: with scale = beta log2(e), each value's exponent is
a = scale (x - m), its weight e = 2**a, and the kernels keep s = sum e and sum e a. Then

    y = m + (sum e a) / (s scale),

and the gradient needs only a and (sum e a) / s = scale (y - m). ``tl.exp2`` compiles to one
``ex2.approx.ftz.f32`` instruction, where ``tl.exp`` adds a multiply and ``tl.log`` calls the
branchy libdevice ``__nv_logf``; the base-2 forms lose nothing at float32's 1e-6.

Infinities and NaN are handled by clamping a, not by branches:

- a is clamped below at LOWEST_EXPONENT, whose 2**a is 0 in float32 and float64. A -inf value
  (and a position outside the input, loaded as -inf) then weighs 0 and adds 0 * LOWEST_EXPONENT
  = 0 to sum e a, instead of 0 * -inf = NaN.
- Where the infinities must be counted (``COUNT_INFINITE``, for the gradient), a is first
  clamped above at 0 with a min that drops NaN: in a window whose max is +inf, a +inf value has
  a = +inf - +inf = NaN and so weighs 1, every other value weighs 0, and s counts the +inf
  values.
- beta is raised to BETA_FLOOR, so that beta = 0 still sends -inf to a = -inf, not to
  -inf * 0 = NaN. The weights then differ from uniform only once values lie more than
  2**75 apart.
- A NaN reaches the window's max (a max that keeps NaN), and from it y and the gradient.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOWEST_EXPONENT = tl.constexpr(-2048.0)
BETA_FLOOR = tl.constexpr(2.0**-100)
LOG2_E = tl.constexpr(1.4426950408889634)
LN_2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _program_position(tiles_3, tiles_4, size_1, size_2, GRID_3D: tl.constexpr):
    """This program's tiles along axes 3 and 4 and its position along axes 0-2 (tile_4 fastest).

    GRID_3D: the grid is (tiles_4, tiles_3, positions along axes 0-2), which leaves at most one
    division (none where axes 0-2 were merged away); otherwise one flat axis. Unsigned 32-bit
    divisions, as a grid holds fewer than 2**31 programs: cheaper than signed ones, and free for
    counts of 1, which Triton turns into constants.
    """
    if GRID_3D:
        tile_4 = tl.program_id(0)
        tile_3 = tl.program_id(1)
        rest = tl.program_id(2).to(tl.uint32)
    else:
        rest = tl.program_id(0).to(tl.uint32)
        tile_4 = (rest % tl.cast(tiles_4, tl.uint32)).to(tl.int32)
        rest = rest // tl.cast(tiles_4, tl.uint32)
        tile_3 = (rest % tl.cast(tiles_3, tl.uint32)).to(tl.int32)
        rest = rest // tl.cast(tiles_3, tl.uint32)
    position_2 = rest % tl.cast(size_2, tl.uint32)
    rest = rest // tl.cast(size_2, tl.uint32)
    position_1 = rest % tl.cast(size_1, tl.uint32)
    position_0 = rest // tl.cast(size_1, tl.uint32)
    return position_0.to(tl.int32), position_1.to(tl.int32), position_2.to(tl.int32), tile_3, tile_4


@triton.jit
def _tile_start(tile, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    """First position of a tile along one axis: int32 unless WIDE (the launcher's offset check)."""
    if WIDE:
        position = tile.to(tl.int64) * BLOCK
    else:
        position = tile * BLOCK
    return position


@triton.jit
def _maximum_keeping_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _exponent(values, scale, scaled_max, COUNT_INFINITE: tl.constexpr):
    """a = scale (x - m), clamped as the module docstring says; scaled_max = scale m."""
    exponent = values * scale - scaled_max
    if COUNT_INFINITE:
        exponent = tl.minimum(exponent, 0.0)  # drops NaN: +inf in a +inf window weighs 1
    return tl.maximum(exponent, LOWEST_EXPONENT)  # drops NaN too: it reaches y through m


@triton.jit
def _reciprocal(x, FAST_MATH: tl.constexpr):
    """1 / x: one rcp.approx instruction (1 ulp) when compiled for float32, where ``/`` adds
    range checks and scaling; exact division in float64 and in the interpreter."""
    if FAST_MATH:
        result = tl.inline_asm_elementwise(
            "rcp.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
        )
    else:
        result = 1.0 / x
    return result


@triton.jit
def _log2(x, FAST_MATH: tl.constexpr):
    """log2 x: lg2.approx (2**-22 absolute error near 1) when compiled for float32, where
    ``tl.log2`` calls libdevice's polynomial."""
    if FAST_MATH:
        result = tl.inline_asm_elementwise(
            "lg2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
        )
    else:
        result = tl.log2(x)
    return result


@triton.jit
def _scale(beta, COMPUTE_DTYPE: tl.constexpr):
    """beta log2(e), beta raised to BETA_FLOOR (see the module docstring)."""
    beta = tl.maximum(tl.cast(beta, COMPUTE_DTYPE), BETA_FLOOR)
    return beta * LOG2_E


@triton.jit
def _window_columns(
    tile_4,
    K4: tl.constexpr, S4: tl.constexpr, P4: tl.constexpr,
    BLOCK_4: tl.constexpr,
    ROW_BLOCK: tl.constexpr,
    OUTPUT_VECTOR: tl.constexpr,
    WIDE: tl.constexpr,
):
    """Output positions (BLOCK_4,) of the tile along axis 4, and the input position each lane of
    a window part starts at: (BLOCK_4 * K4,) when ROW_BLOCK (the K4 values of a window along
    axis 4 side by side, one contiguous run per tile row), else (BLOCK_4,)."""
    outputs = _tile_start(tile_4, BLOCK_4, WIDE) + tl.arange(0, BLOCK_4)
    if OUTPUT_VECTOR > 1:
        # After the window is summed along its K4 lanes, each thread holds this many neighbouring
        # outputs: said here, the store keeps that layout instead of one of 16-byte vectors that
        # would cost a shuffle through shared memory.
        outputs = tl.max_contiguous(outputs, OUTPUT_VECTOR)
    if ROW_BLOCK:
        lanes = _tile_start(tile_4, BLOCK_4 * K4, WIDE) + tl.arange(0, BLOCK_4 * K4) - P4
    else:
        lanes = outputs * S4 - P4
    return outputs, lanes


@triton.jit
def _part_offsets(
    k,
    outer_offset,
    start_0, start_1, start_2,
    row_starts,
    lane_starts,
    in_0, in_1, in_2, in_3, in_4,
    xs_0, xs_1, xs_2, xs_3, xs_4,
    K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr, K4: tl.constexpr,
    ROW_BLOCK: tl.constexpr,
    OUTER_EDGE: tl.constexpr,
    MASK_ROWS: tl.constexpr,
    MASK_COLUMNS: tl.constexpr,
    X_ALIGN: tl.constexpr,
    COLUMN_ALIGN: tl.constexpr,
):
    """Offsets of window part k of every window in the tile: a scalar (int64, the outer axes),
    row offsets (BLOCK_3,) and column offsets (lanes,), int32 unless WIDE; and which of the
    (BLOCK_3, lanes) positions lie inside the input. A part is one value of each window (axis 4
    fastest), or with ROW_BLOCK one row of K4 values.

    X_ALIGN divides every outer and row offset and COLUMN_ALIGN is the run length over which
    the column check cannot change (the launcher proves both): said here, loads along axis 4
    become 16-byte vectors.
    """
    if ROW_BLOCK:
        k_4: tl.constexpr = 0
        k_3: tl.constexpr = k % K3
        k_2: tl.constexpr = (k // K3) % K2
        k_1: tl.constexpr = (k // (K3 * K2)) % K1
        k_0: tl.constexpr = k // (K3 * K2 * K1)
    else:
        k_4: tl.constexpr = k % K4
        k_3: tl.constexpr = (k // K4) % K3
        k_2: tl.constexpr = (k // (K4 * K3)) % K2
        k_1: tl.constexpr = (k // (K4 * K3 * K2)) % K1
        k_0: tl.constexpr = k // (K4 * K3 * K2 * K1)
    scalar = outer_offset + (
        tl.cast(k_0, tl.int64) * xs_0 + tl.cast(k_1, tl.int64) * xs_1 + tl.cast(k_2, tl.int64) * xs_2
    )
    rows = row_starts + k_3
    columns = lane_starts + k_4
    row_offsets = rows * xs_3
    if X_ALIGN > 1:
        scalar = tl.multiple_of(scalar, X_ALIGN)
        row_offsets = tl.multiple_of(row_offsets, X_ALIGN)
    column_offsets = columns * xs_4

    inside = tl.full([row_offsets.shape[0], column_offsets.shape[0]], True, tl.int1)
    if MASK_ROWS:
        inside = inside & ((rows >= 0) & (rows < in_3))[:, None]
    if MASK_COLUMNS:
        column_inside = (columns >= 0) & (columns < in_4)
        if COLUMN_ALIGN > 1:
            column_inside = tl.max_constancy(column_inside, COLUMN_ALIGN)
        inside = inside & column_inside[None, :]
    if OUTER_EDGE:
        p_0 = start_0 + k_0
        p_1 = start_1 + k_1
        p_2 = start_2 + k_2
        # A select rather than `&` (the same code once compiled): the interpreter splats a
        # scalar comparison to int32, and Triton 3.9's interpreter rejects a non-boolean mask.
        outer_inside = (p_0 >= 0) & (p_0 < in_0) & (p_1 >= 0) & (p_1 < in_1) & (p_2 >= 0) & (p_2 < in_2)
        inside = tl.where(outer_inside, inside, False)
    return scalar, row_offsets, column_offsets, inside


@triton.jit
def _part_pointers(pointer, scalar, row_offsets, column_offsets):
    """Pointers (BLOCK_3, lanes) from `_part_offsets`: the scalar and each thread's columns are
    added once per part, then each row's offset."""
    return ((pointer + scalar) + column_offsets[None, :]) + row_offsets[:, None]


@triton.jit
def _load_part(pointers, inside, EDGE: tl.constexpr, COMPUTE_DTYPE: tl.constexpr):
    """One window part in COMPUTE_DTYPE; positions outside the input are -inf where they belong
    to a window (EDGE), and left unset where they only belong to lanes past the output."""
    if EDGE:
        values = tl.load(pointers, mask=inside, other=float("-inf"))
    else:
        values = tl.load(pointers, mask=inside)
    return values.to(COMPUTE_DTYPE)


@triton.jit
def _per_output(
    values, BLOCK_3: tl.constexpr, BLOCK_4: tl.constexpr, K4: tl.constexpr, ROW_BLOCK: tl.constexpr
):
    """A part as (BLOCK_3, BLOCK_4, K4) with ROW_BLOCK (a register-only reshape: each thread
    holds whole windows), else as loaded."""
    if ROW_BLOCK:
        values = tl.reshape(values, (BLOCK_3, BLOCK_4, K4))
    return values


@triton.jit
def _part_max(values, ROW_BLOCK: tl.constexpr):
    """The maximum of a part per output (keeping NaN)."""
    if ROW_BLOCK:
        values = tl.reduce(values, 2, _maximum_keeping_nan)
    return values


@triton.jit
def _add_part_sums(
    values, scale, scaled_max, weight_sum, weighted_exponent,
    FIRST: tl.constexpr, ROW_BLOCK: tl.constexpr, K4: tl.constexpr, COUNT_INFINITE: tl.constexpr,
):  # fmt: skip
    """s and sum e a with a part's values added, e = 2**a (FIRST: the sums start with this part:
    0.0 + x is not x for x = -0.0, so the compiler would keep that add).

    Pairs (K4 = 2) are split rather than summed along their axis, so that the products chain
    into multiply-adds across parts.
    """
    if ROW_BLOCK:
        exponent = _exponent(values, scale, scaled_max[:, :, None], COUNT_INFINITE)
        weights = tl.exp2(exponent)
        if K4 == 2:
            exponent_left, exponent_right = tl.split(exponent)
            weight_left, weight_right = tl.split(weights)
            if FIRST:
                weight_sum = weight_left + weight_right
                weighted_exponent = weight_left * exponent_left
            else:
                weight_sum = weight_sum + weight_left + weight_right
                weighted_exponent = weighted_exponent + weight_left * exponent_left
            weighted_exponent = weighted_exponent + weight_right * exponent_right
        else:
            part_sum = tl.sum(weights, axis=2)
            part_weighted = tl.sum(weights * exponent, axis=2)
            if FIRST:
                weight_sum, weighted_exponent = part_sum, part_weighted
            else:
                weight_sum, weighted_exponent = weight_sum + part_sum, weighted_exponent + part_weighted
    else:
        exponent = _exponent(values, scale, scaled_max, COUNT_INFINITE)
        weights = tl.exp2(exponent)
        if FIRST:
            weight_sum, weighted_exponent = weights, weights * exponent
        else:
            weight_sum, weighted_exponent = weight_sum + weights, weighted_exponent + weights * exponent
    return weight_sum, weighted_exponent


@triton.jit
def _part_gradient(
    values, scale, scaled_max, mean_exponent, grad_scale,
    BLOCK_3: tl.constexpr, BLOCK_4: tl.constexpr, K4: tl.constexpr, ROW_BLOCK: tl.constexpr,
):  # fmt: skip
    """g w (1 + beta (x - y)) of every value of a part, as loaded (BLOCK_3, lanes).

    With w = e / s and beta (x - y) = ln 2 (a - scale (y - m)): grad_scale = g / s and
    mean_exponent = scale (y - m) = sum e a / s, per output. a >= LOWEST_EXPONENT keeps the
    product finite where e = 0.
    """
    if ROW_BLOCK:
        exponent = _exponent(values, scale, scaled_max[:, :, None], True)
        slope = (grad_scale * LN_2)[:, :, None]
        term = (exponent - mean_exponent[:, :, None]) * slope + grad_scale[:, :, None]
        gradient = tl.reshape(tl.exp2(exponent) * term, (BLOCK_3, BLOCK_4 * K4))
    else:
        exponent = _exponent(values, scale, scaled_max, True)
        gradient = tl.exp2(exponent) * ((exponent - mean_exponent) * (grad_scale * LN_2) + grad_scale)
    return gradient


@triton.jit
def _unrolled_window(
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
    ROW_BLOCK: tl.constexpr, EDGE: tl.constexpr, OUTER_EDGE: tl.constexpr,
    MASK_ROWS: tl.constexpr, MASK_COLUMNS: tl.constexpr, X_ALIGN: tl.constexpr, COLUMN_ALIGN: tl.constexpr,
    COUNT_INFINITE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """Window max m, scale m, s = sum e and sum e a (each (BLOCK_3, BLOCK_4)) over windows
    unrolled part by part, and the parts' values as a tuple.

    Each part is loaded once; its values stay in registers for the second pass (the weights)
    and, in the backward, for the gradient, whose stores would otherwise force a reload.
    """
    if ROW_BLOCK:
        PARTS: tl.constexpr = K0 * K1 * K2 * K3
    else:
        PARTS: tl.constexpr = K0 * K1 * K2 * K3 * K4
    parts = ()
    for k in tl.static_range(PARTS):
        scalar, row_offsets, column_offsets, inside = _part_offsets(
            k, outer_offset, start_0, start_1, start_2, row_starts, lane_starts,
            in_0, in_1, in_2, in_3, in_4, xs_0, xs_1, xs_2, xs_3, xs_4,
            K1, K2, K3, K4, ROW_BLOCK, OUTER_EDGE, MASK_ROWS, MASK_COLUMNS, X_ALIGN, COLUMN_ALIGN,
        )  # fmt: skip
        pointers = _part_pointers(x_ptr, scalar, row_offsets, column_offsets)
        values = _per_output(_load_part(pointers, inside, EDGE, COMPUTE_DTYPE), BLOCK_3, BLOCK_4, K4, ROW_BLOCK)
        parts = parts + (values,)
        if k == 0:
            window_max = _part_max(values, ROW_BLOCK)
        else:
            window_max = _maximum_keeping_nan(window_max, _part_max(values, ROW_BLOCK))
    scaled_max = _scaled_max(window_max, scale, COUNT_INFINITE)

    weight_sum = window_max
    weighted_exponent = window_max
    for k in tl.static_range(PARTS):
        weight_sum, weighted_exponent = _add_part_sums(
            parts[k], scale, scaled_max, weight_sum, weighted_exponent, k == 0, ROW_BLOCK, K4, COUNT_INFINITE
        )
    return window_max, scaled_max, weight_sum, weighted_exponent, parts


@triton.jit
def _scaled_max(window_max, scale, COUNT_INFINITE: tl.constexpr):
    """scale m, with 0 for a window of only -inf where the infinities are counted: its values'
    exponents are then -inf, where -inf - -inf = NaN would count them as +inf."""
    if COUNT_INFINITE:
        window_max = tl.where(window_max == float("-inf"), 0.0, window_max)
    return window_max * scale
