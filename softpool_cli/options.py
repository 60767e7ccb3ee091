"""The commands' shared vocabulary: window sizes, the pooling options and the common flags.

Each command composes these decorators, so an option means the same, with the same help and
default, wherever it appears. Only Click is imported here: ``--help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable

import click

METHODS = ("soft", "max", "avg")
DEVICES = ("auto", "cpu", "cuda")
METHOD_NAMES = {"soft": "SoftPool", "max": "max pooling", "avg": "average pooling"}


class WindowType(click.ParamType):
    """A window or stride: ``K`` (K x K pixels), ``KHxKW``, or with ``frames`` ``KTxKHxKW``."""

    def __init__(self, frames: bool = False) -> None:
        self.frames = frames
        self.name = "K|KHxKW|KTxKHxKW" if frames else "K|KHxKW"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().lower().replace("×", "x").split("x")
        allowed = (1, 2, 3) if self.frames else (1, 2)
        if len(parts) not in allowed or not all(part.strip().isdigit() for part in parts):
            example = "3, 2x3 or 1x2x2" if self.frames else "3 or 2x3"
            self.fail(f"{value!r} is not {self.name.replace('|', ', ')} (for example {example})", param, ctx)
        sizes = tuple(int(part) for part in parts)
        if min(sizes) < 1:
            self.fail(f"{value!r}: sizes must be at least 1", param, ctx)
        return (sizes[0], sizes[0]) if len(sizes) == 1 else sizes


def method_name(method: str, beta: float) -> str:
    """How a summary line names the pooling: "SoftPool (beta 1)", "max pooling", ..."""
    return f"SoftPool (beta {beta:g})" if method == "soft" else METHOD_NAMES[method]


def pooling_options(command: Callable) -> Callable:
    """--method, --beta and --device."""
    for option in reversed(
        (
            click.option(
                "--method", type=click.Choice(METHODS), default="soft", show_default=True,
                help="SoftPool, max pooling or average pooling.",
            ),
            click.option(
                "--beta", type=click.FloatRange(min=0), default=1.0, show_default=True,
                help="SoftPool sharpness: 0 is average pooling, larger values tend to max pooling.",
            ),
            device_option,
        )
    ):  # fmt: skip
        command = option(command)
    return command


device_option = click.option(
    "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
    help="Where to pool: auto uses a CUDA GPU when there is one.",
)  # fmt: skip


def common_options(command: Callable) -> Callable:
    """--overwrite, --quiet and --debug."""
    for option in reversed(
        (
            click.option("--overwrite", is_flag=True, help="Replace existing outputs."),
            click.option("--quiet", "-q", is_flag=True, help="No progress bar; print nothing but errors."),
            click.option("--debug", is_flag=True, help="Show the full traceback on errors."),
        )
    ):
        command = option(command)
    return command
