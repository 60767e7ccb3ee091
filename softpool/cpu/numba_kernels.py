"""The Numba kernels behind `softpool.cpu.engine`, on (P, D, H, W) arrays.

Each kernel takes ``(..., first_row, end_row)`` last and loops over output rows
``row = (plane * D' + od) * H' + oh``, or over input rows for the gathering backward, so that
callers can split the rows between threads. The factories compile a kernel on first use (and
Numba caches it on disk); they need Numba, which `NUMBA_AVAILABLE` tells.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

try:
    import numba
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic, overload
except ImportError:  # softpool.cpu.engine then declines every call
    numba = None

NUMBA_AVAILABLE = numba is not None

_LOG2E = 1.4426950408889634
_LN2_HIGH = 0.693359375  # ln 2 in two parts, so that n * _LN2_HIGH is exact for |n| < 2**9
_LN2_LOW = -2.12194440e-4
_EXP_FLOOR = -87.0  # below this exp(t) leaves float32's normal range: the weight is taken as 0


def _exp(t):  # pragma: no cover - a stub that Numba replaces by the overload below
    return math.exp(t)


if numba is not None:

    @intrinsic
    def _float32_from_bits(typingctx, bits):
        """Reinterpret an int32 as the float32 with the same bits."""

        def codegen(context, builder, signature, arguments):
            return builder.bitcast(arguments[0], ir.FloatType())

        return types.float32(types.int32), codegen

    @numba.njit(fastmath={"contract"})
    def _exp32(t):
        """exp(t) for float32 t <= 0 to about 1 ulp, in operations the compiler vectorises.

        Cody-Waite reduction t = n ln2 + r with |r| <= ln2 / 2, a degree-7 series for exp(r)
        (truncation error < 6e-9), and 2**n built from its exponent bits. NaN stays NaN.
        """
        n = np.rint(t * np.float32(_LOG2E))
        r = (t - n * np.float32(_LN2_HIGH)) - n * np.float32(_LN2_LOW)
        c1, c2, c3 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24)
        c4, c5, c6 = np.float32(1 / 120), np.float32(1 / 720), np.float32(1 / 5040)
        series = np.float32(1.0) + r * (np.float32(1.0) + r * (c1 + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * c6))))))
        # The bits of 2**n are (n + 127) << 23, formed in float32 (exact) to stay in 32-bit lanes.
        bits = np.int32((max(n, np.float32(-126.0)) + np.float32(127.0)) * np.float32(8388608.0))
        value = series * _float32_from_bits(bits)
        if t >= np.float32(_EXP_FLOOR):
            return value
        return t if t != t else np.float32(0.0)

    @overload(_exp)
    def _exp_for_dtype(t):
        if t == types.float32:
            return lambda t: _exp32(t)
        return lambda t: math.exp(t)

    @numba.njit
    def _within(y, low, high):
        """``y`` clipped to the window's range, which rounding can leave by an ulp; NaN stays NaN."""
        if y > high:
            return high
        if y < low:
            return low
        return y

    @numba.njit(inline="always")
    def _window_softpool(x, beta, plane, d0, d1, h0, h1, w0, w1):
        """(maximum, weight sum, SoftPool) of the window x[plane, d0:d1, h0:h1, w0:w1]."""
        top = x[plane, d0, h0, w0]
        bottom = top
        for d in range(d0, d1):
            for h in range(h0, h1):
                for w in range(w0, w1):
                    top = max(top, x[plane, d, h, w])
                    bottom = min(bottom, x[plane, d, h, w])
        total = beta - beta
        weighted = beta - beta
        for d in range(d0, d1):
            for h in range(h0, h1):
                for w in range(w0, w1):
                    weight = _exp(beta * (x[plane, d, h, w] - top))
                    total += weight
                    weighted += weight * x[plane, d, h, w]
        return top, total, _within(weighted / total, bottom, top)

    @numba.njit
    def _special_window(x, beta, plane, d0, d1, h0, h1, w0, w1):
        """(maximum, weight sum, SoftPool) of a window that holds -inf, +inf or NaN, which the
        vectorised loops leave NaN. A NaN: (NaN, 1, NaN). Else +inf: (+inf, their count, +inf).
        Else only -inf: (-inf, 1, -inf). Else the finite values alone (-inf weighs 0)."""
        constants = np.empty(2, x.dtype)  # 1 and +inf in x's dtype, so that every branch returns it
        constants[0], constants[1] = 1, np.inf
        one, inf = constants[0], constants[1]
        infinite = one - one  # the count of +inf values
        top = -inf
        bottom = inf
        for d in range(d0, d1):
            for h in range(h0, h1):
                for w in range(w0, w1):
                    value = x[plane, d, h, w]
                    if value != value:
                        return value, one, value
                    if value == inf:
                        infinite += one
                    elif value > -inf:
                        top = max(top, value)
                        bottom = min(bottom, value)
        if infinite:
            return inf, infinite, inf
        if top == -inf:
            return top, one, top
        total = beta - beta
        weighted = beta - beta
        for d in range(d0, d1):
            for h in range(h0, h1):
                for w in range(w0, w1):
                    value = x[plane, d, h, w]
                    if value > -inf:
                        weight = _exp(beta * (value - top))
                        total += weight
                        weighted += weight * value
        return top, total, _within(weighted / total, bottom, top)

    @numba.njit(inline="always")
    def _gradient_part(grad, value, beta, top, total, pooled):
        """dy/dx g for one value of a window with statistics (top, total, pooled) as
        `_special_window` gives them: g w (1 + beta (x - y)) for a finite maximum and value;
        g / count for a +inf value of a +inf window; NaN for a NaN window; 0 otherwise."""
        if top - top == 0 and value > -np.inf:
            part = grad * _exp(beta * (value - top)) / total
            return part + part * beta * (value - pooled)
        if top != top:
            return top
        if top == np.inf and value == np.inf:
            return grad / total
        return beta - beta

    @numba.njit
    def _special_gradient(x, beta, plane, d0, d1, h0, h1, w0, w1, grad, grad_x):
        """Write the gradient of a window of `_special_window` (one that no other window overlaps)."""
        top, total, pooled = _special_window(x, beta, plane, d0, d1, h0, h1, w0, w1)
        for d in range(d0, d1):
            for h in range(h0, h1):
                for w in range(w0, w1):
                    grad_x[plane, d, h, w] = _gradient_part(grad, x[plane, d, h, w], beta, top, total, pooled)


@functools.lru_cache(maxsize=None)
def whole_window_forward(kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Callable:
    """Forward over whole, non-overlapping windows, compiled for this window and stride.

    Numba freezes the closure's variables into the code (the loops unroll and the output row
    vectorises) and keys its disk cache on them.
    """
    kd, kh, kw = kernel
    sd, sh, sw = stride

    @numba.njit(nogil=True, error_model="numpy", cache=True)
    def forward_whole_windows(x, beta, y, first_row, end_row):
        # error_model="numpy" drops the division-by-zero check, which would stop vectorisation.
        _, depth_out, height_out, width_out = y.shape
        for row in range(first_row, end_row):
            plane = row // (depth_out * height_out)
            od = row // height_out - plane * depth_out
            oh = row % height_out
            for ow in range(width_out):
                top = x[plane, sd * od, sh * oh, sw * ow]
                bottom = top
                for dd in range(kd):
                    for dh in range(kh):
                        for dw in range(kw):
                            value = x[plane, sd * od + dd, sh * oh + dh, sw * ow + dw]
                            top = max(top, value)
                            bottom = min(bottom, value)
                total = beta - beta
                weighted = beta - beta
                for dd in range(kd):
                    for dh in range(kh):
                        for dw in range(kw):
                            value = x[plane, sd * od + dd, sh * oh + dh, sw * ow + dw]
                            weight = _exp(beta * (value - top))
                            total += weight
                            weighted += weight * value
                y[plane, od, oh, ow] = _within(weighted / total, bottom, top)
            # -inf, +inf and NaN all leave the output NaN (0 * -inf, inf - inf, NaN): such windows
            # are redone in a separate pass over the row, which keeps the loop above vectorised.
            for ow in range(width_out):
                if y[plane, od, oh, ow] != y[plane, od, oh, ow]:
                    d0, h0, w0 = sd * od, sh * oh, sw * ow
                    y[plane, od, oh, ow] = _special_window(x, beta, plane, d0, d0 + kd, h0, h0 + kh, w0, w0 + kw)[2]

    return forward_whole_windows


@functools.lru_cache(maxsize=None)
def whole_window_backward(kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Callable:
    """Backward over whole, non-overlapping windows: each input sample is written by one window.

    Its first loop nest repeats the forward's on purpose: moved into a shared function (inlined
    by Numba or by LLVM), the window loops no longer vectorise across the output row, and both
    kernels ran 5-7 times slower on a 4K frame.
    """
    kd, kh, kw = kernel
    sd, sh, sw = stride

    @numba.njit(nogil=True, error_model="numpy", cache=True)
    def backward_whole_windows(x, beta, grad_y, grad_x, first_row, end_row):
        _, depth_out, height_out, width_out = grad_y.shape
        # Per output row: each window's maximum, output and grad / weight sum first, then the
        # input rows one by one (short loop bodies over the row vectorise; one long one did not).
        tops = np.empty(width_out, x.dtype)
        outputs = np.empty(width_out, x.dtype)
        scales = np.empty(width_out, x.dtype)
        for row in range(first_row, end_row):
            plane = row // (depth_out * height_out)
            od = row // height_out - plane * depth_out
            oh = row % height_out
            for ow in range(width_out):
                top = x[plane, sd * od, sh * oh, sw * ow]
                bottom = top
                for dd in range(kd):
                    for dh in range(kh):
                        for dw in range(kw):
                            value = x[plane, sd * od + dd, sh * oh + dh, sw * ow + dw]
                            top = max(top, value)
                            bottom = min(bottom, value)
                total = beta - beta
                weighted = beta - beta
                for dd in range(kd):
                    for dh in range(kh):
                        for dw in range(kw):
                            value = x[plane, sd * od + dd, sh * oh + dh, sw * ow + dw]
                            weight = _exp(beta * (value - top))
                            total += weight
                            weighted += weight * value
                tops[ow] = top
                outputs[ow] = _within(weighted / total, bottom, top)
                scales[ow] = grad_y[plane, od, oh, ow] / total
            for dd in range(kd):
                for dh in range(kh):
                    d = sd * od + dd
                    h = sh * oh + dh
                    for ow in range(width_out):
                        top = tops[ow]
                        y = outputs[ow]
                        scale = scales[ow]
                        for dw in range(kw):
                            value = x[plane, d, h, sw * ow + dw]
                            # g w (1 + beta (x - y)), written without the literal 1 (an int64,
                            # which would promote float32 lanes to float64).
                            part = scale * _exp(beta * (value - top))
                            grad_x[plane, d, h, sw * ow + dw] = part + part * beta * (value - y)
            # Windows with -inf, +inf or NaN (a NaN output, as in the forward), redone apart.
            for ow in range(width_out):
                if outputs[ow] != outputs[ow]:
                    d0, h0, w0 = sd * od, sh * oh, sw * ow
                    _special_gradient(
                        x, beta, plane, d0, d0 + kd, h0, h0 + kh, w0, w0 + kw, grad_y[plane, od, oh, ow], grad_x
                    )

    return backward_whole_windows


@functools.lru_cache(maxsize=None)
def any_window_forward() -> Callable:
    """Forward for any windows: clipped to the input, so padding never takes part."""

    @numba.njit(nogil=True, error_model="numpy", cache=True)
    def forward_any_windows(x, beta, kd, kh, kw, sd, sh, sw, pd, ph, pw, y, first_row, end_row):
        _, depth, height, width = x.shape
        _, depth_out, height_out, width_out = y.shape
        for row in range(first_row, end_row):
            plane = row // (depth_out * height_out)
            od = row // height_out - plane * depth_out
            oh = row % height_out
            d0, d1 = max(od * sd - pd, 0), min(od * sd - pd + kd, depth)
            h0, h1 = max(oh * sh - ph, 0), min(oh * sh - ph + kh, height)
            for ow in range(width_out):
                w0, w1 = max(ow * sw - pw, 0), min(ow * sw - pw + kw, width)
                y[plane, od, oh, ow] = _window_softpool(x, beta, plane, d0, d1, h0, h1, w0, w1)[2]
            for ow in range(width_out):  # windows with -inf, +inf or NaN, left NaN above
                if y[plane, od, oh, ow] != y[plane, od, oh, ow]:
                    w0, w1 = max(ow * sw - pw, 0), min(ow * sw - pw + kw, width)
                    y[plane, od, oh, ow] = _special_window(x, beta, plane, d0, d1, h0, h1, w0, w1)[2]

    return forward_any_windows


@functools.lru_cache(maxsize=None)
def any_window_statistics() -> Callable:
    """Each window's maximum, weight sum and output, for the gathering backward."""

    @numba.njit(nogil=True, error_model="numpy", cache=True)
    def window_statistics(x, beta, kd, kh, kw, sd, sh, sw, pd, ph, pw, statistics, first_row, end_row):
        _, depth, height, width = x.shape
        _, _, depth_out, height_out, width_out = statistics.shape
        for row in range(first_row, end_row):
            plane = row // (depth_out * height_out)
            od = row // height_out - plane * depth_out
            oh = row % height_out
            d0, d1 = max(od * sd - pd, 0), min(od * sd - pd + kd, depth)
            h0, h1 = max(oh * sh - ph, 0), min(oh * sh - ph + kh, height)
            for ow in range(width_out):
                w0, w1 = max(ow * sw - pw, 0), min(ow * sw - pw + kw, width)
                top, total, pooled = _window_softpool(x, beta, plane, d0, d1, h0, h1, w0, w1)
                statistics[0, plane, od, oh, ow] = top
                statistics[1, plane, od, oh, ow] = total
                statistics[2, plane, od, oh, ow] = pooled
            for ow in range(width_out):  # windows with -inf, +inf or NaN, left NaN above
                if statistics[2, plane, od, oh, ow] != statistics[2, plane, od, oh, ow]:
                    w0, w1 = max(ow * sw - pw, 0), min(ow * sw - pw + kw, width)
                    top, total, pooled = _special_window(x, beta, plane, d0, d1, h0, h1, w0, w1)
                    statistics[0, plane, od, oh, ow] = top
                    statistics[1, plane, od, oh, ow] = total
                    statistics[2, plane, od, oh, ow] = pooled

    return window_statistics


@functools.lru_cache(maxsize=None)
def any_window_backward() -> Callable:
    """The gradient of each input sample, gathered from the windows that hold it, in a fixed order."""

    @numba.njit(nogil=True, error_model="numpy", cache=True)
    def backward_any_windows(
        x, beta, kd, kh, kw, sd, sh, sw, pd, ph, pw, statistics, grad_y, grad_x, first_row, end_row
    ):
        _, depth, height, width = x.shape
        _, depth_out, height_out, width_out = grad_y.shape
        for row in range(first_row, end_row):
            plane = row // (depth * height)
            d = row // height - plane * depth
            h = row % height
            # Window o holds sample i when o * s - p <= i < o * s - p + k.
            od0, od1 = max((d + pd - kd) // sd + 1, 0), min((d + pd) // sd + 1, depth_out)
            oh0, oh1 = max((h + ph - kh) // sh + 1, 0), min((h + ph) // sh + 1, height_out)
            for w in range(width):
                ow0, ow1 = max((w + pw - kw) // sw + 1, 0), min((w + pw) // sw + 1, width_out)
                value = x[plane, d, h, w]
                grad = beta - beta
                for od in range(od0, od1):
                    for oh in range(oh0, oh1):
                        for ow in range(ow0, ow1):
                            top = statistics[0, plane, od, oh, ow]
                            total = statistics[1, plane, od, oh, ow]
                            y = statistics[2, plane, od, oh, ow]
                            grad += _gradient_part(grad_y[plane, od, oh, ow], value, beta, top, total, y)
                grad_x[plane, d, h, w] = grad

    return backward_any_windows
