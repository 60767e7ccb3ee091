"""``softpool downsample``: images in, their pooled versions (and a comparison) out.

Only Click and the standard library are imported at module level, so that ``--help`` answers
at once; the work is :mod:`softpool_cli.pipeline.image_job`'s.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from softpool_cli.errors import report_errors, run_tasks
from softpool_cli.options import (
    WindowType,
    common_options,
    method_name,
    pooling_options,
    size_options,
    spatial_geometry,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")  # as media.image_write's


def _format_suffix(value: str | None) -> str | None:
    if value is None:
        return None
    suffix = "." + value.lower().lstrip(".")
    if suffix not in IMAGE_SUFFIXES:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(s[1:] for s in IMAGE_SUFFIXES)}", param_hint="'--format'")
    return suffix


@click.command()
@click.argument("arguments", metavar="IN... [OUT]", nargs=-1, required=True)
@click.option("--output-dir", "-o", metavar="DIR", default=None, help="Write every result into DIR (created if missing), under its input's name.")
@click.option("--recursive", "-r", is_flag=True, help="Process the images in folders given as IN, and their subfolders.")
@click.option("--factor", type=click.IntRange(min=1), default=None, help="Pool NxN windows with stride N, dividing width and height by N.  [default: 2]")
@click.option("--kernel", type=WindowType(), default=None, help="Pooling window K (K x K) or KHxKW, instead of --factor.")
@click.option("--stride", type=WindowType(), default=None, help="Step between windows, S or SHxSW.  [default: the kernel]")
@click.option("--ceil", is_flag=True, help="Keep the last, partial row and column of windows (pooled over the pixels there) instead of dropping them, as max pooling's ceil_mode does.")
@size_options
@pooling_options
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG and WebP quality.")
@click.option("--strip", is_flag=True, help="Write no metadata (EXIF, XMP, ICC profile). By default they are kept, the orientation reset (the pixels are written upright) and the DPI scaled so the print size stays the same.")
@click.option("--format", "output_format", default=None, metavar="EXT", help="Output format (jpg, png, webp, tif, bmp) instead of the one OUT's extension or IN's format says; needed for OUT '-' to differ from IN's.")
@click.option("--compare", "compare_path", type=click.Path(path_type=Path), default=None, help="Also write an image comparing the original, SoftPool, max and avg pooling side by side (one IN only).")
@click.option("--compare-width", type=click.IntRange(min=16), default=1024, show_default=True, help="Largest width of each comparison panel.")
@click.option(
    # The same default as media.image_read.DEFAULT_MAX_PIXELS, written out so that --help imports nothing.
    "--max-pixels", type=click.IntRange(min=0), default=200_000_000, show_default=True,
    envvar="SOFTPOOL_MAX_PIXELS", show_envvar=True,
    help="Refuse larger images before decoding them (a guard against decompression bombs); 0 = no limit.",
)  # fmt: skip
@common_options
def downsample(arguments, output_dir, recursive, factor, kernel, stride, ceil, target_width, target_height,
               target_size, target_scale, method, beta, device, quality, strip, output_format, compare_path,
               compare_width, max_pixels, overwrite, quiet, debug) -> None:  # fmt: skip
    """Downsample images with SoftPool (or max or average pooling).

    \b
    softpool downsample IN OUT         one image; OUT's extension picks the format
    softpool downsample IN             OUT is IN_softpool.EXT beside IN
    softpool downsample IN... -o DIR   every IN into DIR (also: a folder as the last argument)
    softpool downsample - - --format png < in.jpg > out.png

    Pixels are pooled the way an ImageNet CNN sees them: each channel is normalised with
    torchvision's ImageNet mean and std, pooled, and mapped back with rounding. 16-bit
    PNG/TIFF stay 16-bit, gray stays gray, alpha is kept (and averaged), the EXIF
    orientation is applied, and metadata is kept (see --strip). A file that fails is
    reported by name and the others go on; the exit code is then 1.

    \b
    Windows: --factor N pools NxN (default 2); --kernel K or KHxKW with --stride; or a
    target size: --width, --height, --size WxH or --scale 50%, which pool tiles when the
    size divides the input's, adaptive windows otherwise.

    \b
    Examples:
      softpool downsample photo.jpg small.jpg --compare cmp.png
      softpool downsample big.jpg --width 800 --quality 90
      softpool downsample shots/*.png -o small/ --factor 4
      softpool downsample scan.tif half.tif --kernel 3 --stride 2 --method max
    """
    started = time.perf_counter()
    if not math.isfinite(beta):
        raise click.BadParameter("must be finite", param_hint="'--beta'")
    geometry = spatial_geometry(factor, kernel, stride, ceil, target_width, target_height, target_size, target_scale)
    suffix = _format_suffix(output_format)

    with report_errors(debug):
        from softpool_cli.media.discovery import classify
        from softpool_cli.pipeline.image_job import ImageSettings, downsample_one
        from softpool_cli.pipeline.targets import create_folders, plan_tasks

        tasks = plan_tasks(
            arguments, output_dir, recursive=recursive,
            suffix_for=lambda source: suffix or (Path(source).suffix.lower() if Path(source).suffix.lower() in IMAGE_SUFFIXES else ".png"),
            wanted=lambda path: classify(path) == "image",
        )  # fmt: skip
        if compare_path is not None and len(tasks) > 1:
            raise click.UsageError("--compare writes one comparison: give one IN")
        if output_dir is not None:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
        create_folders(tasks)
        from softpool_cli.pixels.devices import resolve_device

        settings = ImageSettings(
            geometry=geometry, method=method, beta=beta, device=resolve_device(device), quality=quality, strip=strip,
            max_pixels=max_pixels, format=suffix, overwrite=overwrite,
            compare=str(compare_path) if compare_path else None, compare_width=compare_width,
        )  # fmt: skip

    def describe(outcome) -> str:
        (w, h), (ow, oh) = outcome.size_in, outcome.size_out
        return (
            f"{outcome.source} {w}x{h} -> {outcome.target} {ow}x{oh}: {method_name(method, beta)}, "
            f"{geometry.describe()}, on {settings.device}; pooling {outcome.pooling_seconds:.2f} s"
        )

    run_tasks(tasks, lambda task: downsample_one(task, settings), describe, quiet=quiet, debug=debug,
              compare_path=compare_path, started=started)  # fmt: skip
