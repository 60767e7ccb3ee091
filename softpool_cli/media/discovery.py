"""Finding the gallery's inputs: files and folders searched recursively, media told apart by content.

Pillow names still images and animated GIF/PNG/WebP; PyAV names video containers. A file
neither recognises is skipped when found in a folder, unless its extension says it should be
media: then it is kept, so that the reader reports why it cannot be read. Hidden files and
folders, and the gallery's own output folder, are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Extensions that promise media: such a file is reported as failed when it cannot be read.
MEDIA_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"}
)
CLIP_SUFFIXES = frozenset({".gif", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")  # a multi-picture JPEG (MPO) opens as JPEG
_ANIMATED_FORMATS = {"GIF", "PNG", "WEBP"}


@dataclass(frozen=True)
class Candidate:
    """A file to put in the gallery: its path, its name in the README, image or clip."""

    source: Path
    name: str
    kind: str | None  # None: not recognised as an image or a clip


def classify(path: Path) -> str | None:
    """``"image"``, ``"clip"`` or None (neither), from the file's content.

    Falls back on the extension only when the content is unreadable, so that a damaged
    ``photo.jpg`` is reported rather than skipped.
    """
    from PIL import Image, UnidentifiedImageError

    suffix = path.suffix.lower()
    by_suffix = ("clip" if suffix in CLIP_SUFFIXES else "image") if suffix in MEDIA_SUFFIXES else None
    try:
        if path.stat().st_size == 0:
            return by_suffix
        with Image.open(path, formats=_PILLOW_FORMATS) as image:
            animated = image.format in _ANIMATED_FORMATS and getattr(image, "n_frames", 1) > 1
            return "clip" if animated else "image"
    except UnidentifiedImageError:
        pass
    except Exception:  # noqa: BLE001 - a known image format with a damaged header
        return by_suffix or "image"
    return "clip" if _is_video_container(path) else by_suffix


def _is_video_container(path: Path) -> bool:
    """Whether PyAV opens ``path`` as a container with a video track (not a still image)."""
    import av

    try:
        with av.open(str(path)) as container:
            name = container.format.name
            # Image demuxers mean a still picture; "tty" renders text files as video.
            return bool(container.streams.video) and not (name in ("image2", "tty") or name.endswith("_pipe"))
    except Exception:  # noqa: BLE001 - anything PyAV cannot open is not a clip
        return False


def _walk(folder: Path, skip: Path) -> Iterator[Path]:
    """Files under ``folder``, sorted, without hidden entries, symlinked folders or ``skip``."""
    for root, folders, files in os.walk(folder):
        root_path = Path(root)
        folders[:] = sorted(
            name for name in folders if not name.startswith(".") and (root_path / name).resolve() != skip
        )
        for name in sorted(files):
            if not name.startswith("."):
                yield root_path / name


def discover(sources: Sequence[Path], out_dir: Path) -> list[Candidate]:
    """The gallery's inputs, in the order given (folders sorted), each file once."""
    skip = out_dir.resolve()
    seen: set[Path] = set()
    candidates = []
    for source in sources:
        if source.is_dir():
            found = [(path, path.relative_to(source).as_posix(), False) for path in _walk(source, skip)]
        else:
            found = [(source, source.name, True)]
        for path, name, explicit in found:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            kind = classify(path)
            if kind is not None or explicit:
                candidates.append(Candidate(path, name, kind))
    return candidates


def output_bases(candidates: Sequence[Candidate]) -> list[str]:
    """A distinct output name (relative path without suffix) for each candidate.

    ``photo.jpg`` becomes ``photo``; two inputs that would share one (``a.jpg`` and ``a.png``)
    keep their extension in it (``a_jpg``, ``a_png``), and a number if that is not enough.
    """
    stems = [Path(candidate.name).with_suffix("").as_posix() for candidate in candidates]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    bases: list[str] = []
    taken: set[str] = set()
    for candidate, stem in zip(candidates, stems):
        base = stem
        if counts[stem] > 1:
            suffix = Path(candidate.name).suffix.lstrip(".").lower()
            base = f"{stem}_{suffix}" if suffix else stem
        unique, number = base, 2
        while unique in taken:
            unique, number = f"{base}_{number}", number + 1
        taken.add(unique)
        bases.append(unique)
    return bases
