"""The work the gallery does for one input: pool it with every method, compare, score.

A job runs in a worker process (or in the main process with ``--jobs 1``), so it takes
and returns plain, picklable data. Images go through the same steps as
``softpool downsample`` (:func:`~softpool_cli.images.read_image`,
:func:`~softpool_cli.pooling.pool_array`, :func:`~softpool_cli.images.encode_image`,
:class:`~softpool_cli.compare.ComparisonLayout`), so a gallery image is byte for byte what
``softpool downsample IN OUT --method M`` writes. Clips are pooled in time, height and width
by the factor with the steps of ``softpool video`` (a last window with fewer frames pools
the frames there are) and written as GIF, the one animated format GitHub shows inline in
an ``<img>`` tag; an original that is not a GIF gets a GIF copy for the README.

All outputs of one input are written together through temporary files (see
:func:`~softpool_cli.files.atomic_outputs`): an error or Ctrl-C leaves none of them half
written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softpool_cli.errors import MediaError

# Bump when the outputs change for the same settings, so older galleries are redone.
OUTPUT_FORMAT_VERSION = 1
# Formats a browser (and so GitHub) shows in an <img> tag, linked as they are; others get a copy.
BROWSER_IMAGE_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}
METHOD_LABELS = {"soft": "SoftPool", "max": "max pool", "avg": "avg pool"}


@dataclass(frozen=True)
class JobSettings:
    """What the outputs depend on besides the input's content."""

    factor: int
    methods: tuple[str, ...]
    beta: float = 1.0
    device: str = "cpu"

    def stamp(self) -> dict[str, object]:
        """The settings that invalidate earlier outputs when they change (not the device:
        CPU and GPU results agree to rounding)."""
        from softpool_cli import __version__  # the distribution's version, without importing torch

        return {
            "factor": self.factor,
            "methods": list(self.methods),
            "beta": self.beta,
            "softpool": __version__,
            "format": OUTPUT_FORMAT_VERSION,
        }


@dataclass(frozen=True)
class Job:
    """One input to pool.

    Attributes:
        source: The input file.
        kind: ``"image"`` or ``"clip"`` (found by content).
        base: Output path without suffix; outputs are ``{base}_{role}{suffix}``.
        out_dir: The gallery folder, where README.md goes.
        settings: How to pool.
    """

    source: Path
    kind: str
    base: Path
    out_dir: Path
    settings: JobSettings


@dataclass
class Outcome:
    """What a job made.

    Attributes:
        outputs: Role ("original", a method, "compare") -> path relative to ``out_dir``.
        scores: Method -> (PSNR, SSIM).
        sha256: Hash of the input's content, for the up-to-date check.
        size: The input's size when it was hashed.
        mtime_ns: The input's modification time when it was hashed; taken before hashing,
            so a file changed meanwhile looks changed to the next run.
    """

    outputs: dict[str, str]
    scores: dict[str, tuple[float, float]]
    sha256: str
    size: int
    mtime_ns: int


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def relative_link(target: Path, out_dir: Path) -> str | None:
    """``target`` as a POSIX path relative to ``out_dir``, None if there is none (other drive)."""
    try:
        return Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix()
    except ValueError:
        return None


def _output(job: Job, role: str, suffix: str) -> Path:
    return job.base.with_name(f"{job.base.name}_{role}{suffix}")


def _relative(job: Job, path: Path) -> str:
    return path.relative_to(job.out_dir).as_posix()


def run_job(job: Job) -> Outcome:
    """Make every output of ``job`` and score each method.

    Raises:
        MediaError: the input cannot be read or pooled, or an output cannot be written.
    """
    job.base.parent.mkdir(parents=True, exist_ok=True)
    status = job.source.stat()
    sha256 = file_sha256(job.source)
    if job.kind == "image":
        outputs, scores = _make_image(job)
    else:
        outputs, scores = _make_clip(job)
    return Outcome(outputs, scores, sha256, size=status.st_size, mtime_ns=status.st_mtime_ns)


def _comparison_labels(methods: Sequence[str]) -> list[str]:
    return ["original"] + [METHOD_LABELS[method] for method in methods]


# ------------------------------------------------------------------------------ images


def _make_image(job: Job) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    from softpool_cli.compare import ComparisonLayout
    from softpool_cli.files import write_files_atomically
    from softpool_cli.images import encode_image, read_image
    from softpool_cli.metrics import image_scores
    from softpool_cli.pooling import pool_array, pooled_shape

    settings = job.settings
    kernel = (settings.factor, settings.factor)
    image = read_image(job.source)
    height, width = image.pixels.shape[:2]
    if 0 in pooled_shape((height, width), kernel):
        raise MediaError(
            job.source,
            f"image is {width}x{height} pixels, smaller than the {settings.factor}x{settings.factor} window "
            "(use a smaller --factor)",
        )
    results = {
        method: pool_array(
            image.pixels, kernel, kernel, method=method, beta=settings.beta, device=settings.device
        )
        for method in settings.methods
    }
    # Browser formats keep their format (as `softpool downsample IN OUT` would); TIFF and BMP become PNG.
    suffix = BROWSER_IMAGE_FORMATS.get(image.format, ".png")
    contents: dict[Path, bytes] = {}
    outputs: dict[str, str] = {}
    original_link = relative_link(job.source, job.out_dir) if image.format in BROWSER_IMAGE_FORMATS else None
    if original_link is None:
        preview = _output(job, "original", ".png")
        contents[preview], _ = encode_image(image.pixels, ".png", icc_profile=image.icc_profile)
        original_link = _relative(job, preview)
    outputs["original"] = original_link
    for method, pooled in results.items():
        target = _output(job, method, suffix)
        contents[target], _ = encode_image(pooled, suffix, icc_profile=image.icc_profile)
        outputs[method] = _relative(job, target)
    layout = ComparisonLayout(height, width, _comparison_labels(settings.methods))
    comparison = layout.compose([image.pixels, *results.values()])
    target = _output(job, "compare", suffix)
    contents[target], _ = encode_image(comparison, suffix)
    outputs["compare"] = _relative(job, target)
    write_files_atomically(contents, overwrite=True)

    scores = {}
    for method, pooled in results.items():
        result = image_scores(image.pixels, pooled, settings.factor)
        scores[method] = (result.psnr, result.ssim)
    return outputs, scores


# ------------------------------------------------------------------------------- clips


class _ClipComparison:
    """Comparison frames as ``softpool video --compare`` makes them, for any subset of methods:
    the first original frame of each window, then each method's pooled frame."""

    def __init__(self, height: int, width: int, methods: Sequence[str]) -> None:
        from softpool_cli.compare import ComparisonLayout
        from softpool_cli.video import MAX_COMPARE_PANEL_WIDTH

        panel = None
        if width > MAX_COMPARE_PANEL_WIDTH:
            scale = MAX_COMPARE_PANEL_WIDTH / width
            panel = (max(1, round(height * scale)), MAX_COMPARE_PANEL_WIDTH)
        self._layout = ComparisonLayout(height, width, _comparison_labels(methods), panel_size=panel)
        self._shrink_to = panel
        self._methods = tuple(methods)

    def frames(self, originals: np.ndarray, results: dict[str, np.ndarray]) -> np.ndarray:
        import cv2

        composed = []
        for index, original in enumerate(originals):
            if self._shrink_to is not None:
                original = cv2.resize(original, self._shrink_to[::-1], interpolation=cv2.INTER_AREA)
            composed.append(self._layout.compose([original, *(results[method][index] for method in self._methods)]))
        return np.stack(composed)  # (T', H, W, 3)


def _check_clip_fits(path: Path, count: int, height: int, width: int, factor: int) -> None:
    """Refuse a clip smaller than one window (``count`` is the first chunk's length, at least
    one window unless the clip is shorter)."""
    if count < factor:
        raise MediaError(
            path, f"clip has {count} frame(s), fewer than the {factor}-frame window (use a smaller --factor)"
        )
    if height < factor or width < factor:
        raise MediaError(
            path,
            f"frames are {width}x{height} pixels, smaller than the {factor}x{factor} window (use a smaller --factor)",
        )


def _make_clip(job: Job) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """Pool a clip chunk by chunk as ``softpool video`` does, writing every output in one pass."""
    from softpool_cli.clips import ClipError, FrameChunk, open_clip, open_writer
    from softpool_cli.files import atomic_outputs
    from softpool_cli.metrics import ClipScorer, window_step
    # The pooling step of `softpool video` (private there: see the module docstring).
    from softpool_cli.video import CHUNK_BYTES, _pool_windows

    settings = job.settings
    factor = settings.factor
    window = (factor, factor, factor)  # (frames, height, width)
    try:
        reader = open_clip(job.source)
    except ClipError as error:
        raise MediaError(job.source, str(error)) from None
    try:
        info = reader.info
        original_link = relative_link(job.source, job.out_dir) if info.container == "GIF" else None
        targets = {method: _output(job, method, ".gif") for method in settings.methods}
        targets["compare"] = _output(job, "compare", ".gif")
        if original_link is None:
            targets["original"] = _output(job, "original", ".gif")  # GitHub shows no MP4 in <img>
        windows = -(-info.frame_count // factor) if info.frame_count else None
        scorers = {method: ClipScorer(factor, factor, window_step(windows)) for method in settings.methods}
        windows_per_chunk = max(1, min(64, CHUNK_BYTES // max(1, factor * info.width * info.height * 3)))
        frames_in = 0
        comparison: _ClipComparison | None = None
        with atomic_outputs(*targets.values(), overwrite=True) as temporaries:
            writers = {
                role: open_writer(temporary, "gif", fps=info.fps / factor, time_base=info.time_base, loop=info.loop)
                for role, temporary in zip(targets, temporaries)
            }
            try:
                for chunk in reader.chunks(windows_per_chunk * factor):
                    count, height, width = chunk.pixels.shape[:3]
                    if frames_in == 0:
                        _check_clip_fits(job.source, count, height, width, factor)
                        comparison = _ClipComparison(height, width, settings.methods)
                    frames_in += count
                    if "original" in writers:
                        writers["original"].write(chunk)
                    results = {
                        method: _pool_windows(chunk.pixels, window, method, settings.beta, settings.device)
                        for method in settings.methods
                    }  # each (ceil(T / factor), H', W', 3)
                    starts = chunk.starts[::factor]
                    durations = np.add.reduceat(chunk.durations, np.arange(0, count, factor))
                    for method, pooled in results.items():
                        writers[method].write(FrameChunk(pooled, starts, durations))
                        scorers[method].add(chunk.pixels, pooled)
                    composed = comparison.frames(chunk.pixels[::factor], results)  # type: ignore[union-attr]
                    writers["compare"].write(FrameChunk(composed, starts, durations))
                for writer in writers.values():
                    writer.close()
            except BaseException:
                for writer in writers.values():
                    writer.abort()
                raise
    except ClipError as error:
        raise MediaError(job.source, str(error)) from None
    finally:
        reader.close()

    outputs = {role: _relative(job, path) for role, path in targets.items()}
    if original_link is not None:
        outputs["original"] = original_link
    scores = {}
    for method, scorer in scorers.items():
        result = scorer.result()
        scores[method] = (result.psnr, result.ssim)
    return outputs, scores
