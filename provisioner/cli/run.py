"""`envctl run`: up, the suite (repeated, with worker databases), the report, down."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from provisioner.cli.app import (
    ProfileArg,
    RuntimeOption,
    VersionOption,
    app,
    reports_errors,
)
from provisioner.cli.targets import (
    with_version,
)
from provisioner.errors import (
    UsageError,
)
from provisioner.terminal import say, stderr_console

if TYPE_CHECKING:
    pass


@app.command()
@reports_errors
def run(
    profile: ProfileArg,
    command: Annotated[
        list[str] | None, typer.Argument(help="The suite to run (after --); default test.command.")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the environment up afterwards for debugging.")
    ] = False,
    repeat: Annotated[
        int | None,
        typer.Option(
            "--repeat",
            min=1,
            help="Run the suite N times (at most 1000), resetting data between.",
        ),
    ] = None,
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Write every run and test as JSON.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Clone a database per test worker (1 to 64); the suite gets ENVCTL_WORKERS_FILE.",
        ),
    ] = None,
    runtime: RuntimeOption = None,
    postgres_version: VersionOption = None,
) -> None:
    """Bring the environment up, run the suite against it, tear it all down."""
    from provisioner.command import command_argv
    from provisioner.profile import load_profile
    from provisioner.signals import deferred_signals
    from provisioner.suite.report import print_summary, write_json
    from provisioner.suite.run import run_profile
    from provisioner.suite.verdict import RunRecord

    loaded = with_version(load_profile(profile), postgres_version)
    if command and command[0] == "--":
        command = command[1:]
    argv = command_argv(command) if command else None
    if argv is None and loaded.test.command is not None:
        argv = command_argv(loaded.test.command)
    if not argv:
        raise UsageError(
            f"{profile}: no test command", hint="set test.command or pass one: envctl run P -- CMD"
        )

    def on_run(record: RunRecord) -> None:
        verdict = "passed" if record.exit_code == 0 else f"failed (exit code {record.exit_code})"
        failed = sum(case.outcome == "failed" for case in record.cases)
        tests = f", {len(record.cases)} tests, {failed} failed" if record.cases else ""
        if not record.reported:
            tests = ", no JUnit results"
        say(f"run {record.index}: suite {verdict} in {record.seconds:.1f}s{tests}")

    with deferred_signals():
        report = run_profile(
            loaded,
            argv,
            repeat=repeat,
            keep=keep,
            runtime_override=runtime,
            notify=say,
            on_run=on_run,
            workers=workers,
        )
    if report_json is not None:  # first: a report is never lost to what printing does
        write_json(report, report_json, str(profile))
    print_summary(report, stderr_console())
    if report_json is not None:
        say(f"wrote {report_json}")
    if len(report.runs) > 1 or report.verdict == "flaky":
        say(f"verdict: {report.verdict} (exit code {report.exit_code})")
    if keep:
        say(f"kept; see it with `envctl env {profile}`, remove it with `envctl down {profile}`")
    raise typer.Exit(report.exit_code)
