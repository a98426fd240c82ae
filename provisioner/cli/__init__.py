"""The `envctl` command: a thin shell that parses arguments, calls the core and maps its errors
to exit codes. One module per group of commands; importing them registers their commands, in
the order `envctl --help` lists them."""

# isort: off
from provisioner.cli.app import app, main
from provisioner.cli import environments, run, backups, checks, databases, cache  # noqa: F401
# isort: on

__all__ = ["app", "main"]
