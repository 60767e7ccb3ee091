"""The work the gallery does for one input: pool it with every method, compare, score.

A job runs in a worker process (or in the main process with ``--jobs 1``), so it takes
and returns plain, picklable data. Images go through :func:`~softpool_cli.pipeline.image.pool_image`,
the steps of ``softpool downsample``, so a gallery image is byte for byte what
``softpool downsample IN OUT --method M`` writes. Clips are pooled in time, height and width
by the factor with the steps of ``softpool video`` (:func:`~softpool_cli.pipeline.clip.pool_windows`,
:class:`~softpool_cli.pipeline.clip.Comparison`). The pooled clips are written as GIF, which GitHub
shows inline in an ``<img>`` tag; an original that is not a GIF gets a GIF copy for the
README. The clip comparison, which the README links rather than shows, is an MP4 (H.264):
four full-size panels as GIF came to several MB per clip (256 colours per frame, no
inter-frame compression), and its palette would blur the very differences the comparison
is there to show; as MP4 it is a few hundred kB at near-lossless quality.

All outputs of one input are written together through temporary files (see
:func:`~softpool_cli.media.files.atomic_outputs`): an error or Ctrl-C leaves none of them half
written.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


from softpool_cli.errors import MediaError

# Bump when the outputs change for the same settings, so older galleries are redone.
OUTPUT_FORMAT_VERSION = 2  # 2: octree-quantised GIFs, MP4 clip comparisons
# Formats a browser (and so GitHub) shows in an <img> tag, linked as they are; others get a copy.
BROWSER_IMAGE_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}
CLIP_COMPARISON_FORMAT = "mp4"


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


# ------------------------------------------------------------------------------ images


def _make_image(job: Job) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """Pool an image as ``softpool downsample`` does, so each result is byte for byte its output."""
    from softpool_cli.gallery.metrics import image_scores
    from softpool_cli.media.files import write_files_atomically
    from softpool_cli.media.image_read import open_image, read_image
    from softpool_cli.media.image_write import encode_image
    from softpool_cli.pipeline.geometry import SpatialGeometry
    from softpool_cli.pipeline.image import pool_image
    from softpool_cli.pipeline.image_job import DEFAULT_COMPARE_WIDTH, ImageSettings, comparison_image, encode_result
    from softpool_cli.pipeline.image_job import panel_size

    settings = job.settings
    source = open_image(job.source)
    geometry = SpatialGeometry(kernel=(settings.factor, settings.factor))
    image_settings = ImageSettings(geometry=geometry, beta=settings.beta, device=settings.device)
    panel = panel_size(source.display_size, DEFAULT_COMPARE_WIDTH)
    methods = list(dict.fromkeys([*settings.methods, "soft", "max", "avg"]))
    pooled = pool_image(source, geometry, methods, beta=settings.beta, device=settings.device, panel_size=panel)
    # Browser formats keep their format (as `softpool downsample IN OUT` would); TIFF and BMP become PNG.
    suffix = BROWSER_IMAGE_FORMATS.get(source.format, ".png")
    contents: dict[Path, bytes] = {}
    outputs: dict[str, str] = {}
    original = read_image(job.source)  # whole and upright: for the scores (and a preview)
    original_link = relative_link(job.source, job.out_dir) if source.format in BROWSER_IMAGE_FORMATS else None
    if original_link is None:
        preview = _output(job, "original", ".png")
        contents[preview], _ = encode_image(original.pixels, ".png", metadata=original.metadata)
        original_link = _relative(job, preview)
    outputs["original"] = original_link
    for method in settings.methods:
        target = _output(job, method, suffix)
        contents[target], _ = encode_result(source, pooled, method, suffix, image_settings)
        outputs[method] = _relative(job, target)
    target = _output(job, "compare", suffix)
    contents[target], _ = encode_image(comparison_image(pooled, settings.beta, settings.methods), suffix)
    outputs["compare"] = _relative(job, target)
    write_files_atomically(contents, overwrite=True)

    scores = {}
    for method in settings.methods:
        score = image_scores(original.pixels, pooled.results[method].array(pooled.orientation), settings.factor)
        scores[method] = (score.psnr, score.ssim)
    return outputs, scores


# ------------------------------------------------------------------------------- clips


def _make_clip(job: Job) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """Pool a clip as ``softpool video`` does (each result byte for byte its GIF output, the
    comparison its ``--compare`` MP4), writing every output in one pass."""
    from softpool_cli.gallery.metrics import ClipScorer, window_step
    from softpool_cli.media.clip_read import ClipError, open_clip
    from softpool_cli.media.clip_write import EncoderSettings, open_writer
    from softpool_cli.media.files import atomic_outputs
    from softpool_cli.pipeline.clip import Output, pool_clip
    from softpool_cli.pipeline.clip_job import COMPARE_ENCODER, ClipSettings

    settings = job.settings
    factor = settings.factor
    clip_settings = ClipSettings()
    try:
        reader = open_clip(job.source, clip_settings.max_pixels)
    except ClipError as error:
        raise MediaError(job.source, str(error)) from None
    try:
        info = reader.info
        original_link = relative_link(job.source, job.out_dir) if info.container == "GIF" else None
        targets = {method: _output(job, method, ".gif") for method in settings.methods}
        targets["compare"] = _output(job, "compare", f".{CLIP_COMPARISON_FORMAT}")
        if original_link is None:
            targets["original"] = _output(job, "original", ".gif")  # GitHub shows no MP4 in <img>
        windows = -(-info.frame_count // factor) if info.frame_count else None
        scorers = {method: ClipScorer(factor, factor, window_step(windows)) for method in settings.methods}

        def score(frames, results, _windows) -> None:
            for method, scorer in scorers.items():
                scorer.add(frames, results[method])

        timing = {"fps": info.fps / factor, "time_base": info.time_base, "loop": info.loop}
        with atomic_outputs(*targets.values(), overwrite=True) as temporaries:
            outputs = []
            for role, temporary in zip(targets, temporaries):
                if role == "compare":
                    writer = open_writer(temporary, CLIP_COMPARISON_FORMAT, encoder=EncoderSettings(**COMPARE_ENCODER), **timing)
                else:
                    writer = open_writer(temporary, "gif", **timing)
                outputs.append(Output(role, writer, str(targets[role])))
            try:
                pool_clip(reader, str(job.source), clip_settings.spatial.__class__(kernel=(factor, factor), even=True),
                          clip_settings.time.__class__(factor), outputs, beta=settings.beta, device=settings.device,
                          scorer=score, compare_width=clip_settings.compare_width)  # fmt: skip
            except BaseException:
                for output in outputs:
                    output.writer.abort()
                raise
    finally:
        reader.close()

    outputs_map = {role: _relative(job, path) for role, path in targets.items()}
    if original_link is not None:
        outputs_map["original"] = original_link
    scores = {}
    for method, scorer in scorers.items():
        result = scorer.result()
        scores[method] = (result.psnr, result.ssim)
    return outputs_map, scores
