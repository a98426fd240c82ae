"""Environments: starting one (the claim, the start's steps), finding it again, tearing it down,
and finding those whose owner is gone. The names here are what the CLI, the API and the pytest
plugin use."""

from provisioner.environments.claim import is_orphan
from provisioner.environments.environment import Environment, find, require_running
from provisioner.environments.lifecycle import (
    check_dump_output,
    dump,
    environment,
    open_runtime,
    reset,
    settle_version,
    up,
)
from provisioner.environments.orphans import (
    Survey,
    collect_garbage,
    find_orphans,
    status_rows,
    survey,
)
from provisioner.environments.teardown import down, record_suite_group

__all__ = [
    "Environment",
    "Survey",
    "check_dump_output",
    "collect_garbage",
    "down",
    "dump",
    "environment",
    "find",
    "find_orphans",
    "is_orphan",
    "open_runtime",
    "record_suite_group",
    "require_running",
    "reset",
    "settle_version",
    "status_rows",
    "survey",
    "up",
]
