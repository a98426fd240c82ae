"""`envctl validate`, without typer: the typer command runs `validate_profiles`, and so does the
console script for a plain `envctl validate PATH...`, through `validate_without_typer`, which
does what the typer app does around a command. Both say the same and end with the same code."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from provisioner.errors import EXIT_INTERRUPTED, EnvctlError
from provisioner.terminal import configure_logging, exit_process, print_error, say


def validate_profiles(paths: Iterable[Path]) -> None:
    """Load and check each profile as `up` would, saying `ok: ...` for each; the first problem
    raises its ProfileError."""
    from provisioner.preflight import check_before_start
    from provisioner.profile import load_profile

    for path in paths:
        profile = load_profile(path)
        check_before_start(profile)
        pg = profile.postgres
        say(
            f"ok: {path} (name {profile.name}, Postgres {pg.version}, port {pg.port}, "
            f"ssl {pg.ssl.mode}, image {pg.resolved_image()})"
        )


def validate_without_typer(paths: list[Path]) -> NoReturn:
    """`validate_profiles` as the typer app runs it: its logging (no --verbose), an envctl
    error printed with its exit code, Ctrl-C ending with 130 and nothing said, as typer does."""
    # pydantic looks for plugins in the entry points of every installed distribution at the
    # first model it builds (importlib.metadata: about 10 ms here); envctl's models use none.
    # Only here: validate starts no process, while every other command's suite and migration
    # commands inherit envctl's environment, where the user's own plugins must stay on.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    configure_logging(verbose=False)
    try:
        validate_profiles(paths)
    except EnvctlError as exc:
        print_error(exc)
        exit_process(exc.exit_code)
    except KeyboardInterrupt:
        exit_process(EXIT_INTERRUPTED)
    exit_process(0)
