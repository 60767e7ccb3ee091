"""``softpool downsample``: one image in, its pooled version (and a comparison) out.

Only Click and the standard library are imported at module level, so that
``softpool downsample --help`` answers at once; NumPy, Pillow, OpenCV and
PyTorch are imported when the command runs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from softpool_cli.errors import MediaError, report_errors
from softpool_cli.options import WindowType, common_options, method_name, pooling_options

DEFAULT_FACTOR = 2


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
@pooling_options
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
    # The same default as images.DEFAULT_MAX_PIXELS, written out so that --help imports no NumPy.
    "--max-pixels", type=click.IntRange(min=0), default=200_000_000, show_default=True,
    envvar="SOFTPOOL_MAX_PIXELS", show_envvar=True,
    help="Refuse larger images before decoding them (a guard against decompression bombs); 0 = no limit.",
)
@common_options
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
        from softpool_cli.pipeline.image import pool_image

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
        click.echo(
            f"{input_path} {_size(image.pixels.shape)} -> {output_path} {_size(results[method].shape)}: "
            f"{method_name(method, beta)}, kernel {_window(kernel)}, stride {_window(stride)}, on {device}; "
            f"{time.perf_counter() - started:.2f} s (pooling {pooling_seconds:.2f} s)"
        )
        if compare_path is not None:
            click.echo(f"comparison -> {compare_path}")
