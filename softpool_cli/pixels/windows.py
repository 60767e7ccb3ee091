"""Pooling windows along one axis of a picture or a clip.

Every geometry the commands offer comes down to a list of windows per axis, each a range
``[start, end)`` of pixels (or frames): max pooling's windows for a kernel, stride and
ceil_mode (`softpool._geometry.window_bounds`, the formula every engine shares), adaptive
pooling's windows for a target size (`softpool._geometry.adaptive_bounds`), or those of a
picture stored flipped, counted from its far end. The kernels take any such lists.
"""

from __future__ import annotations

import array
import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from softpool._geometry import adaptive_bounds, window_bounds


@dataclass(frozen=True)
class AxisWindows:
    """Windows ``[starts[i], ends[i])`` along an axis of ``length`` samples; none is empty."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    length: int

    @classmethod
    def regular(cls, length: int, kernel: int, stride: int, ceil_mode: bool = False) -> AxisWindows:
        """Max pooling's windows (no padding): a last, partial window only with ``ceil_mode``."""
        return cls.from_bounds(window_bounds(length, kernel, stride, 0, ceil_mode), length)

    @classmethod
    def adaptive(cls, length: int, output: int) -> AxisWindows:
        """Adaptive pooling's windows from ``length`` samples to ``output``."""
        return cls.from_bounds(adaptive_bounds(length, output), length)

    @classmethod
    def from_bounds(cls, bounds: Sequence[tuple[int, int]], length: int) -> AxisWindows:
        return cls(tuple(start for start, _ in bounds), tuple(end for _, end in bounds), length)

    @property
    def count(self) -> int:
        return len(self.starts)

    def select(self, first: int, end: int) -> AxisWindows:
        """Windows ``first`` to ``end`` (exclusive) of this list."""
        return AxisWindows(self.starts[first:end], self.ends[first:end], self.length)

    def shifted(self, offset: int, length: int) -> AxisWindows:
        """The same windows counted from sample ``offset``, in an excerpt of ``length`` samples."""
        return AxisWindows(tuple(s - offset for s in self.starts), tuple(e - offset for e in self.ends), length)

    def reversed(self) -> AxisWindows:
        """The windows as seen along the axis read backwards (a picture stored flipped)."""
        return AxisWindows(
            tuple(self.length - e for e in reversed(self.ends)),
            tuple(self.length - s for s in reversed(self.starts)),
            self.length,
        )

    @functools.cached_property
    def regular_form(self) -> tuple[int, int, int] | None:
        """``(kernel, stride, whole windows)`` when the windows start at 0 every ``stride``
        samples and span ``kernel`` samples, but for ceil_mode's shorter trailing ones.

        (Asked at every strip of a picture: the checks run over the tuples at C speed.)"""
        starts = self.starts
        if not starts or starts[0] != 0:
            return None
        kernel = self.ends[0]
        stride = starts[1] if len(starts) > 1 else kernel
        if stride < 1 or starts != tuple(range(0, stride * len(starts), stride)):
            return None
        sizes = list(map(operator.sub, self.ends, starts))
        whole = sizes.count(kernel)
        if sizes[:whole] != [kernel] * whole or any(size >= kernel for size in sizes[whole:]):
            return None
        return kernel, stride, whole

    def bounds_arrays(self) -> tuple[array.array, array.array]:
        """Starts and ends as int64 arrays, for the kernels."""
        return array.array("q", self.starts), array.array("q", self.ends)


SINGLE = AxisWindows((0,), (1,), 1)  # one window over an axis of one sample (a still's frames)
