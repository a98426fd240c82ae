"""`envctl run`: bring an environment up, run the suite against it (repeatedly), report, and
always tear down. `run` holds the whole sequence; `process` runs the suite on the host,
`verdict` adds the runs up, `junit` reads results, `report` shows them, `workers` clones a
database per test worker."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.suite.process import check_command, command_argv, run_suite
    from provisioner.suite.report import print_summary, write_json
    from provisioner.suite.run import run_profile
    from provisioner.suite.verdict import RunRecord, RunReport

__all__ = [
    "RunRecord",
    "RunReport",
    "check_command",
    "command_argv",
    "print_summary",
    "run_profile",
    "run_suite",
    "write_json",
]

# Loaded on first use, so that `migrate` takes `run_suite` without the lifecycle `run` needs.
_LAZY = {
    "check_command": "provisioner.suite.process",
    "command_argv": "provisioner.suite.process",
    "run_suite": "provisioner.suite.process",
    "print_summary": "provisioner.suite.report",
    "write_json": "provisioner.suite.report",
    "run_profile": "provisioner.suite.run",
    "RunRecord": "provisioner.suite.verdict",
    "RunReport": "provisioner.suite.verdict",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'provisioner.suite' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
