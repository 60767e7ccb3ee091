"""``softpool video``: pool a clip in time, height and width, streamed in chunks of frames.

Only Click and the standard library are imported at module level, so that
``softpool video --help`` answers at once; NumPy, PyAV and Pillow are imported
when the command runs, PyTorch only when it is needed (a GPU, or a pooling the
8-bit CPU engine does not cover).

The work is :mod:`softpool_cli.pipeline.clip`'s.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from softpool_cli.errors import report_errors
from softpool_cli.options import WindowType, common_options, method_name, pooling_options

DEFAULT_FACTOR = 2
DEFAULT_OUTPUT_SUFFIX = ".mp4"  # for inputs whose container is not an output format


def resolve_window(factor: int | None, time_factor: int | None, kernel: tuple[int, ...] | None) -> tuple[int, int, int]:
    """The (frames, height, width) window from ``--factor``, ``--time-factor`` and ``--kernel``.

    Raises:
        click.UsageError: ``--factor`` with ``--kernel``, or ``--time-factor`` with a
            three-part ``--kernel``.
    """
    if factor is not None and kernel is not None:
        raise click.UsageError("--factor cannot be combined with --kernel")
    if kernel is not None and len(kernel) == 3:
        if time_factor is not None:
            raise click.UsageError("--time-factor cannot be combined with a KTxKHxKW --kernel")
        return kernel  # type: ignore[return-value]
    spatial = kernel if kernel is not None else (factor or DEFAULT_FACTOR,) * 2
    frames = time_factor if time_factor is not None else (factor or DEFAULT_FACTOR)
    return (frames, *spatial)  # type: ignore[return-value]


def default_output(input_path: Path) -> Path:
    """``<stem>_softpool<ext>`` beside the input; MP4 for containers that are not output formats."""
    from softpool_cli.media.clip_write import OUTPUT_FORMATS

    suffix = input_path.suffix.lower()
    suffix = suffix if suffix in OUTPUT_FORMATS else DEFAULT_OUTPUT_SUFFIX
    return input_path.with_name(f"{input_path.stem}_softpool{suffix}")


def _window_text(window: tuple[int, ...]) -> str:
    return "x".join(str(size) for size in window)


@click.command()
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="[OUT]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--factor", type=click.IntRange(min=1), default=None,
    help=f"Pool NxN pixel windows with stride N, dividing width and height by N.  [default: {DEFAULT_FACTOR}]",
)
@click.option(
    "--time-factor", type=click.IntRange(min=1), default=None,
    help="Frames per window (and stride), dividing the frame rate by T; 1 pools each frame on its own.  "
    "[default: the factor]",
)
@click.option(
    "--kernel", type=WindowType(frames=True), metavar="K|KHxKW|KTxKHxKW", default=None,
    help="Pooling window instead of --factor: K or KHxKW pixels, or KTxKHxKW frames x pixels. "
    "The stride is the window.",
)
@pooling_options
@click.option(
    "--compare", "compare_path", type=click.Path(path_type=Path), default=None,
    help="Also write a clip comparing the original, SoftPool, max and avg pooling side by side.",
)
@common_options
def video(
    input_path: Path,
    output_path: Path | None,
    factor: int | None,
    time_factor: int | None,
    kernel: tuple[int, ...] | None,
    method: str,
    beta: float,
    compare_path: Path | None,
    device: str,
    overwrite: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """Downsample the clip IN in time, height and width into OUT (GIF, MP4 or WebM).

    IN is a GIF, animated PNG/WebP, or any clip PyAV reads (MP4, MOV, WebM, MKV,
    AVI). OUT defaults to IN_softpool with IN's extension (MP4 for other
    containers), beside IN. With --factor 2, every 2x2x2 window of 2 frames x 2x2
    pixels becomes one pixel: half the width, height and frame rate, same duration.

    \b
    Timing: each output frame lasts as long as its window's frames together; GIF
    keeps its loop count; MP4/WebM frame rate = input rate / time factor. A last
    window with fewer frames pools the frames there are. Rows and columns that do
    not fill a window are dropped, as max pooling does. MP4 (H.264, yuv420p) needs
    even sizes: an odd width or height gets one more column or row, a copy of the
    last. The audio track is kept in MP4 and WebM. GIF stores 256 colours per
    frame (a fast octree palette, no dithering): for full colour, write MP4 or WebM.

    \b
    Examples:
      softpool video clip.gif --factor 2
      softpool video clip.mp4 small.mp4 --compare cmp.mp4
      softpool video talk.mov half.mp4 --time-factor 1
    """
    started = time.perf_counter()
    if not math.isfinite(beta):
        raise click.BadParameter("must be finite", param_hint="'--beta'")
    window = resolve_window(factor, time_factor, kernel)
    output_path = output_path if output_path is not None else default_output(input_path)

    with report_errors(debug):
        from softpool_cli.media.clip_write import OUTPUT_FORMATS
        from softpool_cli.media.files import check_job_paths
        from softpool_cli.pipeline.clip import ClipJob
        from softpool_cli.pixels.pool import resolve_device

        check_job_paths(input_path, output_path, compare_path, extensions=OUTPUT_FORMATS, overwrite=overwrite)
        device = resolve_device(device)
        job = ClipJob(input_path, output_path, compare_path, window, method, beta, device)
        summary = job.run(overwrite=overwrite, quiet=quiet)

    if not quiet:
        for note in summary.notes:
            click.echo(f"Note: {note}", err=True)
        click.echo(
            f"{input_path} {summary.size_in}, {summary.frames_in} frames -> {output_path} {summary.size_out}, "
            f"{summary.frames_out} frames: {method_name(method, beta)}, window {_window_text(window)} (frames x height x width), "
            f"on {device}; {time.perf_counter() - started:.2f} s"
        )
        if compare_path is not None:
            click.echo(f"comparison -> {compare_path}")


