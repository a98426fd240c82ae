"""`envctl doctor`: why a client cannot reach its test database, with evidence and the fix.

Every check reads what a client reads: the env file (by dotenv's rules), the profile, the Docker
engine and the running environment. Connections are made with the values each client takes
from the file, including the defaults it falls back to for what the file leaves out, as
docs/CLIENTS.md records them. Nothing here prints; passwords never appear in a check.
"""

from __future__ import annotations

from provisioner.doctor.agreement import disagreements
from provisioner.doctor.checks import Check, checks_to_json, parse_env_file, run_doctor
from provisioner.doctor.explain import explain_failure
from provisioner.doctor.target import Target
from provisioner.doctor.views import (
    client_views,
    describe_presets,
    jdbc_view,
    libpq_url_view,
    medusa_view,
    node_url_view,
    npgsql_view,
    parse_npgsql,
    prisma_view,
)

__all__ = [
    "Check",
    "Target",
    "checks_to_json",
    "client_views",
    "describe_presets",
    "disagreements",
    "explain_failure",
    "jdbc_view",
    "libpq_url_view",
    "medusa_view",
    "node_url_view",
    "npgsql_view",
    "parse_env_file",
    "parse_npgsql",
    "prisma_view",
    "run_doctor",
]
