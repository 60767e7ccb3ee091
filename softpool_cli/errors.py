"""User-facing errors: one line on stderr naming the file, exit code 1.

Commands raise :class:`SoftpoolError` (or :class:`MediaError` when a file is at
fault) for every problem the user can fix, and run their body inside
:func:`report_errors`, which prints the one-line message, or re-raises with the
traceback under ``--debug``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click


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


def _fail(message: str) -> click.exceptions.Exit:
    click.echo(f"Error: {message}", err=True)
    return click.exceptions.Exit(1)


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
    except SoftpoolError as error:
        if debug:
            raise
        raise _fail(str(error)) from None
    except OSError as error:
        # Disk full, permission denied and the like, met outside the checks done up front.
        if debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        raise _fail(f"{where}{error.strerror or error}") from None
    except MemoryError:
        if debug:
            raise
        raise _fail("not enough memory for this input") from None
    except Exception as error:
        # A bug rather than bad input: still one line and a non-zero exit, with the way to learn more.
        if debug:
            raise
        raise _fail(f"unexpected {type(error).__name__}: {error} (run again with --debug for the traceback)") from None
