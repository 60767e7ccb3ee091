"""The ``softpool`` command group.

Subcommands are imported only when run (Click's lazy-group pattern), and each
command's one-line help is kept here, so ``softpool --help`` imports none of
them, and no command's ``--help`` imports PyTorch.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import click

# name -> ("module:command", one-line help shown by `softpool --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "downsample": ("softpool_cli.commands.downsample:downsample", "Downsample an image with SoftPool, max or average pooling."),
    "video": ("softpool_cli.commands.video:video", "Downsample a GIF or video clip in time, height and width."),
    "gallery": ("softpool_cli.commands.gallery:gallery", "Turn a folder of images and clips into a README gallery."),
    "batch": ("softpool_cli.commands.batch:batch", "Pool a whole tree of images and clips, here or on a Dask cluster."),
}


class LazyGroup(click.Group):
    """A Click group whose subcommands are imported on first use.

    Args:
        lazy_commands: ``name -> ("module:attribute", short help)``.
    """

    def __init__(self, *args: object, lazy_commands: dict[str, tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        import_path, _ = self.lazy_commands[cmd_name]
        module_name, attribute = import_path.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise  # the command exists but one of its dependencies is missing
            raise click.UsageError(f"the '{cmd_name}' command is not available in this installation") from None
        command = getattr(module, attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{import_path} is a {type(command).__name__}, not a click.Command")
        return command

    def invoke(self, ctx: click.Context) -> object:
        """Run the command with SIGTERM unwinding like Ctrl-C, and either ending in one line
        and the shell's exit code (130, or 143 for SIGTERM) instead of Click's "Aborted!".

        A signal whose exception a callback from C swallowed still ends the command so
        (see :func:`softpool_cli.errors.check_interrupted`)."""
        from softpool_cli import errors

        in_main_thread = threading.current_thread() is threading.main_thread()
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, errors.on_signal) for signum in handled} if in_main_thread else {}
        unraisable_hook, sys.unraisablehook = sys.unraisablehook, errors.quiet_interruptions(sys.unraisablehook)
        try:
            result = super().invoke(ctx)
            errors.check_interrupted()
            return result
        except KeyboardInterrupt as error:
            click.echo("Interrupted: no partial output was left; finished files are kept.", err=True)
            raise click.exceptions.Exit(errors.interrupted_exit_code(error)) from None
        finally:
            errors.take_interrupted()
            sys.unraisablehook = unraisable_hook
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Click would import every command to read its help; the table above already has it.
        rows = [(name, self.lazy_commands[name][1]) for name in sorted(self.lazy_commands)]
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str()))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from softpool_cli import __version__

    click.echo(f"softpool {__version__}")
    ctx.exit()


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """Downsample images and video clips with SoftPool (Stergiou et al., ICCV 2021).

    SoftPool weighs each pixel of a pooling window by the softmax of its value,
    keeping more detail than average pooling and fewer artefacts than max pooling.
    Run `softpool COMMAND --help` for a command's options.
    """


if __name__ == "__main__":
    cli()
