"""Safe file handling: input checks, output checks, and atomic writes.

An output is first written to a hidden temporary file beside its target (same
directory, so the final rename is atomic and never crosses file systems), then
renamed over the target. On any failure, Ctrl-C included, the temporary file is
removed: a crash never leaves half a file, and an existing file is replaced only
when the whole new one is ready.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from softpool_cli.errors import MediaError


def check_input_file(path: Path) -> None:
    """Raise :class:`MediaError` unless ``path`` is an existing regular file."""
    if not path.exists():
        raise MediaError(path, "no such file")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "permission denied (cannot read)")


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name the same file, through symlinks, ``..`` and hard links."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        # One of them does not exist yet: compare the fully resolved spellings.
        return first.resolve() == second.resolve()


def check_distinct(input_path: Path, *output_paths: Path | None) -> None:
    """Refuse an output that is the input, or two outputs that are one file.

    Raises:
        MediaError: naming the offending output.
    """
    outputs = [path for path in output_paths if path is not None]
    for index, output in enumerate(outputs):
        if same_file(output, input_path):
            raise MediaError(output, "is the input file; choose another output path")
        for earlier in outputs[:index]:
            if same_file(output, earlier):
                raise MediaError(output, f"is also the output {earlier}; choose two different paths")


def check_job_paths(
    input_path: Path, *output_paths: Path | None, extensions: Collection[str], overwrite: bool
) -> None:
    """The checks every command makes before any work: IN is readable, no output is IN, and
    each output (None: not asked for) can be written."""
    check_input_file(input_path)
    check_distinct(input_path, *output_paths)
    for path in output_paths:
        if path is not None:
            check_output_path(path, extensions=extensions, overwrite=overwrite)


def check_output_path(path: Path, *, extensions: Collection[str], overwrite: bool) -> None:
    """Check, before any work is done, that ``path`` can be written.

    Args:
        path: The output file.
        extensions: Accepted lower-case suffixes, with the dot (``".png"``).
        overwrite: Whether an existing file may be replaced.

    Raises:
        MediaError: unsupported extension, existing file without ``overwrite``,
            a directory in the way, or a parent directory that is missing or not writable.
    """
    suffix = path.suffix.lower()
    if suffix not in extensions:
        accepted = ", ".join(sorted(extensions))
        found = f"extension '{path.suffix}'" if suffix else "no extension"
        raise MediaError(path, f"unsupported output format ({found}); use one of {accepted}")
    if path.is_dir():
        raise MediaError(path, "is a directory; give a file name")
    if path.exists() and not overwrite:
        raise MediaError(path, "already exists (use --overwrite to replace it)")
    parent = path.parent
    if not parent.exists():
        raise MediaError(path, f"directory '{parent}' does not exist")
    if not parent.is_dir():
        raise MediaError(path, f"'{parent}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MediaError(path, f"directory '{parent}' is not writable")


def _create_temporary_beside(target: Path) -> Path:
    """Create an empty hidden file next to ``target``, keeping its suffix.

    Writers that pick the format from the file name (video encoders do) see the
    target's extension. Mode 0o666 is filtered by the umask, so the final file gets
    the same permissions as any newly created file (mkstemp would give 0o600).
    The name, ``.NAME.PID-XXXXXXXX.tmp.EXT``, carries the writer's process id: a run
    that was killed (SIGKILL, a power cut) leaves its temporary behind, and the next
    write to the same target removes it (see :func:`remove_stale_temporaries`).
    """
    remove_stale_temporaries(target)
    while True:
        candidate = target.with_name(temporary_name(target, os.urandom(4).hex()))
        try:
            descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise MediaError(target, f"cannot write: {error.strerror or error}") from error
        os.close(descriptor)
        return candidate


def temporary_name(target: Path, tag: str) -> str:
    """The hidden name a temporary for ``target`` gets: ``.NAME.PID-TAG.tmp.EXT``."""
    return f".{target.name}.{os.getpid()}-{tag}.tmp{target.suffix}"


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-z]+\.tmp(?P<suffix>\.[^.]*)?$")


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries of ``target`` that killed runs left, and return them.

    A temporary is stale when the process named in it no longer runs on this machine. One
    whose process still runs, this one included, is in use and kept. A process id can be
    reused, so a stale file may be kept a while longer, never the other way round.
    """
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or match["name"] != target.name or _process_runs(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue  # not ours to remove, or gone already
        removed.append(Path(entry.path))
    return removed


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Whether the process has ended and only waits for its parent to collect it (Linux): a
    killed run's workers stay so until their new parent gets round to it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith(("Z", "X"))  # the state follows "(name) "


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def atomic_outputs(*targets: Path, overwrite: bool = False) -> Iterator[tuple[Path, ...]]:
    """Write several outputs all-or-nothing, each through a temporary file beside it.

    The block receives one temporary path per target (same order) and writes
    them; when it ends normally every temporary file is renamed over its target.
    If the block raises (Ctrl-C included), every temporary file is removed and no
    target is touched.

    Args:
        *targets: The final output paths.
        overwrite: Whether an existing target may be replaced. Checked again just
            before renaming, in case a file appeared meanwhile.

    Yields:
        The temporary paths, one per target.

    Raises:
        MediaError: a temporary file cannot be created, or a target appeared
            meanwhile without ``overwrite``, or the rename fails.

    Example:
        >>> with atomic_outputs(Path("out.png")) as (temporary,):  # doctest: +SKIP
        ...     temporary.write_bytes(data)
    """
    temporaries: list[Path] = []
    try:
        for target in targets:
            temporaries.append(_create_temporary_beside(target))
        yield tuple(temporaries)
        for target in targets:
            if target.exists() and not overwrite:
                raise MediaError(target, "already exists (use --overwrite to replace it)")
        for temporary, target in zip(temporaries, targets):
            try:
                os.replace(temporary, target)
            except OSError as error:
                raise MediaError(target, f"cannot write: {error.strerror or error}") from error
    finally:
        # After a successful rename the temporary is gone; anything left is a failure's debris.
        for temporary in temporaries:
            _remove_quietly(temporary)


def write_files_atomically(contents: Mapping[Path, bytes], *, overwrite: bool) -> None:
    """Write encoded files all-or-nothing (see :func:`atomic_outputs`).

    Raises:
        MediaError: naming the target (not the temporary file) when writing fails.
    """
    targets = list(contents)
    with atomic_outputs(*targets, overwrite=overwrite) as temporaries:
        for target, temporary in zip(targets, temporaries):
            try:
                temporary.write_bytes(contents[target])
            except OSError as error:
                raise MediaError(target, f"cannot write: {error.strerror or error}") from error
