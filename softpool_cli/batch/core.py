"""The work for one file of a batch, the same on every engine: ``pool_file(source, target, settings)``.

Sources and targets are local paths or fsspec URLs. A remote source is copied to a local
temporary file first (the decoders want a file they can seek), the result is made locally, and
then stored under the target's name in one step: renamed over it on a local disk, uploaded
whole to an object store (an object appears complete or not at all). So an interrupted batch
never leaves a partial file at an output path.

The pooling itself is `softpool downsample`'s and `softpool video`'s (`pipeline.image_job`,
`pipeline.clip_job`): a batch's output is byte for byte what those commands write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from softpool_cli.errors import describe_failure, is_bug
from softpool_cli.pipeline.clip_job import ClipSettings
from softpool_cli.pipeline.image_job import ImageSettings

# Extensions of files that promise media: when one cannot be read it is a failure, not noise.
MEDIA_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"}
)


@dataclass(frozen=True)
class BatchSettings:
    """How a batch pools: one setting for images, one for clips; ``format`` (".png", ".mkv")
    changes every output's format of its kind, None keeps each file's own."""

    image: ImageSettings = field(default_factory=ImageSettings)
    clip: ClipSettings = field(default_factory=ClipSettings)
    image_format: str | None = None
    clip_format: str | None = None
    debug: bool = False  # re-raise bugs (not bad files) with their traceback

    def stamp(self) -> str:
        """A short hash of everything the outputs depend on, for the up-to-date record (not
        the device: CPU and GPU results agree to rounding; not debug)."""
        from softpool_cli import __version__

        shaping = asdict(self)
        shaping.pop("debug")
        for kind in ("image", "clip"):
            shaping[kind].pop("device")
        data = json.dumps({"settings": shaping, "softpool": __version__}, sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    def suffix(self, kind: str, source_suffix: str) -> str:
        """The output suffix of a file of ``kind`` whose input ends in ``source_suffix``."""
        from softpool_cli.media.clip_write import OUTPUT_FORMATS as CLIP_FORMATS
        from softpool_cli.media.image_write import IMAGE_EXTENSIONS

        source_suffix = source_suffix.lower()
        if kind == "image":
            return self.image_format or (source_suffix if source_suffix in IMAGE_EXTENSIONS else ".png")
        return self.clip_format or (source_suffix if source_suffix in CLIP_FORMATS else ".mp4")


@dataclass
class FileResult:
    """What became of one file.

    Attributes:
        source, target: As given.
        status: "done", "failed" or "ignored" (found in a folder, not media).
        reason: The one-line reason of a failure.
        kind: "image" or "clip", when known.
        seconds: Time the file took.
        fingerprint: The source's size and modification time (or ETag) when it was read.
    """

    source: str
    target: str
    status: str
    reason: str = ""
    kind: str | None = None
    seconds: float = 0.0
    fingerprint: str = ""


def pool_file(source: str, target: str, settings: BatchSettings, fingerprint: str = "") -> FileResult:
    """Pool one image or clip from ``source`` into ``target``.

    ``target`` is the output's path without a suffix: the suffix follows the file's kind and
    the settings (`BatchSettings.suffix`). Never raises for a bad file: the result says what
    went wrong. Raises on interruption and, with ``settings.debug``, on bugs.
    """
    started = time.perf_counter()
    try:
        kind, written = _pool(source, target, settings)
    except Exception as error:  # noqa: BLE001 - one bad file never stops a batch
        if settings.debug and is_bug(error):
            raise
        return FileResult(source, target, "failed", describe_failure(error, source), None, time.perf_counter() - started)
    if kind is None:
        return FileResult(source, target, "ignored", seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    return FileResult(source, written, "done", kind=kind, seconds=seconds, fingerprint=fingerprint)


def pool_group(items: list[tuple[str, str, str]], settings: BatchSettings) -> list[FileResult]:
    """`pool_file` for each (source, target, fingerprint): a unit of work for a worker."""
    return [pool_file(source, target, settings, fingerprint) for source, target, fingerprint in items]


def _pool(source: str, target: str, settings: BatchSettings) -> tuple[str | None, str]:
    import fsspec

    from softpool_cli.errors import MediaError
    from softpool_cli.media.discovery import classify
    from softpool_cli.pipeline.clip_job import video_one
    from softpool_cli.pipeline.image_job import downsample_one
    from softpool_cli.pipeline.targets import Task

    with tempfile.TemporaryDirectory(prefix="softpool-batch-") as scratch:
        local_source = _local_copy(source, Path(scratch))
        kind = classify(local_source)
        if kind is None:
            if Path(source).suffix.lower() in MEDIA_SUFFIXES:
                raise MediaError(source, "not an image or a clip softpool can read")
            return None, target
        target = target + settings.suffix(kind, Path(source).suffix)
        target_fs, target_path = fsspec.core.url_to_fs(target)
        local_target = Path(scratch) / ("out" + Path(target_path).suffix)
        if kind == "image":
            downsample_one(Task(str(local_source), str(local_target)), settings.image)
        else:
            video_one(Task(str(local_source), str(local_target)), settings.clip)
        _store(local_target, target_fs, target_path)
    return kind, target


def _local_copy(source: str, scratch: Path) -> Path:
    """``source`` as a local file: itself when it is one, else a copy in ``scratch``."""
    import fsspec

    filesystem, path = fsspec.core.url_to_fs(source)
    if _is_local(filesystem):
        return Path(path)
    copy = scratch / ("in" + Path(path).suffix)
    filesystem.get_file(path, str(copy))
    return copy


def _store(local: Path, filesystem, path: str) -> None:
    """Put a finished local file at ``path`` in one step (rename, or one upload)."""
    if _is_local(filesystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        from softpool_cli.media.files import remove_stale_temporaries, temporary_name

        remove_stale_temporaries(target)  # a killed worker's
        temporary = target.with_name(temporary_name(target, "batch"))
        try:
            shutil.copyfile(local, temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return
    parent = path.rsplit("/", 1)[0]
    if parent and parent != path:
        filesystem.makedirs(parent, exist_ok=True)
    filesystem.put_file(str(local), path)


def _is_local(filesystem) -> bool:
    protocol = filesystem.protocol
    protocols = protocol if isinstance(protocol, (tuple, list)) else (protocol,)
    return "file" in protocols or "local" in protocols
