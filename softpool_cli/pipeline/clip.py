"""One clip from input file to output files: decode, pool, compare and encode, chunk by chunk.

Frames are decoded, pooled and encoded a few temporal windows at a time, so peak memory
depends on the frame size, not on the clip's length. :func:`pool_windows` and
:class:`Comparison` are also the clip steps of ``softpool gallery``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softpool_cli.errors import MediaError

# Decoded frames pooled at once (whole windows, at least one): about 4 frames of 1080p. The
# PyTorch path needs several times this in float32; the 8-bit engine needs no copy.
CHUNK_BYTES = 32 * 2**20
MAX_COMPARE_PANEL_WIDTH = 960  # four panels of 1080p would make a clip too wide to play


@contextlib.contextmanager
def blame(path: Path, action: str) -> Iterator[None]:
    """Report clip and codec failures as a one-line error naming ``path``."""
    import av

    from softpool_cli.media.clip_read import ClipError

    try:
        yield
    except ClipError as error:
        raise MediaError(path, str(error)) from None
    except av.FFmpegError as error:
        raise MediaError(path, f"cannot {action} ({error.strerror or error})") from None


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


@dataclass
class ClipSummary:
    """What a run did, for the closing line."""

    frames_in: int = 0
    frames_out: int = 0
    size_in: str = "?"
    size_out: str = "?"
    notes: list[str] = field(default_factory=list)


@dataclass
class ClipJob:
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

    def run(self, *, overwrite: bool, quiet: bool) -> ClipSummary:
        from tqdm import tqdm

        from softpool_cli.media.clip_read import open_clip
        from softpool_cli.media.clip_write import open_writer, output_format
        from softpool_cli.media.files import atomic_outputs

        with blame(self.input_path, "read"):
            reader = open_clip(self.input_path)
        info = reader.info
        summary = ClipSummary()
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
                with blame(self.output_path, "write"):
                    audio = reader.audio_stream if keep_audio else None
                    writers.append(open_writer(temporaries[0], self._format, audio_stream=audio, **timing))
                if self.compare_path is not None:
                    with blame(self.compare_path, "write"):
                        writers.append(open_writer(temporaries[1], output_format(self.compare_path), **timing))
                sink = writers[0].write_audio if keep_audio else None
                chunks = reader.chunks(windows_per_chunk * frames, audio_sink=sink)
                while True:
                    with blame(self.input_path, "read"):
                        chunk = next(chunks, None)
                    if chunk is None:
                        break
                    self._process(chunk, writers, summary)
                    progress.update(len(chunk.pixels))
                for path, writer in zip(targets, writers):
                    with blame(path, "write"):
                        writer.close()
                writers.clear()
        finally:
            progress.close()
            for writer in writers:
                writer.abort()
            reader.close()
        return summary

    def _process(self, chunk: Any, writers: list[Any], summary: ClipSummary) -> None:
        """Pool one chunk of frames and hand the results to the writers."""
        import numpy as np

        from softpool_cli.media.clip_read import FrameChunk
        from softpool_cli.media.clip_write import encoded_size

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
        with blame(self.output_path, "write"):
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
            with blame(self.compare_path, "write"):
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
