"""One exception hierarchy for everything envctl reports to a person.

Every error carries a one-line message that names the file, key or value at fault, an optional
hint with the fix, and the exit code the CLI maps it to.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SUITE_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_ENVIRONMENT_ERROR = 3
EXIT_FLAKY = 4
EXIT_INTERRUPTED = 130


class EnvctlError(Exception):
    """Base of every error envctl raises on purpose."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ProfileError(EnvctlError):
    """The profile (or a file it names) is wrong: the user fixes it."""


class UsageError(EnvctlError):
    """The command line asks for something that cannot be done."""


class InfrastructureError(EnvctlError):
    """Something outside the profile stands in the way: Docker down, port taken, timeout."""

    exit_code = EXIT_ENVIRONMENT_ERROR


class DockerUnavailableError(InfrastructureError):
    """No Docker engine answers."""


class PortInUseError(InfrastructureError):
    """The profile's fixed port is held by something else."""


class AlreadyRunningError(InfrastructureError):
    """An environment for this profile is already up."""


class CacheNotKept(InfrastructureError):
    """The engine would not keep the cluster as a cache entry: the start goes on without it."""


class NotRunningError(InfrastructureError):
    """The command needs a running environment and there is none."""


class ReadinessTimeoutError(InfrastructureError):
    """The server did not accept connections in time."""


class NamesVersionSetting(EnvctlError):
    """An error whose hint says how to choose the Postgres version: a profile key or a flag.

    The same start is reached from a profile (`postgres.version: 17`) and from `repro`
    (`--version 17`); the command that knows which one the user typed calls `naming`.
    """

    def __init__(self, message: str, hint_template: str) -> None:
        self.hint_template = hint_template
        super().__init__(message, hint_template.format(setting=PROFILE_VERSION_SETTING))

    def naming(self, setting: str) -> None:
        """Let the hint name `setting` (e.g. "--version") as the way to choose the version."""
        self.hint = self.hint_template.format(setting=setting)


PROFILE_VERSION_SETTING = "postgres.version:"


class VersionUnknownError(NamesVersionSetting, ProfileError):
    """`version: auto` (or nearest), and no backup says which major it came from."""


class MajorUnavailableError(NamesVersionSetting, InfrastructureError):
    """No image or install of the wanted major is here; the message lists the majors that are."""


class SeedError(EnvctlError):
    """A seed file or backup could not be restored."""


class SuiteTimeoutError(InfrastructureError):
    """The test suite ran longer than test.timeout."""


class Interrupted(EnvctlError):
    """SIGINT or SIGTERM arrived; raised so that teardown runs on the way out."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
        self.exit_code = 128 + signum


def first_line(what: BaseException | str) -> str:
    """The first non-blank line of a message or of an exception (the Docker SDK's explanation
    if it has one), for one-line reports; an empty exception gives its type's name."""
    if isinstance(what, BaseException):
        text = str(getattr(what, "explanation", None) or what)
        fallback = type(what).__name__
    else:
        text, fallback = what, ""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return fallback
