"""``softpool video``'s work for one clip: check, read, pool, compare, encode, write.

Everything a result depends on is in `ClipSettings` (picklable), so that the same function
serves the command, its many-file form and batches.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from softpool_cli.errors import MediaError
from softpool_cli.pipeline.geometry import SpatialGeometry, TimeGeometry
from softpool_cli.pipeline.targets import Task

# Per frame: a clip holds several frames at once (windows, queues), so less than a still image's
# 200 MP; 50 MP is above 8K (33 MP).
DEFAULT_MAX_PIXELS = 50_000_000
# Comparisons are for looking at: a fast preset keeps them cheap next to the result itself.
COMPARE_ENCODER = {"crf": 18, "preset": "veryfast"}


@dataclass(frozen=True)
class ClipSettings:
    """How to pool and write clips. ``format`` (".mkv") overrides the output's extension."""

    spatial: SpatialGeometry = field(default_factory=lambda: SpatialGeometry(even=True))
    time: TimeGeometry = field(default_factory=TimeGeometry)
    method: str = "soft"
    beta: float = 1.0
    device: str = "cpu"
    crf: int | None = None
    preset: str | None = None
    format: str | None = None
    overwrite: bool = False
    compare: str | None = None
    compare_width: int = 960
    max_pixels: int = DEFAULT_MAX_PIXELS
    quiet: bool = True


@dataclass
class ClipOutcome:
    source: str
    target: str
    frames_in: int
    frames_out: int
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    notes: list[str]


def video_one(task: Task, settings: ClipSettings) -> ClipOutcome:
    """Pool ``task.source`` into ``task.target`` (and the comparison), all or nothing.

    Standard input is first copied to a temporary file (Pillow and the MP4 demuxer seek);
    standard output gets the finished file.

    Raises:
        MediaError: the clip cannot be read or pooled, or an output cannot be written.
    """
    from softpool_cli.media.clip_write import OUTPUT_FORMATS, STREAMABLE_FORMATS

    with ExitStack() as stack:
        source_path = Path(task.source)
        if task.reads_stdin:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="softpool-")))
            source_path = scratch / "stdin"
            with open(source_path, "wb") as copy:
                shutil.copyfileobj(sys.stdin.buffer, copy)
        target_path = Path(task.target)
        suffix = settings.format or (target_path.suffix.lower() if not task.writes_stdout else None)
        if task.writes_stdout:
            suffix = suffix or ".mkv"
            if OUTPUT_FORMATS.get(suffix) not in STREAMABLE_FORMATS:
                raise MediaError("-", f"standard output takes a format that streams (mkv, webm, gif), not {suffix[1:]}")
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="softpool-")))
            target_path = scratch / f"out{suffix}"
        outcome = _pool_file(task, source_path, target_path, suffix, settings)
        if task.writes_stdout:
            with open(target_path, "rb") as result:
                shutil.copyfileobj(result, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return outcome


def _pool_file(task: Task, source_path: Path, target_path: Path, suffix: str, settings: ClipSettings) -> ClipOutcome:
    from softpool_cli.media.clip_read import ClipError, open_clip
    from softpool_cli.media.clip_write import OUTPUT_FORMATS, EncoderSettings, encoded_size, needs_even_size, open_writer
    from softpool_cli.media.files import atomic_outputs, check_distinct, check_input_file, check_output_path
    from softpool_cli.pipeline.clip import Output, pool_clip

    name = task.source
    compare_path = Path(settings.compare) if settings.compare else None
    if not task.reads_stdin:
        check_input_file(source_path)
    outputs_paths = [p for p in (None if task.writes_stdout else target_path, compare_path) if p is not None]
    if not task.reads_stdin:
        check_distinct(source_path, *outputs_paths)
    for path in outputs_paths:
        extensions = OUTPUT_FORMATS if settings.format is None or path == compare_path else {path.suffix.lower()}
        check_output_path(path, extensions=extensions, overwrite=settings.overwrite)
    try:
        reader = open_clip(source_path, settings.max_pixels)
    except ClipError as error:
        raise MediaError(name, str(error)) from None
    notes: list[str] = []
    with ExitStack() as stack:
        stack.callback(reader.close)
        info = reader.info
        format_name = OUTPUT_FORMATS[suffix]
        time = settings.time
        rate = Fraction(time.fps).limit_denominator(1001) if time.fps else info.fps / (time.stride or time.kernel)
        timing = {"fps": rate, "time_base": info.time_base, "loop": info.loop}
        keep_audio = info.audio_codec is not None and format_name in ("mp4", "mov", "matroska", "webm")
        if info.audio_codec is not None and not keep_audio:
            notes.append(f"{task.target}: {suffix[1:].upper()} has no audio; the audio track is not kept")
        targets = [target_path] + ([compare_path] if compare_path else [])
        temporaries = stack.enter_context(atomic_outputs(*targets, overwrite=settings.overwrite))
        encoder = EncoderSettings(crf=settings.crf, preset=settings.preset)
        writers = []
        try:
            writer = open_writer(temporaries[0], format_name, audio_stream=reader.audio_stream if keep_audio else None,
                                 encoder=encoder, **timing)  # fmt: skip
        except ClipError as error:
            raise MediaError(task.target, str(error)) from None
        writers.append(writer)
        outputs = [Output(settings.method, writer, task.target)]
        if compare_path is not None:
            compare_format = OUTPUT_FORMATS[compare_path.suffix.lower()]
            try:
                compare_writer = open_writer(temporaries[1], compare_format, encoder=EncoderSettings(**COMPARE_ENCODER), **timing)
            except ClipError as error:
                raise MediaError(str(compare_path), str(error)) from None
            writers.append(compare_writer)
            outputs.append(Output("compare", compare_writer, str(compare_path)))
        # A side that follows the aspect ratio is made even only where the codec needs it.
        spatial = replace(settings.spatial, even=settings.spatial.even and needs_even_size(format_name))
        try:
            stats = pool_clip(
                reader, name, spatial, settings.time, outputs, beta=settings.beta, device=settings.device,
                audio_sink=writer if keep_audio else None, progress=_progress(name, info, settings.quiet),
                compare_width=settings.compare_width, max_pixels=settings.max_pixels,
            )  # fmt: skip
        except BaseException:
            for each in writers:
                each.abort()
            raise
    width, height = stats.size_out
    encoded = encoded_size(width, height, format_name)
    if encoded != (width, height):
        notes.append(
            f"{task.target}: H.264 needs an even width and height; the pooled {width}x{height} frames got "
            "their last column/row repeated"
        )
    return ClipOutcome(task.source, task.target, stats.frames_in, stats.frames_out, stats.size_in, encoded, notes)


def _progress(name: str, info, quiet: bool):
    """A tqdm bar over decoded frames on an interactive stderr, else nothing."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=info.frame_count, unit="frame", desc=Path(name).name, leave=False, file=sys.stderr)
    return bar.update
