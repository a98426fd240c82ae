"""`envctl run` as one function: up, run the suite (repeatedly), report, always down."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from provisioner import github
from provisioner.command import SuiteResult, check_command, run_suite
from provisioner.connection import Connection, hide_secrets, password_forms
from provisioner.envfile import render_env
from provisioner.environments import (
    Environment,
    environment,
    record_suite_group,
    reset,
)
from provisioner.errors import UsageError
from provisioner.postgres.ready import indent_log
from provisioner.postgres.server_log import SCANNED_LINES, log_excerpt
from provisioner.profile import MAX_REPEAT, Profile
from provisioner.progress import Notify
from provisioner.runtime import Runtime
from provisioner.runtime.select import container_runtime, runtime_named
from provisioner.state import env_state_dir
from provisioner.suite.report import annotate, markdown
from provisioner.suite.verdict import RunRecord, RunReport, run_repeated
from provisioner.suite.workers import (
    FILE_VARIABLE,
    check_count,
    make_databases,
    worker_names,
    write_files,
)

log = logging.getLogger(__name__)


def _render(profile: Profile, connection: Connection) -> dict[str, str]:
    return render_env(connection, profile.env.preset, profile.env.vars, profile.postgres.roles)


def run_profile(
    profile: Profile,
    argv: Sequence[str],
    *,
    repeat: int | None = None,
    keep: bool = False,
    runtime_override: str | None = None,
    notify: Notify = log.info,
    on_run: Callable[[RunRecord], None] = lambda record: None,
    workers: int | None = None,
) -> RunReport:
    """Bring the environment up, run `argv` `repeat` times against it, tear it down.

    `workers`: clone a database per test worker first (see provisioner.suite.workers).
    """
    if workers is not None:
        check_count(workers)
    if repeat is not None and not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(
            f"--repeat {repeat}: run the suite 1 to {MAX_REPEAT} times",
            hint=f"the same cap as test.repeat in a profile ({MAX_REPEAT})",
        )
    container = profile.test.container
    if container is not None:
        runtime_override = container_runtime(profile, runtime_override)
    else:
        check_command(argv, profile.workdir)
    times = repeat or profile.test.repeat
    # Per-worker databases and the resets between runs are copies of the template.
    makes_databases = bool(workers) or times > 1
    with environment(
        profile,
        notify=notify,
        keep=keep,
        runtime_override=runtime_override,
        makes_databases=makes_databases,
    ) as env:
        server = runtime_named(env.runtime)
        names = worker_names(env.database, workers) if workers else []
        extra = _worker_databases(profile, env, server, names, inside=container is not None)
        if names:
            notify(f"cloned {len(names)} worker databases: {names[0]} ... {names[-1]}")

        def execute() -> SuiteResult:
            notify(f"running: {' '.join(argv)}" + (" (in a container)" if container else ""))
            if container is None:
                return run_suite(
                    argv,
                    cwd=profile.workdir,
                    env={**env.env, **extra, **profile.test.env},
                    timeout=profile.test.timeout,
                    on_start=lambda pgid: record_suite_group(env.env_id, pgid),
                )
            return _run_in_container(profile, env, server, argv, extra)

        def reset_all() -> float:
            started = time.monotonic()
            reset(env)
            make_databases(env.connection, names)
            return time.monotonic() - started

        report = run_repeated(
            execute,
            repeat=times,
            reset=reset_all if times > 1 else None,
            junit=profile.test.junit,
            workdir=profile.workdir,
            on_run=on_run,
        )
        stopped = server.failure(env.env_id)
        if stopped is not None:
            # The suite's failure would only show its symptoms (refused connections).
            notify(f"the server stopped during the suite: {stopped}")
        if report.verdict != "passed" or stopped is not None:
            text = server.log_tail(env.env_id, SCANNED_LINES)
            _show_server_log(hide_secrets(text, _secrets(profile, env)), notify)
    _github_step_summary(report, profile)
    annotate(report)
    github.set_outputs({"result": report.verdict, "exit-code": str(report.exit_code)})
    return report


def _secrets(profile: Profile, env: Environment) -> set[str]:
    """The environment's password and the profile's roles' passwords, as output shows them."""
    forms = password_forms(env.password)
    for role in profile.postgres.roles:
        if role.password:
            forms |= password_forms(role.password)
    return forms


def _show_server_log(text: str, notify: Notify) -> None:
    """The log lines that explain connection failures first, then the log's last lines."""
    excerpt = log_excerpt(text)
    if not (excerpt.failures or excerpt.tail):
        return
    with github.group("database server log"):
        if excerpt.failures:
            more = f" (and {excerpt.more_failures} more)" if excerpt.more_failures else ""
            notify(
                "the database server's log lines about failed connections, earlier on"
                f"{more}:\n" + indent_log("\n".join(excerpt.failures))
            )
        if excerpt.tail:
            notify("the database server's last log lines:\n" + indent_log("\n".join(excerpt.tail)))


def _worker_databases(
    profile: Profile, env: Environment, server: Runtime, names: list[str], *, inside: bool
) -> dict[str, str]:
    """Clone the workers' databases; the variables that tell the suite where they are."""
    if not names:
        return {}
    make_databases(env.connection, names)
    reached = server.in_network(env.connection) if inside else env.connection
    folder = env_state_dir(env.env_id) / "workers"
    return write_files(folder, names, reached, lambda c: _render(profile, c))


def _run_in_container(
    profile: Profile,
    env: Environment,
    server: Runtime,
    argv: Sequence[str],
    extra: dict[str, str],
) -> SuiteResult:
    container = profile.test.container
    assert container is not None
    mounts = {profile.workdir: str(profile.workdir)}
    certs = env.connection.sslrootcert
    if certs is not None:
        mounts[certs.parent] = str(certs.parent)  # same paths inside as in the variables
    if FILE_VARIABLE in extra:
        folder = Path(extra[FILE_VARIABLE]).parent
        mounts[folder] = str(folder)  # the workers' file and setup files, at the same paths
    # As a client on the environment's network sees them: the alias, port 5432.
    network = _render(profile, server.in_network(env.connection))
    variables = {**network, **extra, **profile.test.env, **container.env}
    started = time.monotonic()
    code = server.run_suite_container(
        env.env_id,
        image=container.image,
        argv=argv,
        env=variables,
        mounts=mounts,
        workdir=str(profile.workdir),
        timeout=profile.test.timeout,
        user=container.user,
    )
    return SuiteResult(exit_code=code, seconds=time.monotonic() - started)


def _github_step_summary(report: RunReport, profile: Profile) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.write(markdown(report, str(profile.path or profile.name)))
