"""Which files a command reads and which it writes, from its arguments.

The forms people use with cp, mv, ImageMagick's mogrify and ffmpeg:

- ``IN OUT``: one input, one output;
- ``IN``: the output beside the input, ``NAME_softpool.EXT``;
- ``IN... DIR/`` or ``IN... -o DIR``: every input into a folder, under its own name (a folder
  input, with ``--recursive``, keeps its tree under DIR);
- ``-`` for IN reads standard input, for OUT writes standard output (one input only).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from softpool_cli.errors import MediaError

STDIO = "-"


@dataclass(frozen=True)
class Task:
    """One input and where its result goes (``STDIO`` for the standard streams).

    ``in_folder``: the target is under an output folder (``-o DIR``, a folder last), whose
    subfolders are created as needed.
    """

    source: str
    target: str
    in_folder: bool = False

    @property
    def reads_stdin(self) -> bool:
        return self.source == STDIO

    @property
    def writes_stdout(self) -> bool:
        return self.target == STDIO


def plan_tasks(
    arguments: Sequence[str],
    output_dir: str | None,
    *,
    recursive: bool,
    suffix_for: Callable[[str], str],
    wanted: Callable[[Path], bool],
) -> list[Task]:
    """The tasks of a command's positional arguments and ``-o DIR``.

    Args:
        arguments: IN... [OUT], as given.
        output_dir: ``-o DIR``, if given.
        recursive: Walk folder inputs.
        suffix_for: The output suffix (".jpg") for an input path, for outputs named after it.
        wanted: Whether a file found in a folder is one to process (by content).

    Raises:
        click.UsageError: forms that do not say where the results go.
        MediaError: a folder without ``--recursive``.
    """
    if not arguments:
        raise click.UsageError("Missing argument 'IN...'.")
    items = list(arguments)
    if output_dir is None and len(items) >= 2 and _is_folder_target(items[-1]):
        output_dir = items.pop()
    if output_dir is not None:
        if STDIO in items:
            raise click.UsageError("'-' (standard input) takes a single OUT, not a folder")
        folder = Path(output_dir)
        return [Task(str(source), str(folder / relative.with_suffix(suffix_for(str(source)))), in_folder=True)
                for source, relative in _expand(items, recursive, wanted)]  # fmt: skip
    if len(items) == 2 and not Path(items[0]).is_dir():
        return [Task(items[0], items[1])]
    if len(items) > 2:
        raise click.UsageError(
            "several inputs need a folder for the results: -o DIR, or a folder as the last argument"
        )
    if items[0] == STDIO:
        raise click.UsageError("'-' (standard input) needs an OUT ('-' for standard output)")
    return [Task(str(source), str(_beside(source, suffix_for(str(source))))) for source, _ in _expand(items, recursive, wanted)]


def create_folders(tasks: Sequence[Task]) -> None:
    """Create the output folder of every task that writes into one (with --recursive, its
    subfolders); a single OUT's folder must already exist."""
    for folder in dict.fromkeys(Path(task.target).parent for task in tasks if task.in_folder):
        folder.mkdir(parents=True, exist_ok=True)


def _is_folder_target(argument: str) -> bool:
    return argument.endswith(("/", os.sep)) or Path(argument).is_dir()


def _expand(items: Sequence[str], recursive: bool, wanted: Callable[[Path], bool]):
    """(source, path relative to the output folder) per input file, folders walked."""
    for item in items:
        path = Path(item)
        if item != STDIO and path.is_dir():
            if not recursive:
                raise MediaError(item, "is a directory: add --recursive to pool the files in it")
            for root, folders, files in os.walk(path):
                folders[:] = sorted(name for name in folders if not name.startswith("."))
                for name in sorted(files):
                    found = Path(root) / name
                    if not name.startswith(".") and "_softpool" not in found.stem and wanted(found):
                        yield found, found.relative_to(path)
        else:
            yield path, Path(path.name)


def _beside(source: Path, suffix: str) -> Path:
    return source.with_name(f"{source.stem}_softpool{suffix}")
