"""Running the command: in this process with Click's runner, or as a child process where the
real standard streams matter (pipes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from softpool_cli.main import cli


def invoke(command: str, *args: object, env: dict[str, str] | None = None, input: bytes | None = None):
    """``softpool COMMAND ARGS...`` through Click's runner; stdout and stderr apart."""
    return CliRunner(env=env).invoke(cli, [command, *map(str, args)], input=input)


def downsample(*args: object, env: dict[str, str] | None = None):
    return invoke("downsample", *args, env=env)


def video(*args: object):
    return invoke("video", *args)


def gallery(*args: object):
    return invoke("gallery", *args)


def subprocess_run(*args: object, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m softpool_cli ARGS...`` with real pipes: stdout and stderr as bytes."""
    return subprocess.run(
        [sys.executable, "-m", "softpool_cli", *map(str, args)],
        input=stdin, capture_output=True, cwd=cwd, env={**os.environ}, timeout=300,
    )  # fmt: skip


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under a directory (hidden ones included) with its content."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def files_in(directory: Path) -> set[str]:
    """Paths of the files under a directory, relative to it."""
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def assert_fails_cleanly(result, directory: Path, before: dict[str, bytes], *names: str) -> None:
    """Exit code 1, one line on stderr naming the file(s), nothing written or changed."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for name in names:
        assert name in lines[0], lines[0]
    assert snapshot(directory) == before


def assert_failed_cleanly(result, tmp_path: Path, inputs: set[str], *names: str) -> None:
    """Exit code 1, one line on stderr naming the file, nothing left beside the inputs."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert any(name in lines[0] for name in names), lines[0]
    assert {path.name for path in tmp_path.iterdir()} == inputs, "output or temporary file left behind"
