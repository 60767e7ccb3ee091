"""Pooling windows as plain integers: no PyTorch here.

The library's checks (`softpool._arguments`) and the command line's pixel engines both take
their window arithmetic from this module, so that every engine pools exactly the windows of
``max_pool`` (and of ``adaptive_avg_pool``) with the same arguments. It imports nothing beyond
the standard library, so the command line can use it without starting PyTorch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolGeometry:
    """The windows of one pooling call, per spatial dimension (rank 1, 2 or 3)."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.kernel_size)

    def lifted(self) -> PoolGeometry:
        """The same windows over three spatial dimensions: leading size-1 dimensions with a
        window of 1 (padding 0), as the engines that handle every rank alike see them."""
        missing = 3 - self.rank
        ones, zeros = (1,) * missing, (0,) * missing
        return PoolGeometry(
            ones + self.kernel_size,
            ones + self.stride,
            zeros + self.padding,
            ones + self.input_size,
            ones + self.output_size,
        )


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (bools excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def pooled_length(length: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output length of ``max_pool`` along one dimension: the same formula and ceil_mode rule.

    ``floor((length + 2 * padding - kernel) / stride) + 1``, with ceil instead of floor under
    ``ceil_mode``, where a last window may not start in the right padding. The result is 0
    when the kernel does not fit.
    """
    span = length + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1
    return max(out, 0)


def window_bounds(length: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> list[tuple[int, int]]:
    """``[start, end)`` of each ``max_pool`` window along one dimension, clipped to the input.

    Padded positions are not part of a window (max pooling's -inf padding).
    """
    starts = (index * stride - padding for index in range(pooled_length(length, kernel, stride, padding, ceil_mode)))
    return [(max(start, 0), min(start + kernel, length)) for start in starts]


def adaptive_bounds(length: int, output: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each window of adaptive pooling from ``length`` to ``output``:
    ``[floor(i * length / output), ceil((i + 1) * length / output))``, as
    ``F.adaptive_avg_pool*d`` takes them."""
    return [(index * length // output, -(-(index + 1) * length // output)) for index in range(output)]
