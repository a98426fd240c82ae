"""How commands print a connection and its variables: masked unless asked, in the format asked,
and exported to GitHub Actions when running there."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from provisioner.errors import (
    UsageError,
)
from provisioner.terminal import say

if TYPE_CHECKING:
    pass


def print_connection(env: Any, show_password: bool, as_json: bool = False) -> None:
    url = env.url if show_password else masked({"u": env.url}, env.password)["u"]
    if as_json:  # on stdout, for programs; the human lines below go to stderr
        variables = env.variables if show_password else masked(env.variables, env.password)
        typer.echo(
            json.dumps(
                {
                    "id": env.env_id,
                    "name": env.name,
                    "runtime": env.runtime,
                    "host": env.host,
                    "port": env.port,
                    "user": env.connection.user,
                    "database": env.connection.database,
                    "password": env.password if show_password else "****",
                    "url": url,
                    "env_file": str(env.env_file) if env.env_file else None,
                    "variables": variables,
                },
                indent=2,
            )
        )
    say(f"database: {url}")
    say(f"psql:     psql '{url}'")
    if env.env_file is not None:
        say(f"env file: {env.env_file}")


def check_format(fmt: str) -> None:
    if fmt not in ("dotenv", "json", "shell"):
        raise UsageError(f"unknown format '{fmt}'", hint="use dotenv, json or shell")


def echo_variables(variables: dict[str, str], password: str, fmt: str, show_password: bool) -> None:
    """Variables on stdout in `fmt`, the password masked unless it was asked for."""
    from provisioner.envfile import format_env

    shown = variables if show_password else masked(variables, password)
    typer.echo(format_env(shown, fmt), nl=False)


def masked(variables: dict[str, str], password: str) -> dict[str, str]:
    from provisioner.connection import hide_secrets, password_forms

    forms = password_forms(password)
    return {key: hide_secrets(value, forms) for key, value in variables.items()}


def export_to_github(env: Any) -> None:
    from provisioner import github

    github.export_env(env.env)
    github.set_outputs(
        {
            "database-url": env.url,
            "host": env.host,
            "port": str(env.port),
            "env-file": str(env.env_file or ""),
        }
    )
