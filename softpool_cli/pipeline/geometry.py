"""From the command line's window options to the pooling windows of one picture (or clip).

Two ways to say how much smaller:

- a window: ``--factor N`` (N x N, stride N), ``--kernel K|KHxKW`` with ``--stride``, and
  ``--ceil`` to keep a last, partial window (max pooling's windows with those arguments);
- a target size: ``--width W``, ``--height H``, ``--size WxH`` or ``--scale P%``. With one side
  given, the other follows the aspect ratio. A size that divides the input is the window of
  that factor; any other gets adaptive pooling's windows (``F.adaptive_avg_pool2d``'s: output
  i covers input [floor(i L / O), ceil((i + 1) L / O))), which differ in size by at most one
  pixel and may overlap by one. The output is still exactly SoftPool, over those windows.
"""

from __future__ import annotations

from dataclasses import dataclass

from softpool_cli.errors import SoftpoolError
from softpool_cli.pixels.windows import AxisWindows

DEFAULT_FACTOR = 2


@dataclass(frozen=True)
class SpatialGeometry:
    """How to pool height and width; every field left None takes the default factor.

    Attributes:
        kernel: (KH, KW) window.
        stride: (SH, SW) step; defaults to the kernel.
        ceil: keep a last, partial window along each axis.
        width, height: target size in pixels (either or both).
        scale: target size as a fraction of the input's (0.5 for 50%).
        even: round a size that follows the aspect ratio to an even number (H.264 needs it).
    """

    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    ceil: bool = False
    width: int | None = None
    height: int | None = None
    scale: float | None = None
    even: bool = False

    @property
    def is_target_size(self) -> bool:
        return self.width is not None or self.height is not None or self.scale is not None

    def describe(self) -> str:
        """The windows in words, for summary lines."""
        if self.is_target_size:
            return "adaptive windows to the target size"
        kernel = self.kernel or (DEFAULT_FACTOR, DEFAULT_FACTOR)
        stride = self.stride or kernel
        return f"kernel {kernel[0]}x{kernel[1]}, stride {stride[0]}x{stride[1]}"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a target size asks for, from an input of ``height`` x ``width``.

        Raises:
            SoftpoolError: a size larger than the input, or one that rounds to nothing.
        """
        if self.scale is not None:
            out_height, out_width = round(height * self.scale), round(width * self.scale)
        elif self.width is not None and self.height is not None:
            out_height, out_width = self.height, self.width
        elif self.width is not None:
            out_height, out_width = self._follow(height * self.width / width), self.width
        else:
            out_height, out_width = self.height, self._follow(width * self.height / height)
        if out_width > width or out_height > height:
            raise SoftpoolError(
                f"the target size {out_width}x{out_height} is larger than the input's {width}x{height}: "
                "SoftPool only makes pictures smaller"
            )
        if min(out_width, out_height) < 1:
            raise SoftpoolError(f"the target size {out_width}x{out_height} leaves no pixels")
        return out_height, out_width

    def _follow(self, exact: float) -> int:
        value = max(1, round(exact))
        if self.even and value % 2:
            value = value + 1 if value + 1 - exact <= exact - (value - 1) else value - 1
        return max(1, value)

    def windows(self, height: int, width: int) -> tuple[AxisWindows, AxisWindows]:
        """(rows, columns) windows for an upright input of ``height`` x ``width``.

        Raises:
            SoftpoolError: a window larger than the input, or a target size that cannot be met.
        """
        if self.is_target_size:
            out_height, out_width = self.output_size(height, width)
            return _axis(height, out_height), _axis(width, out_width)
        kernel = self.kernel or (DEFAULT_FACTOR, DEFAULT_FACTOR)
        stride = self.stride or kernel
        if kernel[0] > height or kernel[1] > width:
            raise SoftpoolError(
                f"is {width}x{height} pixels, smaller than the {kernel[0]}x{kernel[1]} window "
                "(use a smaller --factor or --kernel)"
            )
        return (
            AxisWindows.regular(height, kernel[0], stride[0], self.ceil),
            AxisWindows.regular(width, kernel[1], stride[1], self.ceil),
        )


def _axis(length: int, output: int) -> AxisWindows:
    """Windows from ``length`` to ``output``: tiles when it divides, else adaptive."""
    if length % output == 0:
        factor = length // output
        return AxisWindows.regular(length, factor, factor)
    return AxisWindows.adaptive(length, output)
