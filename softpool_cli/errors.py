"""User-facing errors: one line on stderr naming the file, exit code 1.

Commands raise :class:`SoftpoolError` (or :class:`MediaError` when a file is at
fault) for every problem the user can fix, and run their body inside
:func:`report_errors`, which prints the one-line message, or re-raises with the
traceback under ``--debug``. :func:`describe_failure` words every failure, for
``report_errors`` and for the gallery's workers, which report a failed file and go on.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C: temporary files are
    removed, workers stopped, finished outputs kept."""


def interrupted_exit_code(error: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + the signal: 143 after SIGTERM, 130 after Ctrl-C."""
    return 143 if isinstance(error, Terminated) else 130


# The last SIGINT or SIGTERM that reached `on_signal`, until the command has answered it.
_received: int | None = None


def on_signal(signum: int, frame: object = None) -> None:
    """The handler of SIGINT and SIGTERM while a command runs: remember the signal, then
    raise ``KeyboardInterrupt`` (or :class:`Terminated`) where the main thread is."""
    global _received
    _received = signum
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def check_interrupted() -> None:
    """Raise again a signal whose exception was lost.

    Python raises a handler's exception in whatever Python code runs next. When that is a
    callback called from C (pyvips's log handler is one), the exception is printed as
    "ignored" and the C library goes on, so the command would finish as if nothing
    happened. Loops call this between files and chunks so that such a signal stops them.
    """
    if _received is not None:
        raise Terminated if _received == signal.SIGTERM else KeyboardInterrupt


def quiet_interruptions(hook):
    """``sys.unraisablehook`` that lets a lost Ctrl-C or SIGTERM pass without the traceback
    Python prints for it ("Exception ignored from cffi callback"): `check_interrupted` answers
    it. Every other exception goes to ``hook``."""

    def quiet(unraisable) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)

    return quiet


def take_interrupted() -> KeyboardInterrupt | None:
    """The interruption received and not yet answered, if any, forgetting it."""
    global _received
    received, _received = _received, None
    if received is None:
        return None
    return Terminated() if received == signal.SIGTERM else KeyboardInterrupt()


class SoftpoolError(Exception):
    """A problem the user can fix, told in one line (no traceback)."""


class MediaError(SoftpoolError):
    """A problem with one file: the message is ``"{path}: {problem}"``.

    Args:
        path: The file at fault (input or output).
        problem: What is wrong, in a few words, lower case, no final period.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def is_bug(error: BaseException) -> bool:
    """Whether ``error`` comes from a bug rather than from the input or the machine: anything
    but a :class:`SoftpoolError`, an ``OSError`` (disk full, permission denied, ...) or a
    ``MemoryError``."""
    return not isinstance(error, (SoftpoolError, OSError, MemoryError))


def describe_failure(error: Exception, source: str | os.PathLike[str] | None = None) -> str:
    """The one line that tells the user what went wrong.

    Args:
        error: What was raised.
        source: The file being worked on, named when the error itself names none.
    """
    if isinstance(error, SoftpoolError):
        return str(error)
    if isinstance(error, OSError):
        # Disk full, permission denied and the like, met outside the checks done up front.
        where = error.filename or source
        return f"{where}: {error.strerror or error}" if where else f"{error.strerror or error}"
    prefix = f"{source}: " if source is not None else ""
    if isinstance(error, MemoryError):
        return f"{prefix}not enough memory for this input"
    # A bug rather than bad input: still one line, with the way to learn more.
    return f"{prefix}unexpected {type(error).__name__}: {error} (run again with --debug for the traceback)"


@contextmanager
def report_errors(debug: bool = False) -> Iterator[None]:
    """Turn exceptions raised in the block into a one-line message and exit code 1.

    Click's own usage errors (exit code 2) and Ctrl-C pass through untouched.

    Args:
        debug: Re-raise instead, so the full traceback is shown.
    """
    try:
        yield
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except Exception as error:
        check_interrupted()  # an error that a swallowed Ctrl-C caused is the Ctrl-C
        if debug:
            raise
        click.echo(f"Error: {describe_failure(error)}", err=True)
        raise click.exceptions.Exit(1) from None


def run_tasks(tasks, work, describe, *, quiet: bool, debug: bool = False, compare_path=None, started: float) -> None:
    """Run ``work(task)`` for each task and report as `downsample` and `video` do; exit 1 if any failed.

    A task that fails is told in one line naming its file, and the others go on. Click's own
    usage errors and Ctrl-C stop the run. Each outcome's notes and ``describe(outcome)`` are
    printed (on stderr when a task writes its result to stdout), then a summary line for
    several tasks.

    Args:
        tasks: Objects with ``source`` (the file messages name) and ``writes_stdout``.
        work: Does one task and returns its outcome (with ``notes``).
        describe: The line told for a finished outcome.
        quiet: Print nothing but errors.
        debug: Re-raise instead, so the full traceback is shown.
        compare_path: The comparison written beside a single task, named at the end.
        started: ``time.perf_counter()`` when the command started, for the summary.
    """
    import sys
    import time

    to_stdout = any(task.writes_stdout for task in tasks)
    echo = (lambda text: click.echo(text, err=True)) if to_stdout else click.echo
    failed = 0
    for task in tasks:
        check_interrupted()
        try:
            outcome = work(task)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            check_interrupted()  # an error that a swallowed Ctrl-C caused is the Ctrl-C
            if debug:
                raise
            click.echo(f"Error: {describe_failure(error, task.source)}", err=True)
            failed += 1
            continue
        if not quiet:
            for note in outcome.notes:
                click.echo(f"Note: {note}", err=True)
            echo(describe(outcome))
    if len(tasks) > 1 and not quiet:
        # On stderr with the errors it counts, as batch's.
        click.echo(f"{len(tasks)} files, {failed} failed, {time.perf_counter() - started:.1f} s", err=True)
    elif not quiet and compare_path is not None and not failed:
        echo(f"comparison -> {compare_path}")
    if failed:
        sys.stdout.flush()
        raise click.exceptions.Exit(1)
