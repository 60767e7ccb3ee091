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
   :mod:`softpool_cli.gallery.markdown`), and one summary line ends the run; the exit code is 1 if
   any file failed.

Ctrl-C stops the workers; every output is written through a temporary file that is removed
when its job is interrupted, and the record is saved after each finished input, so the next
run picks up where this one stopped.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from softpool_cli.errors import SoftpoolError, describe_failure, is_bug, report_errors

if TYPE_CHECKING:
    from softpool_cli.media.discovery import Candidate
    from softpool_cli.gallery.jobs import Job, Outcome

MANIFEST_NAME = ".softpool-gallery.json"
README_NAME = "README.md"
METHOD_NAMES = ("soft", "max", "avg")


# ----------------------------------------------------------------------------- manifest


class Manifest:
    """The record of what each earlier run made, kept in ``DIR/.softpool-gallery.json``."""

    VERSION = 1

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST_NAME
        self.out_dir = out_dir
        self.entries: dict[str, dict] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") == self.VERSION and isinstance(data.get("entries"), dict):
                self.entries = data["entries"]
        except (OSError, ValueError, AttributeError):
            pass  # no record, or an unreadable one: everything is redone

    def is_fresh(self, key: str, source: Path, stamp: dict) -> bool:
        """Whether the outputs recorded for ``key`` are those ``source`` would give now."""
        from softpool_cli.gallery.jobs import file_sha256

        entry = self.entries.get(key)
        if not entry or entry.get("settings") != stamp or entry.get("source") != _source_key(source, self.out_dir):
            return False
        if not all((self.out_dir / path).is_file() for path in entry.get("outputs", {}).values()):
            return False
        status = source.stat()
        if status.st_size != entry.get("size"):
            return False
        if status.st_mtime_ns != entry.get("mtime_ns"):
            if file_sha256(source) != entry.get("sha256"):
                return False
            entry["mtime_ns"] = status.st_mtime_ns  # same content, touched: remember the new time
        return True

    def record(self, key: str, candidate: Candidate, stamp: dict, outcome: Outcome) -> None:
        self.entries[key] = {
            "source": _source_key(candidate.source, self.out_dir),
            "name": candidate.name,
            "kind": candidate.kind,
            "size": outcome.size,
            "mtime_ns": outcome.mtime_ns,
            "sha256": outcome.sha256,
            "settings": stamp,
            "outputs": outcome.outputs,
            "scores": outcome.scores,
        }

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def save(self) -> None:
        from softpool_cli.media.files import write_files_atomically

        data = json.dumps({"version": self.VERSION, "entries": self.entries}, indent=1, sort_keys=True)
        write_files_atomically({self.path: data.encode("utf-8")}, overwrite=True)


def _source_key(source: Path, out_dir: Path) -> str:
    """How the record names a source: relative to DIR, so a moved project stays valid."""
    from softpool_cli.gallery.jobs import relative_link

    return relative_link(source, out_dir) or str(source.resolve())


# ------------------------------------------------------------------------------ workers


@dataclass(frozen=True)
class Failure:
    """A job that did not complete: the one-line reason, naming the file."""

    message: str


_busy = False  # set while a worker runs a job: Ctrl-C interrupts jobs, not idle workers
_stop: Any = None  # the pool's stop event, set by the main process on Ctrl-C


def _on_ctrl_c(signum: int, frame: object) -> None:
    if _busy:
        raise KeyboardInterrupt


def _init_worker(threads: int, stop: Any) -> None:
    """Share the CPUs among the workers, and let Ctrl-C stop a running job cleanly."""
    global _stop
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    _stop = stop
    # Workers start with Ctrl-C ignored (see `execute`): from here on it interrupts a job.
    signal.signal(signal.SIGINT, _on_ctrl_c)


def attempt(job: Job, debug: bool) -> Outcome | Failure:
    """Run one job; expected problems become a :class:`Failure`, bugs too unless ``debug``."""
    from softpool_cli.gallery.jobs import run_job

    global _busy
    if _stop is not None and _stop.is_set():
        raise KeyboardInterrupt  # queued before Ctrl-C: not started
    _busy = True
    try:
        return run_job(job)
    except Exception as error:
        if debug and is_bug(error):
            raise
        return Failure(describe_failure(error, job.source))
    finally:
        _busy = False


def execute(jobs: Sequence[Job], workers: int, debug: bool) -> Iterator[tuple[int, Outcome | Failure]]:
    """Run the jobs, yielding ``(index, result)`` as each one finishes.

    One worker runs them in this process; more run in fresh ("spawn") processes, which
    neither inherit PyTorch's thread pools nor a CUDA context. On Ctrl-C (the terminal sends
    it to the workers too) running jobs stop and remove their temporary files, and the jobs
    not started are dropped.
    """
    if workers <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            yield index, attempt(job, debug)
        return

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    workers = min(workers, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    stop = context.Event()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(threads, stop)
    )
    try:
        # Workers are started by the first submissions; they inherit an ignored Ctrl-C, so one
        # pressed while they import their modules ends the run without tracebacks from them.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            futures = {pool.submit(attempt, job, debug): index for index, job in enumerate(jobs)}
        finally:
            signal.signal(signal.SIGINT, previous)
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------ command


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
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    reported and the others go on; the exit code is then 1.

    \b
    Example:
      softpool gallery samples --out gallery
    """
    started = time.perf_counter()
    try:
        with report_errors(debug):
            counts = _run(sources, out_dir, factor, methods, width, jobs, device, force, quiet, debug)
    except KeyboardInterrupt:
        click.echo("Interrupted: finished files are kept and skipped by the next run.", err=True)
        raise click.exceptions.Exit(130) from None
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
    from softpool_cli.gallery.markdown import GalleryEntry, GallerySettings, render_readme
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
    for index, (candidate, key) in enumerate(zip(candidates, keys)):
        if index in failures:
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

    readme = render_readme(entries, GallerySettings(factor=factor, methods=methods, width=width, version=__version__))
    write_files_atomically({out_dir / README_NAME: readme.encode("utf-8")}, overwrite=True)
    return len(candidates), len(failures), len(fresh)
