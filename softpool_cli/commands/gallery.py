"""``softpool gallery``: a folder of images and clips in, a README-ready gallery out.

Only Click and the standard library are imported at module level, so that
``softpool gallery --help`` answers at once.

How a run goes:

1. **Discovery** (:mod:`softpool_cli.media.discovery`). Each SRC file, and every file under each
   SRC folder, is recognised as an image or a clip by its content. A SRC file named
   explicitly that is neither is reported as failed.
2. **Up to date?** ``DIR/.softpool-gallery.json`` records, per input, the content hash of the
   source, the settings that shape the outputs (factor, methods, β, softpool version), the
   outputs and their scores. An input is skipped when its record matches and its outputs
   exist; size and modification time stand in for the hash when they match (as ``make`` and
   ``git`` do), so an unchanged gallery is checked without reading the inputs. ``--force``
   redoes everything.
3. **Work.** The other inputs are pooled in ``--jobs`` worker processes (see
   :mod:`softpool_cli.gallery.jobs`). A file that fails is reported with its name and reason
   and the others go on.
4. **README.** ``DIR/README.md`` is rewritten for the inputs that succeeded (see
   :mod:`softpool_cli.gallery.markdown`), with a "Not included" list naming each input that
   failed and why, and one summary line ends the run; the exit code is 1 if any file failed.

Ctrl-C stops the workers; every output is written through a temporary file that is removed
when its job is interrupted, and the record is saved after each finished input, so the next
run picks up where this one stopped.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from softpool_cli.errors import SoftpoolError, interrupted_exit_code, report_errors

README_NAME = "README.md"
METHOD_NAMES = ("soft", "max", "avg")



def _parse_methods(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    methods = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [method for method in methods if method not in METHOD_NAMES]
    if not methods or unknown:
        raise click.BadParameter(f"expected a comma-separated list of {', '.join(METHOD_NAMES)}, got {value!r}")
    return methods


def default_jobs(device: str) -> int:
    """One worker per CPU; one worker on a GPU, where pooling is not the bottleneck."""
    if device == "cuda":
        return 1
    from softpool.cpu.threads import usable_cpus

    return usable_cpus()


@click.command()
@click.argument("sources", metavar="SRC...", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", "out_dir", metavar="DIR", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the pooled files and README.md (created if missing).",
)
@click.option(
    "--factor", type=click.IntRange(min=1), default=2, show_default=True,
    help="Downsampling factor: NxN windows for images, NxNxN (time, height, width) for clips.",
)
@click.option(
    "--methods", default="soft,max,avg", show_default=True, callback=_parse_methods,
    help="Pooling methods to show, comma-separated, in table order.",
)
@click.option("--width", type=click.IntRange(min=1), default=130, show_default=True, help="Display width of each picture in the README, in pixels.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Files processed in parallel.  [default: number of CPUs; 1 on a GPU]")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    help="Where to pool: auto uses a CUDA GPU when there is one.",
)
@click.option("--force", is_flag=True, help="Redo every file, even those whose outputs are up to date.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def gallery(
    sources: tuple[Path, ...],
    out_dir: Path,
    factor: int,
    methods: tuple[str, ...],
    width: int,
    jobs: int | None,
    device: str,
    force: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """Pool every image and clip in SRC (files or folders) into DIR, with DIR/README.md.

    Images and clips are told apart by their content. For each input, DIR receives
    its pooled result by every method (images in the input's format, clips as GIF),
    a side-by-side comparison, and a row of README.md's metrics table: PSNR and SSIM
    of each result, upsampled back bicubically, against the original. Inputs whose
    outputs are up to date are skipped (--force redoes them). A file that fails is
    reported, and listed with its reason under README.md's "Not included"; the others go on
    and the exit code is then 1.

    \b
    Example:
      softpool gallery samples --out gallery
    """
    started = time.perf_counter()
    try:
        with report_errors(debug):
            counts = _run(sources, out_dir, factor, methods, width, jobs, device, force, quiet, debug)
    except KeyboardInterrupt as error:
        click.echo("Interrupted: finished files are kept and skipped by the next run.", err=True)
        raise click.exceptions.Exit(interrupted_exit_code(error)) from None
    total, failed, fresh = counts
    if not quiet:
        readme = out_dir / README_NAME
        click.echo(
            f"{total} files, {failed} failed, {time.perf_counter() - started:.1f} s"
            f" ({fresh} up to date) -> {readme}"
        )
    if failed:
        raise click.exceptions.Exit(1)


def _run(
    sources: Sequence[Path],
    out_dir: Path,
    factor: int,
    methods: tuple[str, ...],
    width: int,
    jobs: int | None,
    device: str,
    force: bool,
    quiet: bool,
    debug: bool,
) -> tuple[int, int, int]:
    """The command's body; returns (files, failed, up to date)."""
    from tqdm import tqdm

    from softpool_cli.media.discovery import discover, output_bases
    from softpool_cli.media.files import write_files_atomically
    from softpool_cli.gallery.jobs import Job, JobSettings, Outcome
    from softpool_cli.gallery.manifest import Manifest
    from softpool_cli.gallery.markdown import GalleryEntry, GalleryFailure, GallerySettings, render_readme
    from softpool_cli.gallery.workers import execute
    from softpool_cli.gallery.metrics import Scores
    from softpool_cli.pixels.pool import resolve_device

    if out_dir.exists() and not out_dir.is_dir():
        raise SoftpoolError(f"{out_dir}: exists and is not a folder")
    for source in sources:
        if source.is_dir() and out_dir.exists() and os.path.samefile(source, out_dir):
            raise click.UsageError(f"--out {out_dir} is the SRC folder {source}: choose another folder for the gallery")
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = discover(sources, out_dir)
    if not candidates:
        raise SoftpoolError(f"no images or clips found in {', '.join(map(str, sources))}")
    stamp = JobSettings(factor=factor, methods=methods).stamp()  # the device does not change outputs
    keys = output_bases(candidates)
    manifest = Manifest(out_dir)

    failures: dict[int, str] = {}
    fresh: set[int] = set()
    pending: list[int] = []
    for index, (candidate, key) in enumerate(zip(candidates, keys)):
        if candidate.kind is None:
            failures[index] = f"{candidate.source}: not an image or a clip softpool can read"
        elif not force and manifest.is_fresh(key, candidate.source, stamp):
            fresh.add(index)
        else:
            pending.append(index)
    if pending:  # PyTorch is imported only when there is work to do
        device = resolve_device(device)
    settings = JobSettings(factor=factor, methods=methods, device=device)
    work = [
        Job(candidates[index].source, candidates[index].kind, out_dir / keys[index], out_dir, settings)  # type: ignore[arg-type]
        for index in pending
    ]

    progress = tqdm(
        total=len(candidates), unit="file", file=sys.stderr, disable=quiet or not sys.stderr.isatty(),
        desc="gallery", dynamic_ncols=True,
    )
    with progress:
        for message in failures.values():
            progress.write(f"Error: {message}", file=sys.stderr)
        progress.update(len(failures) + len(fresh))
        for position, result in execute(work, jobs or default_jobs(device), debug):
            index = pending[position]
            if isinstance(result, Outcome):
                manifest.record(keys[index], candidates[index], stamp, result)
            else:
                failures[index] = result.message
                manifest.forget(keys[index])
                progress.write(f"Error: {result.message}", file=sys.stderr)
            manifest.save()
            progress.update(1)
    manifest.save()  # also keeps the new modification times of touched, unchanged inputs

    entries = []
    left_out = []
    for index, (candidate, key) in enumerate(zip(candidates, keys)):
        if index in failures:
            left_out.append(GalleryFailure(candidate.name, _reason(failures[index], candidate.source)))
            continue
        entry = manifest.entries[key]
        entries.append(
            GalleryEntry(
                name=candidate.name,
                kind=entry["kind"],
                original=entry["outputs"]["original"],
                results={method: entry["outputs"][method] for method in methods},
                comparison=entry["outputs"]["compare"],
                scores={method: Scores(*entry["scores"][method]) for method in methods},
            )
        )
    from softpool_cli import __version__

    readme = render_readme(
        entries, GallerySettings(factor=factor, methods=methods, width=width, version=__version__), left_out
    )
    write_files_atomically({out_dir / README_NAME: readme.encode("utf-8")}, overwrite=True)
    return len(candidates), len(failures), len(fresh)


def _reason(message: str, source: Path) -> str:
    """A failure message without the source's path in front (the README names the file itself)."""
    prefix = f"{source}: "
    return message[len(prefix):] if message.startswith(prefix) else message
