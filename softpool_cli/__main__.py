"""`python -m softpool_cli`: the same as the `softpool` command."""

from softpool_cli.main import cli

cli(prog_name="softpool")
