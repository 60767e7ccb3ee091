"""The commands' shared vocabulary: window sizes, the pooling options and the common flags.

Each command composes these decorators, so an option means the same, with the same help and
default, wherever it appears. Only Click is imported here: ``--help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable

import click

METHODS = ("soft", "max", "avg")
DEVICES = ("auto", "cpu", "cuda")
METHOD_NAMES = {"soft": "SoftPool", "max": "max pooling", "avg": "average pooling"}


class SquareWindow(tuple):
    """A window given as a single size K: (K, K). In time, ``softpool video`` pools K frames too."""


class WindowType(click.ParamType):
    """A window or stride: ``K`` (K x K pixels), ``KHxKW``, or with ``frames`` ``KTxKHxKW``."""

    def __init__(self, frames: bool = False) -> None:
        self.frames = frames
        self.name = "K|KHxKW|KTxKHxKW" if frames else "K|KHxKW"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().lower().replace("×", "x").split("x")
        allowed = (1, 2, 3) if self.frames else (1, 2)
        if len(parts) not in allowed or not all(part.strip().isdigit() for part in parts):
            example = "3, 2x3 or 1x2x2" if self.frames else "3 or 2x3"
            self.fail(f"{value!r} is not {self.name.replace('|', ', ')} (for example {example})", param, ctx)
        sizes = tuple(int(part) for part in parts)
        if min(sizes) < 1:
            self.fail(f"{value!r}: sizes must be at least 1", param, ctx)
        return SquareWindow((sizes[0], sizes[0])) if len(sizes) == 1 else sizes


def method_name(method: str, beta: float) -> str:
    """How a summary line names the pooling: "SoftPool (beta 1)", "max pooling", ..."""
    return f"SoftPool (beta {beta:g})" if method == "soft" else METHOD_NAMES[method]


def pooling_options(command: Callable) -> Callable:
    """--method, --beta and --device."""
    for option in reversed(
        (
            click.option(
                "--method", type=click.Choice(METHODS), default="soft", show_default=True,
                help="SoftPool, max pooling or average pooling.",
            ),
            click.option(
                "--beta", type=click.FloatRange(min=0), default=1.0, show_default=True,
                help="SoftPool sharpness: 0 is average pooling, larger values tend to max pooling.",
            ),
            device_option,
        )
    ):  # fmt: skip
        command = option(command)
    return command


device_option = click.option(
    "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
    help="Where to pool: auto uses a CUDA GPU when there is one.",
)  # fmt: skip


def common_options(command: Callable) -> Callable:
    """--overwrite, --quiet and --debug."""
    for option in reversed(
        (
            click.option("--overwrite", is_flag=True, help="Replace existing outputs."),
            click.option("--quiet", "-q", is_flag=True, help="No progress bar; print nothing but errors."),
            click.option("--debug", is_flag=True, help="Show the full traceback on errors."),
        )
    ):
        command = option(command)
    return command


class SizeType(click.ParamType):
    """A target size ``WxH`` in pixels."""

    name = "WxH"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().lower().replace("×", "x").split("x")
        if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
            self.fail(f"{value!r} is not WxH in pixels (for example 800x600)", param, ctx)
        return int(parts[0]), int(parts[1])


class ScaleType(click.ParamType):
    """A target size as a share of the input's: ``50%`` or ``0.5``."""

    name = "P%"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            scale = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            self.fail(f"{value!r} is not a percentage (for example 50%) or a fraction (0.5)", param, ctx)
        if not 0 < scale <= 1:
            self.fail(f"{value!r}: the scale must be above 0 and at most 100%", param, ctx)
        return scale


SIZE_HELP = (
    "A size that divides the input's pools tiles of that factor; any other pools adaptive "
    "windows (those of adaptive_avg_pool2d: sizes differing by a pixel, overlapping by at most one)."
)


def size_options(command: Callable) -> Callable:
    """--width, --height, --size and --scale: a target size instead of a window."""
    for option in reversed(
        (
            click.option("--width", "target_width", type=click.IntRange(min=1), default=None,
                         help="Output width in pixels; the height follows the aspect ratio. " + SIZE_HELP),
            click.option("--height", "target_height", type=click.IntRange(min=1), default=None,
                         help="Output height in pixels; the width follows the aspect ratio."),
            click.option("--size", "target_size", type=SizeType(), default=None, help="Output size WxH in pixels."),
            click.option("--scale", "target_scale", type=ScaleType(), default=None,
                         help="Output size as a share of the input's: 50% (or 0.5) halves width and height."),
        )
    ):  # fmt: skip
        command = option(command)
    return command


def spatial_geometry(
    factor: int | None,
    kernel: tuple[int, ...] | None,
    stride: tuple[int, ...] | None,
    ceil: bool,
    width: int | None,
    height: int | None,
    size: tuple[int, int] | None,
    scale: float | None,
    *,
    even: bool = False,
    pools_time: bool = False,
):
    """The `SpatialGeometry` of the window and size options (``pools_time``: a clip's frames
    are pooled, so a 1x1 window still does something).

    Raises:
        click.UsageError: options that contradict each other.
    """
    from softpool_cli.pipeline.geometry import SpatialGeometry

    sizes = [name for name, value in (("--width", width), ("--height", height), ("--size", size), ("--scale", scale))
             if value is not None]  # fmt: skip
    windows = [name for name, value in (("--factor", factor), ("--kernel", kernel), ("--stride", stride))
               if value is not None]  # fmt: skip
    if sizes and windows:
        raise click.UsageError(f"{sizes[0]} gives a target size: it cannot be combined with {windows[0]}")
    if size is not None and (width is not None or height is not None) or scale is not None and len(sizes) > 1:
        raise click.UsageError(f"{' and '.join(sizes)} say the size twice: give one of them")
    if factor is not None and (kernel is not None or stride is not None):
        raise click.UsageError("--factor cannot be combined with --kernel or --stride")
    if stride is not None and kernel is None:
        raise click.UsageError("--stride needs --kernel")
    if not sizes and (kernel or (factor, factor)) == (1, 1) and (stride is None or tuple(stride[-2:]) == (1, 1)):
        if not pools_time:
            raise click.UsageError("a 1x1 window pools nothing: give a larger --factor or --kernel, or a size")
    if size is not None:
        width, height = size
    if factor is not None:
        kernel = (factor, factor)
    spatial_kernel = tuple(kernel[-2:]) if kernel is not None else None
    spatial_stride = tuple(stride[-2:]) if stride is not None else None
    return SpatialGeometry(spatial_kernel, spatial_stride, ceil, width, height, scale, even)
