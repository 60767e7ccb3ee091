"""``softpool downsample``: one image in, its pooled version (and a comparison) out.

Only Click and the standard library are imported at module level, so that
``softpool downsample --help`` answers at once; NumPy, Pillow, OpenCV and
PyTorch are imported when the command runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from softpool_cli.errors import MediaError, report_errors

if TYPE_CHECKING:
    import numpy as np

DEFAULT_FACTOR = 2


class WindowType(click.ParamType):
    """A pooling window or stride: ``K`` (square) or ``KHxKW`` (height x width)."""

    name = "K|KHxKW"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().lower().replace("×", "x").split("x")
        if len(parts) not in (1, 2) or not all(part.strip().isdigit() for part in parts):
            self.fail(f"{value!r} is not K or KHxKW (for example 3 or 2x3)", param, ctx)
        sizes = tuple(int(part) for part in parts)
        if min(sizes) < 1:
            self.fail(f"{value!r}: sizes must be at least 1", param, ctx)
        return (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])


WINDOW = WindowType()


def resolve_window(
    factor: int | None, kernel: tuple[int, int] | None, stride: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Kernel and stride from ``--factor`` or ``--kernel``/``--stride``.

    Raises:
        click.UsageError: ``--factor`` together with ``--kernel`` or ``--stride``.
    """
    if factor is not None and (kernel is not None or stride is not None):
        raise click.UsageError("--factor cannot be combined with --kernel or --stride")
    if kernel is None:
        if stride is not None:
            raise click.UsageError("--stride needs --kernel")
        size = DEFAULT_FACTOR if factor is None else factor
        return (size, size), (size, size)
    return kernel, kernel if stride is None else stride


@dataclass
class PooledImage:
    """One image pooled with several methods.

    Attributes:
        results: Method -> pooled pixels (same dtype and channels as the input), in the
            order the methods were given.
        comparison: ``(H, W, 3)`` uint8 RGB: the original, then each result in that order,
            labelled; None when not asked for.
        seconds: Method -> time its pooling took.
    """

    results: dict[str, np.ndarray]
    comparison: np.ndarray | None
    seconds: dict[str, float]


def pool_image(
    pixels: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    methods: Sequence[str],
    *,
    beta: float = 1.0,
    ceil_mode: bool = False,
    device: str = "cpu",
    compare: bool = True,
) -> PooledImage:
    """Pool a decoded image with each of ``methods`` and, with ``compare``, build the comparison.

    The steps of ``softpool downsample``, shared with ``softpool gallery`` so that both
    write the same pixels.

    Args:
        pixels: ``(H, W)`` or ``(H, W, C)`` uint8/uint16, as :func:`~softpool_cli.media.images.read_image` gives.
        kernel: Pooling window (height, width).
        stride: Step (height, width).
        methods: "soft", "max" and/or "avg", in panel order.
        beta: SoftPool's sharpness.
        ceil_mode: Keep a last, partial row and column of windows.
        device: "cpu" or "cuda" (already resolved).
        compare: Also compose the labelled side-by-side comparison.
    """
    from softpool_cli.pixels.pool import pool_array

    results, seconds = {}, {}
    for method in methods:
        started = time.perf_counter()
        results[method] = pool_array(pixels, kernel, stride, method=method, beta=beta, ceil_mode=ceil_mode, device=device)
        seconds[method] = time.perf_counter() - started
    comparison = None
    if compare:
        from softpool_cli.media.compare import ComparisonLayout, comparison_labels

        layout = ComparisonLayout(pixels.shape[0], pixels.shape[1], comparison_labels(methods, beta))
        comparison = layout.compose([pixels, *results.values()])
    return PooledImage(results, comparison, seconds)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"  # width x height, as image viewers say it


def _window(sizes: tuple[int, int]) -> str:
    return f"{sizes[0]}x{sizes[1]}"


@click.command()
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--factor", type=click.IntRange(min=1), default=None,
    help=f"Pool NxN windows with stride N, dividing width and height by N.  [default: {DEFAULT_FACTOR}]",
)
@click.option(
    "--kernel", type=WINDOW, metavar="K|KHxKW", default=None, help="Pooling window K or KHxKW, instead of --factor."
)
@click.option(
    "--stride", type=WINDOW, metavar="S|SHxSW", default=None,
    help="Step between windows, S or SHxSW.  [default: the kernel]",
)
@click.option(
    "--method", type=click.Choice(["soft", "max", "avg"]), default="soft", show_default=True,
    help="SoftPool, max pooling or average pooling.",
)
@click.option(
    "--beta", type=click.FloatRange(min=0), default=1.0, show_default=True,
    help="SoftPool sharpness: 0 is average pooling, larger values tend to max pooling.",
)
@click.option(
    "--ceil", is_flag=True,
    help="Keep the last, partial row and column of windows (pooled over the pixels there) "
    "instead of dropping them, as max pooling's ceil_mode does.",
)
@click.option(
    "--compare", "compare_path", type=click.Path(path_type=Path), default=None,
    help="Also write an image comparing the original, SoftPool, max and avg pooling side by side.",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    help="Where to pool: auto uses a CUDA GPU when there is one.",
)
@click.option(
    # The same default as images.DEFAULT_MAX_PIXELS, written out so that --help imports no NumPy.
    "--max-pixels", type=click.IntRange(min=0), default=200_000_000, show_default=True,
    envvar="SOFTPOOL_MAX_PIXELS", show_envvar=True,
    help="Refuse larger images before decoding them (a guard against decompression bombs); 0 = no limit.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT (and the --compare file) if they exist.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def downsample(
    input_path: Path,
    output_path: Path,
    factor: int | None,
    kernel: tuple[int, int] | None,
    stride: tuple[int, int] | None,
    method: str,
    beta: float,
    ceil: bool,
    compare_path: Path | None,
    device: str,
    max_pixels: int,
    overwrite: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """Downsample the image IN into OUT (JPEG, PNG, WebP, TIFF or BMP, from OUT's extension).

    Pixels are pooled the way an ImageNet CNN sees them: each channel is
    normalised with torchvision's ImageNet mean and std, pooled, and mapped back
    with rounding. 16-bit PNG/TIFF stay 16-bit, gray stays gray, alpha is kept
    (and averaged), and the EXIF orientation is applied.

    \b
    Examples:
      softpool downsample photo.jpg small.jpg
      softpool downsample photo.jpg small.png --factor 4 --compare cmp.png
      softpool downsample scan.tif half.tif --kernel 3 --stride 2 --method max
    """
    started = time.perf_counter()
    if not math.isfinite(beta):
        raise click.BadParameter("must be finite", param_hint="'--beta'")
    kernel, stride = resolve_window(factor, kernel, stride)

    with report_errors(debug):
        from softpool_cli.media.files import check_job_paths, write_files_atomically
        from softpool_cli.media.images import IMAGE_EXTENSIONS, encode_image, read_image
        from softpool_cli.pixels.pool import pooled_shape, resolve_device

        check_job_paths(input_path, output_path, compare_path, extensions=IMAGE_EXTENSIONS, overwrite=overwrite)
        device = resolve_device(device)

        image = read_image(input_path, max_pixels=max_pixels)
        height, width = image.pixels.shape[:2]
        if 0 in pooled_shape((height, width), kernel, stride, ceil):
            raise MediaError(
                input_path,
                f"image is {width}x{height} pixels, smaller than the {_window(kernel)} window "
                "(use a smaller --factor or --kernel)",
            )

        methods = ["soft", "max", "avg"] if compare_path is not None else [method]
        pooled = pool_image(
            image.pixels, kernel, stride, methods, beta=beta, ceil_mode=ceil, device=device,
            compare=compare_path is not None,
        )
        results, pooling_seconds = pooled.results, pooled.seconds[method]

        contents = {}
        contents[output_path], notes = encode_image(
            results[method], output_path.suffix, icc_profile=image.icc_profile
        )
        messages = [f"{output_path}: {note}" for note in notes]
        if compare_path is not None:
            contents[compare_path], notes = encode_image(pooled.comparison, compare_path.suffix)
            messages += [f"{compare_path}: {note}" for note in notes]
        write_files_atomically(contents, overwrite=overwrite)

    if not quiet:
        for message in messages:
            click.echo(f"Note: {message}", err=True)
        method_name = {"soft": f"SoftPool (beta {beta:g})", "max": "max pooling", "avg": "average pooling"}[method]
        click.echo(
            f"{input_path} {_size(image.pixels.shape)} -> {output_path} {_size(results[method].shape)}: "
            f"{method_name}, kernel {_window(kernel)}, stride {_window(stride)}, on {device}; "
            f"{time.perf_counter() - started:.2f} s (pooling {pooling_seconds:.2f} s)"
        )
        if compare_path is not None:
            click.echo(f"comparison -> {compare_path}")
