"""One clip through three stages at once: decoding, pooling and encoding, on bounded queues.

A reader thread decodes frames (and passes the audio packets along, in order), the calling
thread pools windows of frames as soon as they are complete, and a writer thread encodes.
Decoders, encoders and the pixel engine release the GIL, so the stages overlap on several
cores; the queues hold a few chunks each, so memory is set by the chunk size, not by the
clip's length. A failure in any stage stops the others and is raised in the calling thread.

`pool_clip` serves ``softpool video`` and the gallery: each output (a method's result, a
comparison) is a writer, fed the pooled frames with their timing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from softpool.cpu.threads import Workers
from softpool.cpu.threads import put_unless_stopped as _put
from softpool_cli.errors import MediaError, SoftpoolError, check_interrupted
from softpool_cli.pipeline.geometry import SpatialGeometry, TimeGeometry, TimeWindows
from softpool_cli.pixels.windows import AxisWindows

# Decoded frames pooled at once (whole windows, at least one): about 4 frames of 1080p.
CHUNK_BYTES = 32 * 2**20
# Chunks each queue holds: enough to keep every stage busy, few enough to bound memory.
QUEUE_CHUNKS = 2
MAX_COMPARE_PANEL_WIDTH = 960  # four panels side by side stay under H.264's 4096-pixel width


@dataclass
class ClipStats:
    """What a run did, for the summary line."""

    frames_in: int = 0
    frames_out: int = 0
    size_in: tuple[int, int] | None = None  # (width, height)
    size_out: tuple[int, int] | None = None


@dataclass
class Output:
    """One thing to write: ``write(chunk)`` for each chunk of pooled frames, ``close()`` at the end.

    ``method`` names the pooling ("soft", "max", "avg"), or "compare" for the side-by-side
    comparison, or "original" for every frame of the input as it is.
    """

    method: str
    writer: Any
    path: str


@dataclass
class _Failure:
    error: BaseException
    stage: str


def _stage(name: str, work: Callable[[], None], failures: list, stop: threading.Event) -> Callable[[], None]:
    """``work`` as a stage: what it raises is kept for the calling thread, and stops the others."""

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the calling thread
            failures.append(_Failure(error, name))
            stop.set()

    return run


_END = object()


def _get(source: queue.Queue, stop: threading.Event) -> object:
    while not stop.is_set():
        try:
            return source.get(timeout=0.1)
        except queue.Empty:
            continue
    return _END


def pool_clip(
    reader: Any,
    name: str,
    spatial: SpatialGeometry,
    time: TimeGeometry,
    outputs: Sequence[Output],
    *,
    beta: float = 1.0,
    device: str = "cpu",
    audio_sink: Any = None,
    progress: Callable[[int], None] | None = None,
    scorer: Callable[[np.ndarray, dict[str, np.ndarray], list[tuple[int, int]]], None] | None = None,
    compare_width: int = MAX_COMPARE_PANEL_WIDTH,
    max_pixels: int = 0,
) -> ClipStats:
    """Decode, pool and encode a clip; every output's writer is closed on success.

    Args:
        reader: An opened clip (`softpool_cli.media.clip_read.open_clip`).
        name: The input as messages name it.
        spatial: Windows over height and width.
        time: Windows over frames.
        outputs: What to write.
        beta: SoftPool's sharpness.
        device: "cpu" or "cuda".
        audio_sink: A writer whose ``write_audio`` takes the input's audio packets.
        progress: Called with the number of frames decoded, as they are.
        scorer: Called with each chunk's frames, pooled results and windows (the gallery's metrics).
        compare_width: Largest width of a comparison panel.
        max_pixels: Refuse frames with more pixels than this (0: no limit).

    Raises:
        MediaError: the clip is damaged, smaller than a window, over the pixel limit, or an
            output cannot be written (naming that output).
    """
    from softpool_cli.media.clip_read import ClipError

    from softpool_cli.media.clip_read import pixel_limit_problem

    info = reader.info
    problem = pixel_limit_problem(info.width, info.height, max_pixels)
    if problem:  # open_clip checked already, given the limit
        raise MediaError(name, problem)
    frames_per_chunk = max(time.kernel, CHUNK_BYTES // max(1, info.width * info.height * 3))
    if time.fps is None and (time.stride or time.kernel) == time.kernel:
        # Whole windows to a chunk: each batch of windows pools the decoded chunk in place.
        frames_per_chunk -= frames_per_chunk % time.kernel
    stop = threading.Event()
    failures: list[_Failure] = []
    decoded: queue.Queue = queue.Queue(QUEUE_CHUNKS)
    pooled: queue.Queue = queue.Queue(QUEUE_CHUNKS)

    def read() -> None:
        def pass_audio(packet: Any) -> None:
            _put(pooled, ("audio", packet), stop)

        for chunk in reader.chunks(frames_per_chunk, audio_sink=pass_audio if audio_sink is not None else None):
            if not _put(decoded, chunk, stop):
                return
        _put(decoded, _END, stop)

    def write() -> None:
        while True:
            item = _get(pooled, stop)
            if item is _END:
                return
            kind, payload = item
            if kind == "audio":
                audio_sink.write_audio(payload)
                continue
            for output in outputs:
                if output.method not in payload:
                    continue
                try:
                    output.writer.write(payload[output.method])
                except (ClipError, OSError, Exception) as error:
                    raise _WriteError(output.path, error) from error

    stats = ClipStats()
    # Waited for whatever happens: a decoder or encoder left running while the process unwinds
    # would write into files being removed, and can crash it as it exits.
    stages = Workers(
        [_stage("read", read, failures, stop), _stage("write", write, failures, stop)], names=["read", "write"]
    )
    try:
        _pool_stage(decoded, pooled, stop, failures, name, spatial, time, info.time_base, outputs, beta, device,
                    stats, progress, scorer, compare_width)  # fmt: skip
    except BaseException:
        stop.set()
        interrupted = stages.wait(on_interrupt=stop.set)
        # A stage's own failure (it stopped this one) tells more than the stop.
        _raise_first(failures, name)
        if interrupted is not None:
            raise interrupted from None
        raise
    interrupted = stages.wait(on_interrupt=stop.set)
    if interrupted is not None:
        raise interrupted
    _raise_first(failures, name)
    for output in outputs:
        try:
            output.writer.close()
        except (ClipError, OSError) as error:
            # strerror alone: the error's file name is the hidden temporary, not the output.
            detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise MediaError(output.path, f"cannot write: {detail}") from None
    return stats


class _WriteError(Exception):
    def __init__(self, path: str, error: BaseException) -> None:
        super().__init__(str(error))
        self.path = path
        self.error = error


def _raise_first(failures: list[_Failure], name: str) -> None:
    from softpool_cli.media.clip_read import ClipError

    if not failures:
        return
    failure = failures[0]
    error = failure.error
    if isinstance(error, _WriteError):
        inner = error.error
        detail = inner.strerror if isinstance(inner, OSError) and inner.strerror else str(inner)
        raise MediaError(error.path, f"cannot write: {detail}") from None
    if isinstance(error, ClipError):
        raise MediaError(name, str(error)) from None
    if isinstance(error, SoftpoolError | OSError | MemoryError | KeyboardInterrupt):
        raise error
    try:
        import av

        if isinstance(error, av.FFmpegError):
            raise MediaError(name, f"cannot read ({error.strerror or error})") from None
    except ImportError:  # pragma: no cover
        pass
    raise error


def _pool_stage(decoded, pooled, stop, failures, name, spatial, time, time_base, outputs, beta, device,
                stats, progress, scorer, compare_width) -> None:  # fmt: skip
    """The calling thread's part: gather frames into windows, pool them, hand them on."""
    from softpool_cli.media.clip_read import FrameChunk

    methods = sorted({output.method for output in outputs if output.method not in ("compare", "original")})
    compare = any(output.method == "compare" for output in outputs)
    if compare:
        methods = sorted(set(methods) | {"soft", "max", "avg"})
    windows = None
    spatial_windows: tuple[AxisWindows, AxisWindows] | None = None
    comparison = None
    buffer = _FrameBuffer()
    while True:
        check_interrupted()
        item = _get(decoded, stop)
        if item is _END:
            if failures:
                return
            if stats.frames_in == 0:
                raise MediaError(name, "clip has no frames")
            if time.fps is None and stats.frames_in < time.kernel:
                raise MediaError(
                    name, f"clip has {stats.frames_in} frame{'s' if stats.frames_in != 1 else ''}, fewer than the "
                    f"{time.kernel}-frame window (use a smaller --time-factor)",
                )  # fmt: skip
            ready = windows.finish()
            final = True
        else:
            chunk: FrameChunk = item
            if spatial_windows is None:
                height, width = chunk.pixels.shape[1:3]
                stats.size_in = (width, height)
                spatial_windows = _spatial_windows(name, spatial, height, width)
                windows = TimeWindows(time, time_base)
                if compare:
                    from softpool_cli.pipeline.clip_compare import ClipComparison

                    comparison = ClipComparison(height, width, beta, compare_width)
            buffer.add(chunk)
            if any(output.method == "original" for output in outputs):
                _put(pooled, ("video", {"original": chunk}), stop)  # every frame, as decoded
            stats.frames_in += len(chunk.pixels)
            if progress is not None:
                progress(len(chunk.pixels))
            ready = windows.add(chunk.starts)
            final = False
        if ready:
            _pool_windows(buffer, ready, spatial_windows, methods, outputs, comparison, beta, device,
                          pooled, stop, stats, scorer)  # fmt: skip
        if final:
            _put(pooled, _END, stop)
            return


def _spatial_windows(name: str, spatial: SpatialGeometry, height: int, width: int):
    try:
        return spatial.windows(height, width)
    except SoftpoolError as error:
        message = str(error)
        raise MediaError(name, f"frames {message[3:]}" if message.startswith("is ") else message) from None


@dataclass
class _FrameBuffer:
    """Decoded frames not yet pooled by every window that needs them, with their timing."""

    pixels: list[np.ndarray] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    origins: list[tuple[np.ndarray, int]] = field(default_factory=list)  # (chunk, index in it)
    first: int = 0  # index of pixels[0] in the clip

    def add(self, chunk) -> None:
        self.pixels.extend(chunk.pixels)
        self.starts.extend(chunk.starts.tolist())
        self.durations.extend(chunk.durations.tolist())
        self.origins.extend((chunk.pixels, index) for index in range(len(chunk.pixels)))

    def take(self, first: int, end: int) -> np.ndarray:
        """Frames ``first`` to ``end`` as one (T, H, W, 3) array: a view of the decoded chunk
        where they are consecutive frames of one, else a copy."""
        origins = self.origins[first - self.first : end - self.first]
        chunk, start = origins[0]
        if all(array is chunk for array, _ in origins) and origins[-1][1] == start + len(origins) - 1:
            return chunk[start : start + len(origins)]
        return np.stack(self.pixels[first - self.first : end - self.first])

    def drop_before(self, index: int) -> None:
        cut = index - self.first
        if cut > 0:
            del self.pixels[:cut], self.starts[:cut], self.durations[:cut], self.origins[:cut]
            self.first = index


def _pool_windows(buffer, ready, spatial_windows, methods, outputs, comparison, beta, device,
                  pooled, stop, stats, scorer) -> None:  # fmt: skip
    from softpool_cli.media.clip_read import FrameChunk
    from softpool_cli.pixels.pool import pool_windows_array

    first, end = ready[0][0], max(e for _, e in ready)
    frames = buffer.take(first, end)  # (T, H, W, 3)
    time_axis = AxisWindows(tuple(s - first for s, _ in ready), tuple(e - first for _, e in ready), end - first)
    axes = [time_axis, *spatial_windows]
    results = {}
    for method in methods:
        if device == "cpu":
            results[method] = pool_windows_array(frames, axes, method=method, beta=beta)
        else:
            results[method] = _pool_on_gpu(frames, axes, method, beta, device)
    starts = np.array([buffer.starts[s - buffer.first] for s, _ in ready], np.int64)
    durations = np.array([sum(buffer.durations[s - buffer.first : e - buffer.first]) for s, e in ready], np.int64)
    payload = {method: FrameChunk(pixels, starts, durations) for method, pixels in results.items()}
    if comparison is not None:
        firsts = np.stack([buffer.pixels[s - buffer.first] for s, _ in ready])
        payload["compare"] = FrameChunk(comparison.frames(firsts, results), starts, durations)
    if scorer is not None:
        scorer(frames, results, [(s - first, e - first) for s, e in ready])
    if stats.size_out is None:
        any_result = next(iter(results.values()))
        stats.size_out = (any_result.shape[2], any_result.shape[1])
    stats.frames_out += len(ready)
    _put(pooled, ("video", payload), stop)
    # Windows start in order: a later one starts at least one frame after the last one here.
    buffer.drop_before(ready[-1][0] + 1)


def _pool_on_gpu(frames, axes, method, beta, device):
    from softpool_cli.pixels.torch_pixels import pool_with_torch

    forms = [along.regular_form for along in axes]
    if None in forms:
        return pool_with_torch(frames, None, None, method, beta, False, device, tuple(a.count for a in axes))
    kernel = tuple(k for k, _, _ in forms)
    stride = tuple(s for _, s, _ in forms)
    ceil = any(whole < along.count for along, (_, _, whole) in zip(axes, forms))
    return pool_with_torch(frames, kernel, stride, method, beta, ceil, device)
