"""The native runtime: Postgres from local or pip-installed binaries (being written)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from provisioner.errors import InfrastructureError
from provisioner.runtime import ExecResult, FoundEnvironment, ServerSpec, StartedServer


def _unavailable() -> InfrastructureError:
    return InfrastructureError("the native runtime is not available yet", hint="use Docker")


class NativeRuntime:
    """Placeholder until the native runtime lands: knows no environments, starts none."""

    name = "native"

    def config_dir(self, env_id: str) -> str:
        raise _unavailable()

    def start(self, spec: ServerSpec) -> StartedServer:
        raise _unavailable()

    def failure(self, env_id: str) -> str | None:
        return "the native runtime is not available yet"

    def log_tail(self, env_id: str, lines: int = 40) -> str:
        return ""

    def remove(self, env_id: str) -> list[str]:
        return []

    def environments(self) -> list[FoundEnvironment]:
        return []

    def exec(
        self, env_id: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ExecResult:
        raise _unavailable()

    def copy_in(self, env_id: str, source: Path) -> str:
        raise _unavailable()

    def copy_out(self, env_id: str, path: str, destination: Path) -> None:
        raise _unavailable()
