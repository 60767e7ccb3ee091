"""``softpool video``: pool clips in time, height and width, decoding, pooling and encoding at once.

Only Click and the standard library are imported at module level, so that ``--help`` answers
at once; the work is :mod:`softpool_cli.pipeline.clip_job`'s.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from softpool_cli.errors import report_errors, run_tasks
from softpool_cli.options import (
    SquareWindow,
    WindowType,
    common_options,
    method_name,
    pooling_options,
    size_options,
    spatial_geometry,
)

DEFAULT_FACTOR = 2
DEFAULT_OUTPUT_SUFFIX = ".mp4"  # for inputs whose container is not an output format
CLIP_SUFFIXES = (".gif", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".png", ".apng", ".webp")  # as clip_write's


def time_geometry(factor, time_factor, kernel, stride, fps):
    """The `TimeGeometry` of the options.

    Without --time-factor, time is pooled like the picture's side: --factor N pools N frames,
    --kernel K pools K (a K x K x K cube, as --factor), --kernel KHxKW 2 (the default factor);
    --kernel KTxKHxKW and --stride STxSHxSW name the frames themselves.

    Raises:
        click.UsageError: options that say the time window twice.
    """
    from softpool_cli.pipeline.geometry import TimeGeometry

    three = kernel is not None and len(kernel) == 3
    if fps is not None and (time_factor is not None or three):
        raise click.UsageError("--fps gives the frame rate: it cannot be combined with --time-factor or KTxKHxKW")
    if three and time_factor is not None:
        raise click.UsageError("--time-factor cannot be combined with a KTxKHxKW --kernel")
    if stride is not None and len(stride) == 3 and not three:
        raise click.UsageError("a STxSHxSW --stride needs a KTxKHxKW --kernel")
    if fps is not None:
        return TimeGeometry(fps=fps)
    if three:
        return TimeGeometry(kernel[0], stride[0] if stride is not None and len(stride) == 3 else None)
    if time_factor is not None:
        return TimeGeometry(time_factor)
    if factor is not None:
        return TimeGeometry(factor)
    if isinstance(kernel, SquareWindow):
        return TimeGeometry(kernel[0])
    return TimeGeometry(DEFAULT_FACTOR)


def default_suffix(source: str) -> str:
    suffix = Path(source).suffix.lower()
    return suffix if suffix in CLIP_SUFFIXES else DEFAULT_OUTPUT_SUFFIX


def default_output(input_path: Path) -> Path:
    """``<stem>_softpool<ext>`` beside the input; MP4 for containers that are not output formats."""
    return input_path.with_name(f"{input_path.stem}_softpool{default_suffix(str(input_path))}")


@click.command()
@click.argument("arguments", metavar="IN... [OUT]", nargs=-1, required=True)
@click.option("--output-dir", "-o", metavar="DIR", default=None, help="Write every result into DIR (created if missing), under its input's name.")
@click.option("--recursive", "-r", is_flag=True, help="Process the clips in folders given as IN, and their subfolders.")
@click.option("--factor", type=click.IntRange(min=1), default=None, help="Pool N frames x NxN pixels with stride N: 1/N of the width, height and frame rate.  [default: 2]")
@click.option("--time-factor", type=click.IntRange(min=1), default=None, help="Frames per window (and stride); 1 pools each frame on its own.  [default: as the window's side]")
@click.option("--kernel", type=WindowType(frames=True), default=None, help="Window: K (K frames x KxK pixels), KHxKW (pixels; frames from --time-factor, default 2) or KTxKHxKW.")
@click.option("--stride", type=WindowType(frames=True), default=None, help="Step between windows: S or SHxSW pixels, or STxSHxSW.  [default: the kernel]")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None, help="Output frame rate: each output frame pools the input frames of its 1/FPS seconds, instead of --time-factor.")
@size_options
@pooling_options
@click.option("--crf", type=click.IntRange(0, 63), default=None, help="Constant quality of H.264 (0-51, default 20) or VP9 (0-63, default 32); lower is better.")
@click.option("--preset", default=None, help="x264 preset (ultrafast ... veryslow, default medium) or VP9 cpu-used (0-8, default 4).")
@click.option("--format", "output_format", default=None, metavar="EXT", help="Output container (mp4, mov, mkv, webm, gif, png for APNG, webp) instead of OUT's extension; OUT '-' takes mkv, webm or gif.")
@click.option("--compare", "compare_path", type=click.Path(path_type=Path), default=None, help="Also write a clip comparing the original, SoftPool, max and avg pooling side by side (one IN only).")
@click.option("--compare-width", type=click.IntRange(min=16), default=960, show_default=True, help="Largest width of each comparison panel.")
@click.option("--max-pixels", type=click.IntRange(min=0), default=50_000_000, show_default=True, envvar="SOFTPOOL_MAX_PIXELS", show_envvar=True, help="Refuse clips with larger frames, read from the header before any frame is decoded; 0 = no limit.")
@common_options
def video(arguments, output_dir, recursive, factor, time_factor, kernel, stride, fps, target_width, target_height,
          target_size, target_scale, method, beta, device, crf, preset, output_format, compare_path, compare_width,
          max_pixels, overwrite, quiet, debug) -> None:  # fmt: skip
    """Downsample clips in time, height and width with SoftPool.

    \b
    softpool video IN [OUT]          OUT defaults to IN_softpool.EXT beside IN
    softpool video IN... -o DIR      every IN into DIR (also: a folder as the last argument)
    softpool video - - --format mkv < in.mkv > out.mkv

    IN is a GIF, animated PNG/WebP, or any clip PyAV reads (MP4, MOV, WebM, MKV, AVI). With
    --factor 2, every window of 2 frames x 2x2 pixels becomes one pixel: half the width,
    height and frame rate, same duration. --kernel K means K x K pixels as in downsample.
    A size (--width, --height, --size, --scale) pools adaptive windows where it does not
    divide the frames' (see downsample --help); --fps pools the frames of each output frame's
    time span. Decoding, pooling and encoding run at the same time.

    \b
    Timing: each output frame lasts as long as its window's frames together; GIF, APNG and
    WebP keep the loop count; a last window with fewer frames pools the frames there are.
    H.264 (MP4, MOV, MKV) needs even sizes: an odd width or height gets one more column or
    row, a copy of the last. The audio track is kept in MP4, MOV, MKV and WebM. GIF stores
    256 colours per frame: for full colour, write MP4, MKV or WebM.

    \b
    Examples:
      softpool video clip.gif --factor 2
      softpool video clip.mp4 small.mp4 --compare cmp.mp4
      softpool video talk.mov half.mp4 --time-factor 1 --crf 23 --preset fast
      softpool video clip.mp4 --width 640 --fps 12
    """
    started = time.perf_counter()
    if not math.isfinite(beta):
        raise click.BadParameter("must be finite", param_hint="'--beta'")
    time_windows = time_geometry(factor, time_factor, kernel, stride, fps)
    pools_time = time_windows.fps is not None or time_windows.kernel > 1 or (time_windows.stride or 1) > 1
    spatial_kernel = tuple(kernel[-2:]) if kernel is not None else None
    spatial_stride = tuple(stride[-2:]) if stride is not None else None
    spatial = spatial_geometry(factor, spatial_kernel, spatial_stride, False, target_width, target_height,
                               target_size, target_scale, even=True, pools_time=pools_time)  # fmt: skip
    suffix = None
    if output_format is not None:
        suffix = "." + output_format.lower().lstrip(".")
        if suffix not in CLIP_SUFFIXES:
            raise click.BadParameter(f"{output_format!r} is not one of {', '.join(s[1:] for s in CLIP_SUFFIXES)}", param_hint="'--format'")

    with report_errors(debug):
        from softpool_cli.media.discovery import classify
        from softpool_cli.pipeline.clip_job import ClipSettings, video_one
        from softpool_cli.pipeline.targets import create_folders, plan_tasks
        from softpool_cli.pixels.devices import resolve_device

        tasks = plan_tasks(arguments, output_dir, recursive=recursive, suffix_for=lambda s: suffix or default_suffix(s),
                           wanted=lambda path: classify(path) == "clip")  # fmt: skip
        if compare_path is not None and len(tasks) > 1:
            raise click.UsageError("--compare writes one comparison: give one IN")
        if output_dir is not None:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
        create_folders(tasks)
        settings = ClipSettings(
            spatial=spatial, time=time_windows, method=method, beta=beta, device=resolve_device(device), crf=crf,
            preset=preset, format=suffix, overwrite=overwrite, compare=str(compare_path) if compare_path else None,
            compare_width=compare_width, max_pixels=max_pixels, quiet=quiet,
        )  # fmt: skip

    def describe(outcome) -> str:
        (w, h), (ow, oh) = outcome.size_in, outcome.size_out
        return (
            f"{outcome.source} {w}x{h}, {outcome.frames_in} frames -> {outcome.target} {ow}x{oh}, "
            f"{outcome.frames_out} frames: {method_name(method, beta)}, {time_windows.describe()} x "
            f"{spatial.describe()}, on {settings.device}; {time.perf_counter() - started:.2f} s"
        )

    run_tasks(tasks, lambda task: video_one(task, settings), describe, quiet=quiet, debug=debug,
              compare_path=compare_path, started=started)  # fmt: skip
