"""Reading video clips in chunks of frames, so memory does not grow with the clip's length.

Animated GIF, PNG and WebP go through Pillow, which gives each frame's exact duration and the
loop count (FFmpeg's GIF demuxer exposes no loop count); every other container (MP4, MOV,
WebM, MKV, AVI, ...) goes through PyAV. Frames come out as RGB uint8, with their timestamps
and durations as integers in the clip's time base.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import av.logging
import numpy as np

if TYPE_CHECKING:
    from PIL import Image

# Pillow reads these animated; a one-frame file of these, or any other image, is a still image.
_ANIMATED_IMAGE_FORMATS = {"GIF", "PNG", "WEBP"}


class ClipError(Exception):
    """A clip cannot be read or written; the message is one line naming the problem."""


@dataclass(frozen=True)
class ClipInfo:
    """What is known about a clip before its frames are decoded.

    Attributes:
        width: frame width in pixels as stored; frames come out turned upright when
            the clip carries a display rotation, so trust the decoded frames' shape.
        height: frame height in pixels as stored.
        frame_count: number of frames, or an estimate from the duration (None if unknown).
        fps: nominal frame rate.
        time_base: unit of the timestamps and durations in :class:`FrameChunk`.
        loop: loop count for a GIF made from the clip (0 = forever, None = play once): an
            animated image's own, 0 for video containers, which have no such notion.
        audio_codec: name of the first audio track's codec, None without audio.
        container: the container format as the reader names it ("GIF", "mov,mp4,...", ...).
    """

    width: int
    height: int
    frame_count: int | None
    fps: Fraction
    time_base: Fraction
    loop: int | None
    audio_codec: str | None
    container: str


@dataclass
class FrameChunk:
    """Consecutive frames of a clip.

    Attributes:
        pixels: (T, H, W, 3) uint8 RGB frames.
        starts: (T,) int64 presentation timestamps in the clip's time base.
        durations: (T,) int64 display durations in the clip's time base.
    """

    pixels: np.ndarray
    starts: np.ndarray
    durations: np.ndarray


AudioSink = Callable[[Any], None]


class _ChunkBuffer:
    """Collects frames and hands them out in chunks of a fixed number of frames."""

    def __init__(self, frames_per_chunk: int) -> None:
        self.size = frames_per_chunk
        self.pixels: list[np.ndarray] = []
        self.starts: list[int] = []
        self.durations: list[int] = []

    def add(self, pixels: np.ndarray, start: int, duration: int) -> FrameChunk | None:
        self.pixels.append(pixels)
        self.starts.append(start)
        self.durations.append(duration)
        return self.take() if len(self.pixels) == self.size else None

    def take(self) -> FrameChunk | None:
        if not self.pixels:
            return None
        chunk = FrameChunk(
            np.stack(self.pixels),  # (T, H, W, 3)
            np.array(self.starts, dtype=np.int64),
            np.array(self.durations, dtype=np.int64),
        )
        self.pixels, self.starts, self.durations = [], [], []
        return chunk




def open_clip(path: Path, max_pixels: int = 0) -> AnimatedImageReader | ContainerReader:
    """Open a clip for reading, recognising it by its content, not its extension.

    Args:
        path: The clip.
        max_pixels: Refuse frames with more pixels than this, from the header, before any
            frame is decoded (0: no limit). Pillow's own guard, which would call such a
            file "corrupt", gives way to this one.

    Raises:
        ClipError: the file is missing, empty, a still image, not a clip PyAV can read,
            has no video track, or its frames are over ``max_pixels``.
    """
    if not path.exists():
        raise ClipError("no such file")
    if path.is_dir():
        raise ClipError("is a directory, not a clip")
    if path.stat().st_size == 0:
        raise ClipError("empty file")
    from softpool_cli.media.image_read import video_container

    try:
        with open(path, "rb") as stream:
            head = stream.read(64)
    except OSError as error:
        raise ClipError(f"cannot read: {error.strerror or error}") from None
    # A video container goes straight to PyAV: Pillow would load every plugin it has (40 ms) to
    # find that it does not know the file.
    image = None if video_container(head) else _open_image(path, max_pixels)
    if image is not None:
        return AnimatedImageReader(image)
    reader = ContainerReader(path)
    problem = pixel_limit_problem(reader.info.width, reader.info.height, max_pixels)
    if problem:
        reader.close()
        raise ClipError(problem)
    return reader


def pixel_limit_problem(width: int, height: int, max_pixels: int) -> str | None:
    """What to say of frames of ``width`` x ``height`` over ``max_pixels`` (None: within it)."""
    if not max_pixels or width * height <= max_pixels:
        return None
    return (
        f"frames are {width}x{height} ({width * height / 1e6:.1f} megapixels), over the limit of "
        f"{max_pixels:,} pixels (raise it with --max-pixels or SOFTPOOL_MAX_PIXELS)"
    )


def _open_image(path: Path, max_pixels: int) -> Image.Image | None:
    """Pillow's view of the file if it is an image format Pillow knows, else None."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    try:
        # Our limit is checked below from the header; Pillow's would warn, or call the file corrupt.
        Image.MAX_IMAGE_PIXELS = None
        image = Image.open(path)
    except UnidentifiedImageError:
        return None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ClipError(f"corrupt or truncated image ({error})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    problem = pixel_limit_problem(*image.size, max_pixels)
    if problem:
        image.close()
        raise ClipError(problem)
    # Pillow recognises MPEG-1 streams but cannot decode them: they are PyAV's.
    if image.format == "MPEG":
        image.close()
        return None
    try:
        animated = image.format in _ANIMATED_IMAGE_FORMATS and image.n_frames > 1
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        image.close()
        raise ClipError(f"corrupt or truncated {image.format} file ({error})") from None
    if not animated:
        image.close()
        raise ClipError(
            f"is a still {image.format} image, not a clip: use `softpool downsample` for images"
        )
    return image


def _flatten(image: Image.Image) -> np.ndarray:
    """The current frame as (H, W, 3) uint8 RGB, transparent areas composited onto white."""
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            pixels = np.asarray(rgba)  # (H, W, 4)
            rgb, alpha = pixels[..., :3], pixels[..., 3:].astype(np.uint16)
            blended = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
            return blended.astype(np.uint8)
        image = rgba
    # Converting in Pillow is one pass; slicing RGB out of RGBA in NumPy is a slow strided copy.
    return np.asarray(image.convert("RGB"))


class AnimatedImageReader:
    """Frames of an animated GIF, PNG or WebP, read through Pillow one at a time."""

    # Pillow gives durations in milliseconds (GIF stores centiseconds, so they are exact).
    time_base = Fraction(1, 1000)

    def __init__(self, image: Image.Image) -> None:
        self._image = image
        first_duration = float(image.info.get("duration") or 0)
        fps = Fraction(1000) / Fraction(first_duration).limit_denominator(1000) if first_duration else Fraction(10)
        self.info = ClipInfo(
            width=image.width,
            height=image.height,
            frame_count=image.n_frames,
            fps=fps.limit_denominator(1001),
            time_base=self.time_base,
            loop=image.info.get("loop"),
            audio_codec=None,
            container=image.format or "image",
        )

    def chunks(self, frames_per_chunk: int, audio_sink: AudioSink | None = None) -> Iterator[FrameChunk]:
        """Yield the frames in chunks of ``frames_per_chunk`` (the last one may be shorter)."""
        buffer = _ChunkBuffer(frames_per_chunk)
        elapsed = 0.0  # ms; durations may be fractional (APNG), so round the running sum
        for index in range(self.info.frame_count or 0):
            try:
                self._image.seek(index)
                pixels = _flatten(self._image)
            except (OSError, ValueError, SyntaxError, EOFError) as error:
                raise ClipError(f"corrupt or truncated at frame {index + 1} ({error})") from None
            duration = float(self._image.info.get("duration") or 0)
            start, end = round(elapsed), round(elapsed + duration)
            elapsed += duration
            chunk = buffer.add(pixels, start, end - start)
            if chunk is not None:
                yield chunk
        chunk = buffer.take()
        if chunk is not None:
            yield chunk

    def close(self) -> None:
        self._image.close()


class _LibavErrors:
    """FFmpeg's error messages while reading, which report truncation and corruption.

    FFmpeg conceals most damage and goes on decoding, so a truncated MP4 or WebM would
    otherwise come out silently shorter; its error log is the reliable signal. Capture is
    paused while other code runs (the encoders of the output must not be blamed on the input).
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._capture: Any = None
        self._previous: tuple[Any, bool] | None = None

    def _start(self) -> None:
        self._previous = (av.logging.get_level(), av.logging.get_skip_repeated())
        av.logging.set_level(av.logging.ERROR)
        # PyAV drops a message identical to the one before, even when it comes from another file.
        av.logging.set_skip_repeated(False)
        # Not thread-local: frame-threaded decoders log from their own threads.
        self._capture = av.logging.Capture(local=False)
        self._logs = self._capture.__enter__()

    def _stop(self) -> None:
        self._capture.__exit__(None, None, None)
        for level, _name, message in self._logs:
            # PyAV reports a repeated message late, as "(repeated N more times)", possibly
            # into a later capture: the message itself was seen when it first came.
            if level <= av.logging.ERROR and "more time" not in message:
                self.messages.append(message.strip())
        level, skip = self._previous  # type: ignore[misc]
        av.logging.set_level(level)
        av.logging.set_skip_repeated(skip)

    @contextlib.contextmanager
    def active(self) -> Iterator[_LibavErrors]:
        self._start()
        try:
            yield self
        finally:
            self._stop()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._stop()
        try:
            yield
        finally:
            self._start()

    def first(self) -> str | None:
        """The first error message so far (checking also collects the ones captured till now)."""
        self._stop()
        self._start()
        return self.messages[0] if self.messages else None


class ContainerReader:
    """Frames (and audio packets) of a video container, demuxed and decoded through PyAV."""

    def __init__(self, path: Path) -> None:
        errors = _LibavErrors()
        with errors.active():
            try:
                self._container = av.open(str(path), "r")
            except (av.FFmpegError, EOFError, UnicodeDecodeError) as error:
                detail = errors.first() or getattr(error, "strerror", None) or str(error)
                raise ClipError(f"not a clip PyAV can read: unknown, corrupt or truncated ({detail})") from None
        container = self._container
        if not container.streams.video:
            container.close()
            raise ClipError("has no video track")
        name = container.format.name
        # FFmpeg's image demuxers ("png_pipe", "image2", ...) mean a still image it can read.
        if name == "image2" or name.endswith("_pipe"):
            # image2 is picked by the file's extension alone: only a decodable frame makes it an image.
            with errors.active():
                try:
                    decodable = next(container.decode(video=0), None) is not None
                except (av.FFmpegError, EOFError, ValueError):
                    decodable = False
            container.close()
            if not decodable:
                raise ClipError("not a clip PyAV can read: unknown, corrupt or truncated")
            raise ClipError("is a still image, not a clip: use `softpool downsample` for images")
        self._video = container.streams.video[0]
        self._video.thread_type = "AUTO"
        self._audio = container.streams.audio[0] if container.streams.audio else None
        self._frame_shape: tuple[int, ...] | None = None
        video = self._video
        fps = video.average_rate or video.guessed_rate or video.base_rate or Fraction(25)
        self.audio_stream = self._audio
        self.info = ClipInfo(
            width=video.codec_context.width,
            height=video.codec_context.height,
            frame_count=self._estimate_frames(fps),
            fps=Fraction(fps),
            time_base=Fraction(video.time_base),
            loop=0,
            audio_codec=self._audio.codec_context.name if self._audio is not None else None,
            container=name,
        )

    def _estimate_frames(self, fps: Fraction) -> int | None:
        video = self._video
        if video.frames:
            return int(video.frames)
        if video.duration is not None:
            return round(video.duration * video.time_base * fps)
        if self._container.duration is not None:
            return round(Fraction(self._container.duration, av.time_base) * fps)
        return None

    def chunks(self, frames_per_chunk: int, audio_sink: AudioSink | None = None) -> Iterator[FrameChunk]:
        """Yield the frames in chunks of ``frames_per_chunk`` (the last one may be shorter).

        A frame's duration is the gap to the next frame's timestamp (the container's own
        timing), the last one's its stated duration or one nominal frame. With
        ``audio_sink``, the first audio track's packets are passed to it as they are demuxed,
        so audio and video stay interleaved without buffering either.

        Raises:
            ClipError: FFmpeg reports damage (truncated or corrupt data), or the frame size
                changes within the clip.
        """
        video, time_base = self._video, self.info.time_base
        nominal = max(1, round(1 / (self.info.fps * time_base)))
        streams = [video] + ([self._audio] if audio_sink and self._audio is not None else [])
        buffer = _ChunkBuffer(frames_per_chunk)
        pending: tuple[np.ndarray, int, int] | None = None  # held back until the next timestamp
        errors = _LibavErrors()
        with errors.active():
            try:
                for packet in self._container.demux(*streams):
                    if packet.stream is not video:
                        if packet.size:  # the empty packet at the end only flushes a decoder
                            self._check(errors)
                            with errors.paused():
                                audio_sink(packet)  # type: ignore[misc]
                        continue
                    for frame in packet.decode():
                        self._check(errors)
                        pixels = self._pixels(frame)
                        start = frame.pts
                        if start is None:
                            start = 0 if pending is None else pending[1] + pending[2]
                        if pending is not None:
                            gap = start - pending[1]
                            chunk = buffer.add(pending[0], pending[1], gap if gap > 0 else pending[2])
                            if chunk is not None:
                                with errors.paused():
                                    yield chunk
                        pending = (pixels, start, frame.duration or nominal)
            except av.FFmpegError as error:
                raise ClipError(f"corrupt or truncated ({error.strerror or error})") from None
            self._check(errors)
        last = buffer.add(*pending) if pending is not None else None
        for chunk in (last, buffer.take()):
            if chunk is not None:
                yield chunk

    @staticmethod
    def _check(errors: _LibavErrors) -> None:
        problem = errors.first()
        if problem:
            raise ClipError(f"corrupt or truncated (FFmpeg: {problem})")

    def _pixels(self, frame: Any) -> np.ndarray:
        pixels = frame.to_ndarray(format="rgb24")  # (H, W, 3)
        # Phone clips store their orientation as a display rotation (counter-clockwise).
        turns = round((frame.rotation or 0) / 90) % 4
        if turns:
            pixels = np.ascontiguousarray(np.rot90(pixels, turns))
        if self._frame_shape is None:
            self._frame_shape = pixels.shape
        elif pixels.shape != self._frame_shape:
            height, width = self._frame_shape[:2]
            raise ClipError(
                f"frame size changes within the clip ({width}x{height} to "
                f"{pixels.shape[1]}x{pixels.shape[0]})"
            )
        return pixels

    def close(self) -> None:
        self._container.close()


