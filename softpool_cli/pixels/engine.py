"""SoftPool, max and average pooling of 8- and 16-bit pixels on the CPU, without PyTorch.

SoftPool of normalised pixels is a weighted mean of the raw ones. The pooling step normalises
each colour channel, ``x = (p / maxval - mean_c) / std_c``, pools and maps back:

- the weights ``softmax(beta * x)`` of a window depend on x only through ``beta * x``, and the
  weighted mean of an affine function of p is that function of the weighted mean of p, so the
  output is ``sum(w p) / sum(w)`` over the window's raw pixels, and the mean never matters;
- a pixel's weight relative to a white one, ``w_c(p) = exp(a_c (p - maxval))`` with
  ``a_c = beta / (maxval std_c)``, lies in (0, 1] and needs no window maximum while
  ``a_c maxval = beta / std_c`` keeps the darkest weight well inside the float range.

Average pooling is that with beta = 0 (every weight 1), max pooling takes window maxima of the
raw integers, and alpha channels are always averaged (coverage: SoftPool or max pooling would
fatten opaque shapes). `pool` picks the kernel (`kernels`, loaded by `native`):

- whole windows of one size and stride over 8-bit pixels, SoftPool or average, beta / std up to
  60: kernels compiled for that window, float32, a vectorised series for the weights;
- any other windows, 16-bit pixels, or beta / std up to 600: weights from float64 tables;
- beyond: each window's maximum subtracted first, float64;
- max pooling: window maxima, any windows.

ceil_mode's last, partial windows are the whole-window kernels' remainder: they go to the
any-window kernel, the rest to the fast one.

Pixels travel as `Samples`: an address and a (T, H, W, C) shape, so that a NumPy array, a
bytearray or a strip that libvips decoded all go in without a copy (and a still image needs
no NumPy at all).
"""

from __future__ import annotations

import array
import ctypes
import functools
import itertools
import math
import operator
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from softpool.cpu.threads import SLICES_PER_THREAD, run_rows, usable_cpus

from .native import kernel
from .windows import SINGLE, AxisWindows

# beta / std up to which 8-bit SoftPool uses float32 weights relative to white: they must not
# underflow float32 (about exp(-87)) even after summing a few of them and multiplying by 255.
FLOAT32_WEIGHT_REACH = 60.0
# The same for float64 (exp(-708)): beyond, windows subtract their maximum first.
FLOAT64_WEIGHT_REACH = 600.0
# The weight series is accurate to ~1e-8 relative for exponents down to -_SERIES_RANGE; larger
# ones are scaled down by a power of two and squared back.
_SERIES_RANGE = 0.25
# Samples (window size x channels) up to which the one-pass kernel's loops unroll and vectorise.
_MAX_FUSED_VALUES = 12
# Window widths up to which the separable kernel's column sums unroll; wider ones use the general kernel.
_MAX_SEPARABLE_WIDTH = 8
# Below this many output values a single thread is faster than starting more.
_MIN_VALUES_PER_THREAD = 65536
_MAXIMA = {"uint8": 255, "uint16": 65535}
_ITEM_SIZE = {"uint8": 1, "uint16": 2}

threads_budget: int | None = None  # threads one call may use (softpool_cli.cpu sets it); None: all


@dataclass(frozen=True)
class Samples:
    """(T, H, W, C) C-contiguous integer samples at ``address``, kept alive by ``owner``."""

    address: int
    shape: tuple[int, int, int, int]
    sample_type: str  # "uint8" or "uint16"
    owner: object = None

    @classmethod
    def of(cls, buffer: object, shape: Sequence[int], sample_type: str) -> Samples:
        """Samples in ``buffer``: a writable object with the buffer protocol (bytearray, a
        libvips region, ...), C-contiguous, ``shape`` (H, W, C) or (T, H, W, C)."""
        shape = tuple(shape) if len(shape) == 4 else (1, *shape)
        size = math.prod(shape) * _ITEM_SIZE[sample_type]
        view = (ctypes.c_char * size).from_buffer(buffer)
        return cls(ctypes.addressof(view), shape, sample_type, (buffer, view))

    @classmethod
    def empty(cls, shape: Sequence[int], sample_type: str) -> tuple[Samples, bytearray]:
        buffer = bytearray(math.prod(shape) * _ITEM_SIZE[sample_type])
        return cls.of(buffer, shape, sample_type), buffer

    @property
    def maxval(self) -> int:
        return _MAXIMA[self.sample_type]


def pool(
    source: Samples,
    windows: Sequence[AxisWindows],
    out: Samples,
    method: str,
    *,
    beta: float = 1.0,
    std: Sequence[float] = (),
    alpha: bool = False,
) -> None:
    """Pool ``source`` over the given windows of its spatial axes into ``out``.

    Args:
        source: The pixels, C <= 4.
        windows: One `AxisWindows` per spatial axis: (frames, rows, columns), or (rows, columns)
            for a still image (T = 1).
        out: (T', H', W', C) of the same sample type, T', H', W' the window counts.
        method: "soft", "max" or "avg".
        beta: SoftPool's sharpness, finite and >= 0.
        std: Normalisation std of each colour channel (alpha excluded); unused for max and avg.
        alpha: The last channel is alpha (always averaged).
    """
    axes = list(windows) if len(windows) == 3 else [SINGLE, *windows]
    channels = source.shape[3]
    colours = channels - int(alpha)
    if method == "max":
        _general(source, axes, out, "general_max", (colours,))
        return
    rates = [beta / (source.maxval * s) for s in std] if method == "soft" else [0.0] * colours
    rates += [0.0] * int(alpha)
    reach = max(rates) * source.maxval
    if reach > FLOAT64_WEIGHT_REACH:
        decay = _decay_table(tuple(rates), source.maxval)
        _general(source, axes, out, "max_relative_soft", (decay, source.maxval + 1))
        return
    boxes = [(0, 0, 0)]  # the first window along each axis of each box of windows left
    if source.sample_type == "uint8" and reach <= FLOAT32_WEIGHT_REACH:
        boxes = _whole_windows(source, axes, rates, out)
    if boxes:
        weight, weighted = _weight_tables(tuple(rates), source.maxval)
        for first in boxes:
            _general(source, axes, out, "general_soft", (weight, weighted, source.maxval + 1), first)


def _whole_windows(source: Samples, axes: list[AxisWindows], rates: list[float], out: Samples) -> list:
    """Pool the whole windows of one size and stride with the fast kernels.

    Returns:
        The boxes of windows left for the general kernel, each as its first window along
        every axis (it runs to the last): ceil_mode's partial windows, or everything where
        the windows are not regular.
    """
    regular = [along.regular_form for along in axes]
    if None in regular:
        return [(0, 0, 0)]
    kernel_size = tuple(k for k, _, _ in regular)
    stride = tuple(s for _, s, _ in regular)
    whole = tuple(w for _, _, w in regular)
    if kernel_size[2] > _MAX_SEPARABLE_WIDTH or 0 in whole:
        return [(0, 0, 0)]
    channels = source.shape[3]
    top = max(rates) * 255.0
    squarings = max(0, math.ceil(math.log2(top / _SERIES_RANGE))) if top > 0 else 0
    series = [rate / 2.0**squarings for rate in rates] + [0.0] * (4 - channels)
    name = "small_windows" if math.prod(kernel_size) * channels <= _MAX_FUSED_VALUES else "separable"
    compiled = kernel(name, "uint8", (channels, kernel_size, stride, squarings))
    frames, height, width, _ = source.shape
    arguments = (source.address, frames, height, width * channels, *series)
    arguments += (out.address, *out.shape[:3], whole[1], whole[2])
    _run(compiled, whole[0] * whole[1], whole[2] * channels, arguments, 3 * width * channels, "f")
    # What ceil_mode adds: the last frames; of the other frames, the last rows; of the rest,
    # the last columns.
    boxes = []
    if whole[0] < axes[0].count:
        boxes.append((whole[0], 0, 0))
    if whole[1] < axes[1].count:
        boxes.append((0, whole[1], 0))
    if whole[2] < axes[2].count:
        boxes.append((0, 0, whole[2]))
    return boxes


def _general(
    source: Samples, axes: list[AxisWindows], out: Samples, name: str, extra: tuple, first=(0, 0, 0)
) -> None:
    """Run an any-window kernel for the windows from ``first`` on along each axis, into the
    matching corner of ``out``."""
    box = [along.select(start, along.count) for along, start in zip(axes, first)]
    whole_output = first == (0, 0, 0)
    target = out if whole_output else Samples.empty((*(b.count for b in box), out.shape[3]), out.sample_type)[0]
    bounds = [along.bounds_arrays() for along in box]
    arguments = [source.address, *source.shape]
    for (starts, ends), along in zip(bounds, box):
        arguments += [starts.buffer_info()[0], ends.buffer_info()[0], along.count]
    for value in extra:
        arguments.append(value.buffer_info()[0] if isinstance(value, array.array) else value)
    arguments.append(target.address)
    compiled = kernel(name, source.sample_type)
    rows, row_values = target.shape[0] * target.shape[1], target.shape[2] * target.shape[3]
    _run(compiled, rows, row_values, tuple(arguments), 2 * source.shape[2] * source.shape[3], "d")
    if not whole_output:
        _paste(target, out, first)


def _paste(part: Samples, out: Samples, first: tuple[int, int, int]) -> None:
    """Copy ``part`` into ``out`` at window index ``first``, row by row."""
    item = _ITEM_SIZE[out.sample_type]
    frames, rows, columns, channels = part.shape
    row_bytes = columns * channels * item
    for t in range(frames):
        for y in range(rows):
            source = part.address + ((t * rows + y) * columns * channels) * item
            target_row = ((first[0] + t) * out.shape[1] + first[1] + y) * out.shape[2] + first[2]
            ctypes.memmove(out.address + target_row * out.shape[3] * item, source, row_bytes)


def _run(compiled, rows: int, row_values: int, arguments: tuple, scratch_values: int, scratch_type: str) -> None:
    """Run ``compiled`` over ``rows`` output rows in threads, each call with working memory of its own."""
    threads = threads_budget or usable_cpus()
    scratch = [array.array(scratch_type, [0]) * scratch_values for _ in range(threads * SLICES_PER_THREAD)]
    run_rows(
        compiled, rows, row_values, arguments, threads=threads, min_values_per_thread=_MIN_VALUES_PER_THREAD,
        slice_arguments=lambda index: (scratch[index].buffer_info()[0],),
    )  # fmt: skip


@functools.lru_cache(maxsize=8)
def _weight_tables(rates: tuple[float, ...], maxval: int) -> tuple[array.array, array.array]:
    """Per channel, w(p) = exp(rate (p - maxval)) and w(p) p for p = 0 .. maxval, float64.

    Cached (so read only): a picture pooled in strips asks for the same tables at each strip,
    and 16-bit pixels have 65536 levels.
    """
    if "numpy" in sys.modules:  # 65536 levels of 16-bit pixels: NumPy is faster, if it is loaded
        import numpy as np

        levels = np.arange(maxval + 1.0)
        weights = np.exp(np.multiply.outer(rates, levels - maxval))  # (C, levels)
        return array.array("d", weights.tobytes()), array.array("d", (weights * levels).tobytes())
    weights, weighted = array.array("d"), array.array("d")
    for rate in rates:
        if maxval < 4096:
            row = array.array("d", [math.exp(rate * (level - maxval)) for level in range(maxval + 1)])
        else:
            # 65536 levels: the weights as powers of exp(rate), at C speed (a Python loop holds
            # the GIL for tens of milliseconds while a decoder thread waits for it), restarted
            # from an exact value every 256 levels so that rounding cannot build up.
            step = math.exp(rate)
            row = array.array("d")
            for start in range(0, maxval + 1, 256):
                first = math.exp(rate * (start - maxval))
                row.extend(itertools.accumulate(itertools.repeat(step, min(255, maxval - start)), operator.mul, initial=first))
        weights.extend(row)
        weighted.extend(map(operator.mul, row, range(maxval + 1)))
    return weights, weighted


@functools.lru_cache(maxsize=8)
def _decay_table(rates: tuple[float, ...], maxval: int) -> array.array:
    """Per channel, exp(-rate p) for p = 0 .. maxval, float64 (cached as `_weight_tables`)."""
    return _table([[math.exp(-rate * level) for level in range(maxval + 1)] for rate in rates])


def _table(rows: Sequence[Sequence[float]]) -> array.array:
    table = array.array("d")
    for row in rows:
        table.extend(row)
    return table
