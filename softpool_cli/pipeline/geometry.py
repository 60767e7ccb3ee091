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


@dataclass(frozen=True)
class TimeGeometry:
    """How to pool in time: ``kernel`` frames every ``stride`` frames, or to ``fps``.

    A last window with fewer frames pools the frames there are (max pooling's ceil_mode), so
    a clip keeps its length. With ``fps``, output frame k pools the input frames shown from
    k / fps to (k + 1) / fps seconds after the first: a rate the input's does not divide gets
    windows of different lengths (time's adaptive windows), and variable frame rates are
    followed as they are.
    """

    kernel: int = DEFAULT_FACTOR
    stride: int | None = None
    fps: float | None = None

    def describe(self) -> str:
        if self.fps is not None:
            return f"to {self.fps:g} fps"
        stride = self.stride or self.kernel
        return f"{self.kernel} frames" + (f" every {stride}" if stride != self.kernel else "")


class TimeWindows:
    """Windows of frames [first, end) as the frames of a clip arrive, for a `TimeGeometry`."""

    def __init__(self, geometry: TimeGeometry, time_base) -> None:
        self.geometry = geometry
        self._time_base = time_base
        self._next = 0  # the next window's index
        self._frames = 0
        self._starts: list[int] = []  # frame start times (fps windows only)
        self._origin: int | None = None
        self._consumed = 0  # frames already in a window (fps windows only)

    def add(self, starts) -> list[tuple[int, int]]:
        """Take the next frames' start times; return the windows complete so far."""
        if self.geometry.fps is None:
            self._frames += len(starts)
            return self._regular(final=False)
        for start in starts:
            if self._origin is None:
                self._origin = int(start)
            self._starts.append(int(start))
        self._frames += len(starts)
        return self._by_time(final=False)

    def finish(self) -> list[tuple[int, int]]:
        """The windows left once every frame has arrived."""
        return self._regular(final=True) if self.geometry.fps is None else self._by_time(final=True)

    def _regular(self, final: bool) -> list[tuple[int, int]]:
        kernel, stride = self.geometry.kernel, self.geometry.stride or self.geometry.kernel
        windows = []
        while True:
            first = self._next * stride
            end = first + kernel
            # A last, shorter window as max pooling's ceil_mode has it: one that starts in the
            # clip and takes frames the window before it left out.
            partial = final and first < self._frames and (self._next == 0 or first - stride + kernel < self._frames)
            if end <= self._frames or partial:
                windows.append((first, min(end, self._frames)))
                self._next += 1
            else:
                return windows

    def _by_time(self, final: bool) -> list[tuple[int, int]]:
        """Windows of frames whose start falls in [k / fps, (k + 1) / fps), skipping empty ones."""
        windows = []
        period = 1 / (self.geometry.fps * float(self._time_base))  # output frame length, in ticks
        first = self._consumed
        while first < self._frames:
            slot = int((self._starts[first] - self._origin) // period)
            end = first
            while end < self._frames and int((self._starts[end] - self._origin) // period) == slot:
                end += 1
            if end == self._frames and not final:
                break  # the window may still grow
            windows.append((first, end))
            first = end
        self._consumed = first
        return windows
