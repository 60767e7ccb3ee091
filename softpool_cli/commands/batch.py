"""``softpool batch``: pool every image and clip of a tree into a mirror tree, here or on Dask.

Only Click and the standard library are imported at module level; the work is
:mod:`softpool_cli.batch`'s.
"""

from __future__ import annotations

import math
import sys
import time

import click

from softpool_cli.errors import check_interrupted, report_errors
from softpool_cli.options import WindowType, pooling_options, size_options, spatial_geometry

IMAGE_FORMATS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
CLIP_FORMATS = (".gif", ".mp4", ".mov", ".mkv", ".webm", ".apng", ".webp")
GROUP_SIZE = 16  # files per task: few tasks for a million files, small enough to spread


@click.command()
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option("--factor", type=click.IntRange(min=1), default=None, help="NxN windows with stride N (N frames too, for clips).  [default: 2]")
@click.option("--kernel", type=WindowType(), default=None, help="Pooling window K or KHxKW, instead of --factor.")
@click.option("--stride", type=WindowType(), default=None, help="Step between windows.  [default: the kernel]")
@click.option("--ceil", is_flag=True, help="Keep the last, partial row and column of windows, as max pooling's ceil_mode.")
@size_options
@pooling_options
@click.option("--format", "output_format", default=None, metavar="EXT", help="Write images (jpg, png, webp, tif, bmp) or clips (mp4, mkv, webm, gif, ...) in this format; by default each file keeps its own.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG and WebP quality.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Worker processes on this machine.  [default: one per CPU; 1 with --device cuda]")
@click.option("--scheduler", default=None, envvar="DASK_SCHEDULER_ADDRESS", show_envvar=True, help="Run on Dask: a scheduler's address (tcp://HOST:8786), or 'local' for a LocalCluster.")
@click.option("--force", is_flag=True, help="Redo every file, even those whose outputs are up to date.")
@click.option("--max-pixels", type=click.IntRange(min=0), default=200_000_000, show_default=True, envvar="SOFTPOOL_MAX_PIXELS", help="Refuse larger images and frames before decoding them; 0 = no limit.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--debug", is_flag=True, help="Show the full traceback of unexpected errors.")
def batch(source, destination, factor, kernel, stride, ceil, target_width, target_height, target_size,
          target_scale, method, beta, device, output_format, quality, jobs, scheduler, force, max_pixels,
          quiet, debug) -> None:  # fmt: skip
    """Pool every image and clip under SRC into the same relative path under DST.

    SRC and DST are folders or fsspec URLs (s3://bucket/prefix, gs://..., memory://...).
    Images and clips are told apart by content; other files are left alone. A rerun skips the
    outputs that are up to date with their input and settings (--force redoes them), and an
    interrupted run leaves no partial file at any output path: run it again to finish. A bad
    file never stops the batch: the failures are listed in DST/softpool-report.jsonl, and the
    exit code is then 1.

    \b
    Examples:
      softpool batch photos/ photos-half/
      softpool batch s3://data/raw s3://data/half --factor 2 --scheduler tcp://head:8786
    """
    started = time.perf_counter()
    if not math.isfinite(beta):
        raise click.BadParameter("must be finite", param_hint="'--beta'")
    geometry = spatial_geometry(factor, kernel, stride, ceil, target_width, target_height, target_size, target_scale)
    image_format = clip_format = None
    if output_format is not None:
        suffix = "." + output_format.lower().lstrip(".")
        if suffix not in IMAGE_FORMATS and suffix not in CLIP_FORMATS:
            raise click.BadParameter(f"{output_format!r} is not an image or clip format", param_hint="'--format'")
        image_format = suffix if suffix in IMAGE_FORMATS else None
        clip_format = suffix if suffix in CLIP_FORMATS else None

    with report_errors(debug):
        from dataclasses import replace

        from softpool_cli.batch.core import BatchSettings
        from softpool_cli.pipeline.clip_job import ClipSettings
        from softpool_cli.pipeline.geometry import TimeGeometry
        from softpool_cli.pipeline.image_job import ImageSettings
        from softpool_cli.pixels.devices import resolve_device

        device = resolve_device(device)
        image = ImageSettings(geometry=geometry, method=method, beta=beta, device=device, quality=quality,
                              max_pixels=max_pixels, overwrite=True)  # fmt: skip
        clip = ClipSettings(spatial=replace(geometry, even=True), time=TimeGeometry(factor or 2), method=method,
                            beta=beta, device=device, max_pixels=max_pixels, overwrite=True)  # fmt: skip
        settings = BatchSettings(image, clip, image_format, clip_format, debug)
        counts = _run(source, destination, settings, jobs, scheduler, force, quiet)

    done, skipped, failed, report = counts
    elapsed = time.perf_counter() - started
    if not quiet:
        rate = done / elapsed if elapsed > 0 else 0.0
        click.echo(f"{done} done, {skipped} skipped, {failed} failed, {elapsed:.1f} s, {rate:.1f} files/s", err=True)
        if failed:
            click.echo(f"failures: {report}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


def _run(source, destination, settings, jobs, scheduler, force, quiet):
    """The batch; returns (done, skipped, failed, report path)."""
    from tqdm import tqdm

    from softpool_cli.batch import cluster, local
    from softpool_cli.batch.plan import Record, find_items, write_report
    from softpool_cli.errors import SoftpoolError, interrupted_exit_code

    stamp = settings.stamp()
    record = Record(destination)
    try:
        items = list(find_items(source, destination))
    except FileNotFoundError:
        raise SoftpoolError(f"{source}: no such file or folder") from None
    todo = [item for item in items if force or not record.is_done(item, stamp)]
    skipped = len(items) - len(todo)
    by_source = {item.source: item for item in todo}
    groups = [
        [(item.source, item.target_base, item.fingerprint) for item in todo[i : i + GROUP_SIZE]]
        for i in range(0, len(todo), GROUP_SIZE)
    ]
    failures: list[dict] = []
    done = 0
    progress = tqdm(total=len(todo), unit="file", desc="batch", file=sys.stderr,
                    disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True)  # fmt: skip
    # SIGTERM arrives as an interruption like Ctrl-C (see softpool_cli.main): stop the workers,
    # keep what is finished.
    client = None
    try:
        if scheduler:
            client = cluster.connect(scheduler)
            results = cluster.run_groups(groups, settings, client)
        else:
            workers = jobs or (1 if settings.image.device == "cuda" else _cpus())
            results = local.run_groups(groups, settings, min(workers, max(1, len(groups))))
        last_flush = time.monotonic()
        with progress:
            for result in results:
                check_interrupted()
                item = by_source.get(result.source)
                if result.status == "done" and item is not None:
                    record.add(item, result.target, stamp)
                    done += 1
                elif result.status == "failed":
                    failures.append({"path": result.source, "reason": result.reason})
                    progress.write(f"Error: {result.reason}", file=sys.stderr)
                progress.update(1)
                if time.monotonic() - last_flush > 1.0:
                    record.flush()
                    last_flush = time.monotonic()
    except KeyboardInterrupt as error:
        record.flush()
        write_report(destination, failures)
        click.echo("Interrupted: finished files are kept; run the same command again to do the rest.", err=True)
        raise click.exceptions.Exit(interrupted_exit_code(error)) from None
    finally:
        if client is not None:
            client.close()
    record.flush()
    report = write_report(destination, failures)
    return done, skipped, len(failures), report


def _cpus() -> int:
    from softpool.cpu.threads import usable_cpus

    return usable_cpus()
