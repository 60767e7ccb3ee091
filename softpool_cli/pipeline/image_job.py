"""``softpool downsample``'s work for one file: check, read, pool, compare, encode, write.

Everything a result depends on is in `ImageSettings` (picklable), so that the same function
serves the command, its many-file form and batches, in this process or another.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from softpool_cli.media.image_read import DEFAULT_MAX_PIXELS
from softpool_cli.media.image_write import DEFAULT_QUALITY
from softpool_cli.pipeline.geometry import SpatialGeometry
from softpool_cli.pipeline.targets import STDIO, Task

DEFAULT_COMPARE_WIDTH = 1024  # comparison panels at most this wide: four of them fit a screen


@dataclass(frozen=True)
class ImageSettings:
    """How to pool and write images. ``format`` (".png") overrides the output's extension."""

    geometry: SpatialGeometry = field(default_factory=SpatialGeometry)
    method: str = "soft"
    beta: float = 1.0
    device: str = "cpu"
    quality: int = DEFAULT_QUALITY
    strip: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    format: str | None = None
    overwrite: bool = False
    compare: str | None = None  # path of the comparison, for a single task
    compare_width: int = DEFAULT_COMPARE_WIDTH


@dataclass
class ImageOutcome:
    """What one task did, for the summary line."""

    source: str
    target: str
    size_in: tuple[int, int]  # (width, height), upright
    size_out: tuple[int, int]
    notes: list[str]
    pooling_seconds: float


def output_suffix(task: Task, settings: ImageSettings) -> str:
    if settings.format:
        return settings.format
    return Path(task.target).suffix.lower() if task.target != STDIO else ""


def downsample_one(task: Task, settings: ImageSettings) -> ImageOutcome:
    """Pool ``task.source`` into ``task.target`` (and the comparison), all or nothing.

    Raises:
        MediaError: the input cannot be read or pooled, or an output cannot be written.
    """
    from softpool_cli.media.files import check_input_file, check_distinct, check_output_path, write_files_atomically
    from softpool_cli.media.image_read import open_image
    from softpool_cli.media.image_write import IMAGE_EXTENSIONS, encode_image
    from softpool_cli.pipeline.image import pool_image

    source_path, target_path = Path(task.source), Path(task.target)
    compare_path = Path(settings.compare) if settings.compare else None
    data = None
    if task.reads_stdin:
        data = sys.stdin.buffer.read()
    else:
        check_input_file(source_path)
    outputs = [p for p in (None if task.writes_stdout else target_path, compare_path) if p is not None]
    if not task.reads_stdin:
        check_distinct(source_path, *outputs)
    for path in outputs:
        extensions = IMAGE_EXTENSIONS if settings.format is None or path == compare_path else {path.suffix.lower()}
        check_output_path(path, extensions=extensions, overwrite=settings.overwrite)

    source = open_image(task.source, data, max_pixels=settings.max_pixels)
    suffix = output_suffix(task, settings) or _suffix_of_format(source.format)
    methods = [settings.method]
    panel = None
    if compare_path is not None:
        methods = list(dict.fromkeys([settings.method, "soft", "max", "avg"]))
        panel = panel_size(source.display_size, settings.compare_width)
    pooled = pool_image(source, settings.geometry, methods, beta=settings.beta, device=settings.device, panel_size=panel)
    encoded, notes = encode_result(source, pooled, settings.method, suffix, settings)
    contents: dict[Path, bytes] = {}
    if not task.writes_stdout:
        contents[target_path] = encoded
    messages = [f"{task.target}: {note}" for note in notes]
    if compare_path is not None:
        comparison = comparison_image(pooled, settings.beta)
        contents[compare_path], compare_notes = encode_image(comparison, compare_path.suffix)
        messages += [f"{compare_path}: {note}" for note in compare_notes]
    write_files_atomically(contents, overwrite=settings.overwrite)
    if task.writes_stdout:
        sys.stdout.buffer.write(encoded)
        sys.stdout.buffer.flush()
    height, width = source.display_size
    out_height, out_width = pooled.upright_size
    return ImageOutcome(task.source, task.target, (width, height), (out_width, out_height), messages, pooled.seconds)


def encode_result(source, pooled, method: str, suffix: str, settings: ImageSettings) -> tuple[bytes, list[str]]:
    """One method's result encoded as ``suffix``, upright, with the input's metadata."""
    from softpool_cli.media.image_write import encode_image

    result = pooled.results[method]
    height, width = source.display_size
    out_height, out_width = pooled.upright_size
    return encode_image(
        result.buffer, suffix, shape=result.shape, sample_type=result.sample_type, metadata=source.metadata,
        orientation=pooled.orientation, scale=(out_width / width, out_height / height),
        quality=settings.quality, strip=settings.strip, stored_orientation=source.orientation,
    )  # fmt: skip


def _suffix_of_format(name: str) -> str:
    return {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}.get(name, ".png")


def comparison_image(pooled, beta: float, methods=("soft", "max", "avg")):
    """Original | each method, labelled, upright: (H, W, 3) uint8 NumPy."""
    from softpool_cli.media.compare import ComparisonLayout, comparison_labels

    original = pooled.original_panel.array(pooled.orientation)
    layout = ComparisonLayout(original.shape[0], original.shape[1], comparison_labels(methods, beta))
    return layout.compose([original, *(pooled.results[m].array(pooled.orientation) for m in methods)])


def panel_size(size: tuple[int, int], max_width: int) -> tuple[int, int]:
    """A comparison panel's (height, width): the picture's, reduced to ``max_width`` if wider."""
    height, width = size
    if width <= max_width:
        return height, width
    return max(1, round(height * max_width / width)), max_width
