"""SoftPool of 8-bit pixels on CPU, compiled with Numba: uint8 in, uint8 out, no float copy.

The pooling step normalises each colour channel, ``x = (p / 255 - mean_c) / std_c``, pools
with SoftPool and maps back to pixels. Two facts make that a weighted box filter on the raw
pixels:

- SoftPool commutes with an affine map of its input when the weights are kept: the weights
  softmax(beta * x) depend on x only through ``beta * x``, and the weighted mean of an affine
  function of p is that function of the weighted mean of p. So the output pixel is
  ``sum(w * p) / sum(w)`` over the window, and the mean never matters.
- The weight of a pixel relative to a white one, ``w_c(p) = exp(a_c * (p - 255))`` with
  ``a_c = beta / (255 * std_c)``, lies in (0, 1] and needs no window maximum while
  ``a_c * 255`` stays small enough for float32 (up to about beta = 13 for ImageNet statistics).

In that range the whole-window kernels evaluate ``w`` with a short series and repeated squaring,
which the compiler vectorises across the output row (table lookups stay scalar loads): one pass
per output value for windows of up to 12 samples (2 x 2 RGB), two passes (window rows, then
columns) for larger ones. Beyond that range, for ceil_mode's partial windows and for windows
wider than 8 columns, a general kernel subtracts the window maximum and reads ``exp(-a_c * d)``
from a 256-entry table per channel. Alpha channels get ``a = 0``: every weight is 1, which is
average pooling.

Work is split over output rows between a few plain threads started per call (the kernels
release the GIL). Numba's own ``parallel=True`` would be simpler, but its default OpenMP layer
kills a forked child process that pools again, and its fallback layer aborts on concurrent
calls; threads started per call have neither problem and leave no pool behind.

Compiled kernels are cached on disk (``cache=True``), one per channel count, window, stride and
squaring count; the first call with a new combination compiles it (a few seconds, once).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

try:
    import numba
except ImportError:  # the CLI then pools with PyTorch
    numba = None

# A window-maximum-free weight exp(a * (p - 255)) must not underflow float32 (about exp(-87))
# even after summing a few of them and multiplying by 255.
_MAX_WEIGHT_EXPONENT = 60.0
# The series for exp(s) below is accurate to ~1e-8 relative for |s| up to this bound.
_SERIES_RANGE = 0.25
# Samples (window size x channels) up to which the one-pass kernel's loops unroll and vectorise.
_MAX_FUSED_VALUES = 12
# Window widths up to which the separable kernel's column sums unroll; wider ones use the general kernel.
_MAX_SEPARABLE_WIDTH = 8
# Work slices per thread (see `_run_rows`).
_SLICES_PER_THREAD = 4
# Below this many output values a single thread is faster than starting more.
_MIN_VALUES_PER_THREAD = 65536
# Every fast-math flag but "arcp": with it the compiler may divide through an approximate
# reciprocal, and a mean that is exactly n + 0.5 (average pooling) then rounds the wrong way.
_FASTMATH = {"nnan", "ninf", "nsz", "contract", "afn", "reassoc"}


def available() -> bool:
    """Whether the engine can run here (Numba is installed)."""
    return numba is not None


def supports(pixels: np.ndarray) -> bool:
    """Whether `soft_pool_uint8` takes these pixels: uint8 samples and Numba installed.

    uint16 and every other dtype go to the general (PyTorch) pooling path.
    """
    return numba is not None and isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8


def pool_uint8_or_none(
    pixels: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int] | None,
    method: str,
    beta: float,
    ceil_mode: bool,
) -> np.ndarray | None:
    """What `softpool_cli.pixels.pool.pool_array` computes on CPU, or None where this engine does not apply.

    It applies to uint8 pixels with SoftPool or average pooling (SoftPool with beta = 0) when
    Numba is installed; uint16 pixels, max pooling and a missing Numba return None, and the
    caller pools with PyTorch. Channel statistics are the pooling step's (gray, RGB, alpha).
    """
    if not supports(pixels) or method not in ("soft", "avg"):
        return None
    from softpool_cli.pixels.pool import channel_statistics

    _, std, alpha = channel_statistics(1 if pixels.ndim == 2 else pixels.shape[-1])
    beta = beta if method == "soft" else 0.0
    return soft_pool_uint8(pixels, kernel, stride, std=std, alpha=alpha, beta=beta, ceil_mode=ceil_mode)


def _pooled_length(size: int, kernel: int, stride: int, ceil_mode: bool) -> int:
    """Max pooling's output length without padding (a partial last window with ``ceil_mode``)."""
    span = size - kernel
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    count = -(-span // stride) + 1
    return count - 1 if (count - 1) * stride >= size else count


def soft_pool_uint8(
    pixels: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int] | None = None,
    *,
    std: Sequence[float],
    alpha: bool = False,
    beta: float = 1.0,
    ceil_mode: bool = False,
    threads: int | None = None,
) -> np.ndarray:
    """SoftPool of 8-bit pixels normalised per channel by ``std``, back to 8-bit pixels.

    The result equals normalising ``x = (p / 255 - mean_c) / std_c`` (any mean), pooling with
    SoftPool and mapping back with rounding, to within one level where float32 and float64
    round a value near .5 differently.

    Args:
        pixels: uint8 samples ``(H, W)``, ``(H, W, C)`` (an image) or ``(T, H, W, C)`` (frames).
        kernel: window ``(KH, KW)`` for an image, ``(KT, KH, KW)`` for frames.
        stride: step, same length as ``kernel``; defaults to ``kernel``.
        std: normalisation std of each colour channel (one per channel, alpha excluded).
        alpha: the last channel is alpha, and is average-pooled.
        beta: SoftPool's sharpness, finite and >= 0 (0 = average pooling).
        ceil_mode: keep a last, partial window (it pools the pixels that exist).
        threads: worker threads; defaults to the CPUs this process may use.

    Returns:
        uint8 pixels of the input's layout with max pooling's output sizes.

    Raises:
        RuntimeError: Numba is not installed.
        TypeError: pixels that are not uint8.
        ValueError: inconsistent shapes or arguments, or a kernel larger than the input.
    """
    if numba is None:
        raise RuntimeError("the 8-bit engine needs Numba (pip install numba)")
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise TypeError(f"expected a uint8 numpy array, got {getattr(pixels, 'dtype', type(pixels).__name__)}")
    if pixels.ndim not in (2, 3, 4):
        raise ValueError(f"expected (H, W), (H, W, C) or (T, H, W, C) pixels, got shape {pixels.shape}")
    layout = pixels[..., None] if pixels.ndim == 2 else pixels  # (H, W, C) or (T, H, W, C)
    frames = layout if layout.ndim == 4 else layout[None]  # (T, H, W, C)
    rank = 3 if pixels.ndim == 4 else 2
    kernel = tuple(int(k) for k in kernel)
    stride = kernel if stride is None else tuple(int(s) for s in stride)
    if len(kernel) != rank or len(stride) != rank or min(*kernel, *stride) < 1:
        raise ValueError(f"expected {rank} positive kernel and stride sizes, got {kernel} and {stride}")
    channels = frames.shape[-1]
    if len(std) + int(alpha) != channels or min(std) <= 0:
        raise ValueError(f"expected {channels - int(alpha)} positive std values for {channels} channels, got {std}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    kernel3 = (1,) * (3 - rank) + kernel  # (KT, KH, KW)
    stride3 = (1,) * (3 - rank) + stride
    sizes = frames.shape[:3]
    out_sizes = tuple(_pooled_length(n, k, s, ceil_mode) for n, k, s in zip(sizes, kernel3, stride3))
    if 0 in out_sizes:
        raise ValueError(f"kernel {kernel} is larger than the input {layout.shape[:rank]}")

    # Exponent per channel: beta * x changes by a per unit of p. Alpha is averaged (a = 0).
    rates = [beta / (255.0 * s) for s in std] + [0.0] * int(alpha)
    source = np.ascontiguousarray(frames).reshape(*sizes[:2], -1)  # (T, H, W * C)
    out = np.empty((out_sizes[0], out_sizes[1], out_sizes[2] * channels), np.uint8)  # (T', H', W' * C)
    threads = threads or _usable_cpus()

    # Windows that lie wholly inside the input: all of them unless ceil_mode adds partial ones.
    full = tuple(min(o, (n - k) // s + 1) for o, n, k, s in zip(out_sizes, sizes, kernel3, stride3))
    fast = max(rates) * 255.0 <= _MAX_WEIGHT_EXPONENT and kernel3[2] <= _MAX_SEPARABLE_WIDTH
    boxes: list[tuple[int, int, int, int, int, int]] = []  # (t0, t1, y0, y1, x0, x1) for the general kernel
    if fast:
        squarings = max(0, math.ceil(math.log2(max(rates) * 255.0 / _SERIES_RANGE))) if max(rates) > 0 else 0
        series_rates = tuple(np.float32(r / 2.0**squarings) for r in rates)
        rate_row = np.tile(np.array(series_rates, np.float32), sizes[2])  # (W * C,)
        make_kernel = _small_window_kernel if math.prod(kernel3) * channels <= _MAX_FUSED_VALUES else _separable_kernel
        pool = make_kernel(channels, kernel3, stride3, squarings)
        arguments = (source, series_rates, rate_row, out, full[1], full[2])
        _run_rows(pool, full[0] * full[1], threads, full[2] * channels, arguments)
        # What ceil_mode adds: the last frames, then the last rows, then the last columns.
        boxes = [
            (full[0], out_sizes[0], 0, out_sizes[1], 0, out_sizes[2]),
            (0, full[0], full[1], out_sizes[1], 0, out_sizes[2]),
            (0, full[0], 0, full[1], full[2], out_sizes[2]),
        ]
    else:
        boxes = [(0, out_sizes[0], 0, out_sizes[1], 0, out_sizes[2])]
    decay = np.exp(-np.outer(rates, np.arange(256.0))).astype(np.float32)  # (C, 256): exp(-a_c * d)
    for t0, t1, y0, y1, x0, x1 in boxes:
        if t1 > t0 and y1 > y0 and x1 > x0:
            arguments = (source, channels, decay, *kernel3, *stride3, out, t0, y0, x0, y1 - y0, x1)
            _run_rows(_any_window_kernel(), (t1 - t0) * (y1 - y0), threads, (x1 - x0) * channels, arguments)

    result = out.reshape(*out_sizes, channels)
    if rank == 2:
        result = result[0]
    return result[..., 0] if pixels.ndim == 2 else result


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _run_rows(kernel: Callable, rows: int, threads: int, row_values: int, arguments: tuple) -> None:
    """Call ``kernel(*arguments, first_row, end_row)`` on contiguous slices of ``rows`` in parallel."""
    threads = max(1, min(threads, rows, rows * row_values // _MIN_VALUES_PER_THREAD))
    # A few slices per thread, taken in turn: a thread that the OS runs less (other processes)
    # takes fewer slices instead of holding up the call.
    slices = 1 if threads == 1 else threads * _SLICES_PER_THREAD
    bounds = [rows * i // slices for i in range(slices + 1)]
    next_slice = itertools.count()  # next() on it is atomic under the GIL
    failures: list[BaseException] = []

    def work() -> None:
        try:
            index = next(next_slice)
            while index < slices:
                kernel(*arguments, bounds[index], bounds[index + 1])
                index = next(next_slice)
        except BaseException as error:  # re-raised in the calling thread below
            failures.append(error)

    workers = [threading.Thread(target=work) for _ in range(threads - 1)]
    for worker in workers:
        worker.start()
    work()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]


def _series_weight(s, squarings: int):  # pragma: no cover - compiled by Numba
    """exp(s * 2**squarings) for s in [-_SERIES_RANGE, 0]: a degree-6 series, then squarings."""
    c1, c2, c3 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24)
    c4, c5 = np.float32(1 / 120), np.float32(1 / 720)
    e = np.float32(1.0) + s * (np.float32(1.0) + s * (c1 + s * (c2 + s * (c3 + s * (c4 + s * c5)))))
    for _ in range(squarings):
        e = e * e
    return e


if numba is not None:
    _series_weight = numba.njit(inline="always", fastmath=_FASTMATH)(_series_weight)


@functools.lru_cache(maxsize=None)
def _small_window_kernel(
    channels: int, kernel: tuple[int, int, int], stride: tuple[int, int, int], squarings: int
) -> Callable:
    """Whole windows, one output value at a time, for windows of at most `_MAX_FUSED_VALUES` samples.

    Compiled for these constants: the window and channel loops unroll and the compiler
    vectorises across the output row. (Numba freezes the closure's variables into the code and
    keys its disk cache on them.) Larger bodies are not unrolled, and then nothing vectorises.
    """
    kt, kh, kw = kernel
    st, sh, sw = stride

    @numba.njit(nogil=True, fastmath=_FASTMATH, error_model="numpy", cache=True)
    def pool_small_windows(source, rates, rate_row, out, rows_out, columns_out, first_row, end_row):
        # `rates` is a tuple, not an array: the compiler then knows that writes to `out`
        # cannot change them. error_model="numpy" drops the division-by-zero check (the total
        # weight is >= 1 sample's weight > 0) that would stop vectorisation.
        white = np.float32(255.0)
        for row in range(first_row, end_row):
            ot = row // rows_out
            oy = row - ot * rows_out
            for ox in range(columns_out):
                for c in range(channels):
                    rate = rates[c]
                    total = np.float32(0.0)
                    weighted = np.float32(0.0)
                    for dt in range(kt):
                        for dy in range(kh):
                            for dx in range(kw):
                                p = np.float32(source[st * ot + dt, sh * oy + dy, (sw * ox + dx) * channels + c])
                                w = _series_weight(rate * (p - white), squarings)
                                total += w
                                weighted += w * p
                    out[ot, oy, ox * channels + c] = np.uint8(np.rint(weighted / total))

    return pool_small_windows


@functools.lru_cache(maxsize=None)
def _separable_kernel(
    channels: int, kernel: tuple[int, int, int], stride: tuple[int, int, int], squarings: int
) -> Callable:
    """Whole windows of any size, in two passes per output row.

    A pixel's weight does not depend on its window, so the first pass sums the weights and
    weighted pixels of the window's rows (and frames) column by column, over the flat
    interleaved row, where every loop is contiguous and vectorises whatever the channel count;
    the second sums ``KW`` columns per output value and divides.
    """
    kt, kh, kw = kernel
    st, sh, sw = stride

    @numba.njit(nogil=True, fastmath=_FASTMATH, error_model="numpy", cache=True)
    def pool_separable(source, rates, rate_row, out, rows_out, columns_out, first_row, end_row):
        white = np.float32(255.0)
        values = (sw * (columns_out - 1) + kw) * channels
        total = np.empty(values, np.float32)  # per input column and channel
        weighted = np.empty(values, np.float32)
        for row in range(first_row, end_row):
            ot = row // rows_out
            oy = row - ot * rows_out
            for window_row in range(kt * kh):
                line = source[st * ot + window_row // kh, sh * oy + window_row % kh]
                if window_row == 0:
                    for i in range(values):
                        p = np.float32(line[i])
                        w = _series_weight(rate_row[i] * (p - white), squarings)
                        total[i] = w
                        weighted[i] = w * p
                else:
                    for i in range(values):
                        p = np.float32(line[i])
                        w = _series_weight(rate_row[i] * (p - white), squarings)
                        total[i] += w
                        weighted[i] += w * p
            line_out = out[ot, oy]
            for ox in range(columns_out):
                for c in range(channels):
                    column_total = np.float32(0.0)
                    column_weighted = np.float32(0.0)
                    for dx in range(kw):
                        column_total += total[(sw * ox + dx) * channels + c]
                        column_weighted += weighted[(sw * ox + dx) * channels + c]
                    line_out[ox * channels + c] = np.uint8(np.rint(column_weighted / column_total))

    return pool_separable


@functools.lru_cache(maxsize=None)
def _any_window_kernel() -> Callable:
    """The general kernel: any window, clipped to the input, with the window maximum subtracted."""

    @numba.njit(nogil=True, error_model="numpy", cache=True)
    def pool_any_windows(
        source, channels, decay, kt, kh, kw, st, sh, sw, out, t0, y0, x0, rows, x1, first_row, end_row
    ):
        frames, height, values = source.shape
        width = values // channels
        for row in range(first_row, end_row):
            ot = t0 + row // rows
            oy = y0 + row % rows
            ta, tb = st * ot, min(st * ot + kt, frames)
            ya, yb = sh * oy, min(sh * oy + kh, height)
            for ox in range(x0, x1):
                xa, xb = sw * ox, min(sw * ox + kw, width)
                for c in range(channels):
                    top = 0
                    for t in range(ta, tb):
                        for y in range(ya, yb):
                            for x in range(xa, xb):
                                top = max(top, source[t, y, x * channels + c])
                    total = np.float32(0.0)
                    weighted = np.float32(0.0)
                    for t in range(ta, tb):
                        for y in range(ya, yb):
                            for x in range(xa, xb):
                                p = source[t, y, x * channels + c]
                                w = decay[c, top - p]
                                total += w
                                weighted += w * np.float32(p)
                    out[ot, oy, ox * channels + c] = np.uint8(np.rint(weighted / total))

    return pool_any_windows
