"""``softpool video``: pool a clip in time, height and width, streamed in chunks of frames.

Only Click and the standard library are imported at module level, so that
``softpool video --help`` answers at once; NumPy, PyAV and Pillow are imported
when the command runs, PyTorch only when it is needed (a GPU, or a pooling the
8-bit CPU engine does not cover).

:func:`pool_windows` and :class:`Comparison` are also the clip steps of ``softpool gallery``.

Frames are decoded, pooled and encoded a few temporal windows at a time, so peak
memory depends on the frame size, not on the clip's length.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from softpool_cli.errors import MediaError, report_errors

DEFAULT_FACTOR = 2
DEFAULT_OUTPUT_SUFFIX = ".mp4"  # for inputs whose container is not an output format
# Decoded frames pooled at once (whole windows, at least one): about 4 frames of 1080p. The
# PyTorch path needs several times this in float32; the 8-bit engine needs no copy.
CHUNK_BYTES = 32 * 2**20
MAX_COMPARE_PANEL_WIDTH = 960  # four panels of 1080p would make a clip too wide to play


class VideoWindowType(click.ParamType):
    """A pooling window: ``K`` (K x K pixels), ``KHxKW`` or ``KTxKHxKW`` (frames x height x width)."""

    name = "K|KHxKW|KTxKHxKW"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().lower().replace("×", "x").split("x")
        if len(parts) not in (1, 2, 3) or not all(part.strip().isdigit() for part in parts):
            self.fail(f"{value!r} is not K, KHxKW or KTxKHxKW (for example 3, 2x3 or 1x2x2)", param, ctx)
        sizes = tuple(int(part) for part in parts)
        if min(sizes) < 1:
            self.fail(f"{value!r}: sizes must be at least 1", param, ctx)
        return (sizes[0], sizes[0]) if len(sizes) == 1 else sizes


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
    from softpool_cli.media.clips import OUTPUT_FORMATS

    suffix = input_path.suffix.lower()
    suffix = suffix if suffix in OUTPUT_FORMATS else DEFAULT_OUTPUT_SUFFIX
    return input_path.with_name(f"{input_path.stem}_softpool{suffix}")


@contextlib.contextmanager
def _blame(path: Path, action: str) -> Iterator[None]:
    """Report clip and codec failures as a one-line error naming ``path``."""
    import av

    from softpool_cli.media.clips import ClipError

    try:
        yield
    except ClipError as error:
        raise MediaError(path, str(error)) from None
    except av.FFmpegError as error:
        raise MediaError(path, f"cannot {action} ({error.strerror or error})") from None


def _window_text(window: tuple[int, ...]) -> str:
    return "x".join(str(size) for size in window)


def pool_windows(pixels: Any, window: tuple[int, int, int], method: str, beta: float, device: str) -> Any:
    """Pool (T, H, W, 3) frames in windows of ``window`` (frames, height, width), stride = window.

    A last, shorter group of frames is pooled as one window of the frames there are (max
    pooling's ceil_mode in time); rows and columns that do not fill a window are dropped.
    """
    import numpy as np

    from softpool_cli.pixels.pool import pool_array

    frames, height, width = window
    whole = len(pixels) - len(pixels) % frames
    parts = []
    if whole:
        parts.append(pool_array(pixels[:whole], window, method=method, beta=beta, device=device))
    if whole < len(pixels):
        rest = (len(pixels) - whole, height, width)
        parts.append(pool_array(pixels[whole:], rest, method=method, beta=beta, device=device))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)  # (ceil(T / KT), H', W', 3)


class Comparison:
    """Builds comparison frames: the first original frame of each window, then each method's
    pooled frame, labelled, every panel at one display size.

    Frames wider than :data:`MAX_COMPARE_PANEL_WIDTH` are shown at that width (the original
    area-averaged down, so it does not alias); smaller ones as the image comparison shows them.

    Args:
        frame_height: Height of the original frames.
        frame_width: Width of the original frames.
        methods: The pooling methods of the panels after the original, in order.
        beta: SoftPool's β, named in its label when it is not 1.
    """

    def __init__(self, frame_height: int, frame_width: int, methods: Sequence[str], beta: float = 1.0) -> None:
        from softpool_cli.media.compare import ComparisonLayout, comparison_labels

        panel = None  # the layout's default: the frame's size, enlarged if it is small
        if frame_width > MAX_COMPARE_PANEL_WIDTH:
            scale = MAX_COMPARE_PANEL_WIDTH / frame_width
            panel = (max(1, round(frame_height * scale)), MAX_COMPARE_PANEL_WIDTH)
        self.methods = tuple(methods)
        self._layout = ComparisonLayout(frame_height, frame_width, comparison_labels(self.methods, beta), panel_size=panel)
        self._shrink_to = panel

    def frames(self, originals: Any, results: dict[str, Any]) -> Any:
        """Compose (T', H, W, 3) comparison frames from T' originals and each method's T' pooled frames."""
        import cv2
        import numpy as np

        composed = []
        for index, original in enumerate(originals):
            if self._shrink_to is not None:
                # Area averaging, not nearest neighbour (the layout's choice): the original should not alias.
                original = cv2.resize(original, self._shrink_to[::-1], interpolation=cv2.INTER_AREA)
            panels = [original] + [results[method][index] for method in self.methods]
            composed.append(self._layout.compose(panels))
        return np.stack(composed)  # (T', H, W, 3)


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
    "--kernel", type=VideoWindowType(), metavar="K|KHxKW|KTxKHxKW", default=None,
    help="Pooling window instead of --factor: K or KHxKW pixels, or KTxKHxKW frames x pixels. "
    "The stride is the window.",
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
    "--compare", "compare_path", type=click.Path(path_type=Path), default=None,
    help="Also write a clip comparing the original, SoftPool, max and avg pooling side by side.",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    help="Where to pool: auto uses a CUDA GPU when there is one.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT (and the --compare file) if they exist.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print nothing but errors.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
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
        from softpool_cli.media.clips import OUTPUT_FORMATS
        from softpool_cli.media.files import check_job_paths
        from softpool_cli.pixels.pool import resolve_device

        check_job_paths(input_path, output_path, compare_path, extensions=OUTPUT_FORMATS, overwrite=overwrite)
        device = resolve_device(device)
        job = _Job(input_path, output_path, compare_path, window, method, beta, device)
        summary = job.run(overwrite=overwrite, quiet=quiet)

    if not quiet:
        for note in summary.notes:
            click.echo(f"Note: {note}", err=True)
        method_name = {"soft": f"SoftPool (beta {beta:g})", "max": "max pooling", "avg": "average pooling"}[method]
        click.echo(
            f"{input_path} {summary.size_in}, {summary.frames_in} frames -> {output_path} {summary.size_out}, "
            f"{summary.frames_out} frames: {method_name}, window {_window_text(window)} (frames x height x width), "
            f"on {device}; {time.perf_counter() - started:.2f} s"
        )
        if compare_path is not None:
            click.echo(f"comparison -> {compare_path}")


@dataclass
class _Summary:
    """What a run did, for the closing line."""

    frames_in: int = 0
    frames_out: int = 0
    size_in: str = "?"
    size_out: str = "?"
    notes: list[str] = field(default_factory=list)


@dataclass
class _Job:
    """One run of the command: decode, pool and encode chunk by chunk."""

    input_path: Path
    output_path: Path
    compare_path: Path | None
    window: tuple[int, int, int]
    method: str
    beta: float
    device: str
    _format: str = field(init=False, default="mp4")
    _comparison: Comparison | None = field(init=False, default=None)

    def run(self, *, overwrite: bool, quiet: bool) -> _Summary:
        from tqdm import tqdm

        from softpool_cli.media.clips import open_clip, open_writer, output_format
        from softpool_cli.media.files import atomic_outputs

        with _blame(self.input_path, "read"):
            reader = open_clip(self.input_path)
        info = reader.info
        summary = _Summary()
        self._format = output_format(self.output_path) or "mp4"
        keep_audio = info.audio_codec is not None and self._format != "gif"
        if info.audio_codec is not None and self._format == "gif":
            summary.notes.append(f"{self.output_path}: GIF has no audio; the audio track is not kept")
        frames = self.window[0]
        windows_per_chunk = max(1, min(64, CHUNK_BYTES // max(1, frames * info.width * info.height * 3)))
        targets = [self.output_path] + ([self.compare_path] if self.compare_path is not None else [])
        timing = {"fps": info.fps / frames, "time_base": info.time_base, "loop": info.loop}
        progress = tqdm(
            total=info.frame_count, unit="frame", desc=self.input_path.name, leave=False,
            disable=quiet or not sys.stderr.isatty(), file=sys.stderr,
        )
        writers: list[Any] = []
        try:
            with atomic_outputs(*targets, overwrite=overwrite) as temporaries:
                with _blame(self.output_path, "write"):
                    audio = reader.audio_stream if keep_audio else None
                    writers.append(open_writer(temporaries[0], self._format, audio_stream=audio, **timing))
                if self.compare_path is not None:
                    with _blame(self.compare_path, "write"):
                        writers.append(open_writer(temporaries[1], output_format(self.compare_path), **timing))
                sink = writers[0].write_audio if keep_audio else None
                chunks = reader.chunks(windows_per_chunk * frames, audio_sink=sink)
                while True:
                    with _blame(self.input_path, "read"):
                        chunk = next(chunks, None)
                    if chunk is None:
                        break
                    self._process(chunk, writers, summary)
                    progress.update(len(chunk.pixels))
                for path, writer in zip(targets, writers):
                    with _blame(path, "write"):
                        writer.close()
                writers.clear()
        finally:
            progress.close()
            for writer in writers:
                writer.abort()
            reader.close()
        return summary

    def _process(self, chunk: Any, writers: list[Any], summary: _Summary) -> None:
        """Pool one chunk of frames and hand the results to the writers."""
        import numpy as np

        from softpool_cli.media.clips import FrameChunk, encoded_size

        count, height, width = chunk.pixels.shape[:3]
        if summary.frames_in == 0:
            _check_fits(self.input_path, count, height, width, self.window)
            summary.size_in = f"{width}x{height}"
        summary.frames_in += count
        methods = ["soft", "max", "avg"] if self.compare_path is not None else [self.method]
        results = {name: pool_windows(chunk.pixels, self.window, name, self.beta, self.device) for name in methods}
        pooled = results[self.method]
        frames = self.window[0]
        starts = chunk.starts[::frames]
        durations = np.add.reduceat(chunk.durations, np.arange(0, count, frames))  # each window's total
        with _blame(self.output_path, "write"):
            writers[0].write(FrameChunk(pooled, starts, durations))
        if summary.frames_out == 0:
            pooled_size = (pooled.shape[2], pooled.shape[1])
            encoded = encoded_size(*pooled_size, self._format)  # type: ignore[arg-type]
            summary.size_out = f"{encoded[0]}x{encoded[1]}"
            if encoded != pooled_size:
                summary.notes.append(
                    f"{self.output_path}: H.264 needs an even width and height; the pooled "
                    f"{pooled_size[0]}x{pooled_size[1]} frames got their last column/row repeated"
                )
        summary.frames_out += len(pooled)
        if self.compare_path is not None:
            if self._comparison is None:
                self._comparison = Comparison(height, width, ("soft", "max", "avg"), self.beta)
            composed = self._comparison.frames(chunk.pixels[::frames], results)
            with _blame(self.compare_path, "write"):
                writers[1].write(FrameChunk(composed, starts, durations))


def _check_fits(path: Path, count: int, height: int, width: int, window: tuple[int, int, int]) -> None:
    """Refuse a clip smaller than one window (``count`` is the first chunk's length, which is
    at least one window unless the clip is shorter)."""
    frames, kernel_height, kernel_width = window
    if count < frames:
        raise MediaError(
            path,
            f"clip has {count} frame{'s' if count != 1 else ''}, fewer than the {frames}-frame window "
            "(use a smaller --time-factor)",
        )
    if height < kernel_height or width < kernel_width:
        raise MediaError(
            path,
            f"frames are {width}x{height} pixels, smaller than the {kernel_height}x{kernel_width} window "
            "(use a smaller --factor or --kernel)",
        )
