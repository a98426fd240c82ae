"""A cache entry's configuration as Podman's commit takes it (#24): Podman's Docker API
ignores the JSON body of POST /commit and applies Dockerfile-style `changes` instead.
tests/integration/test_podman.py proves it against a real Podman."""

from __future__ import annotations

import json

from provisioner.runtime.docker_cache import _commit_changes


def test_one_instruction_per_pair_values_in_quotes_commands_as_json() -> None:
    config = {
        "Env": ["PGDATA=/var/lib/postgresql/data", "ARGS=--a=1 --b", "POSTGRES_PASSWORD_FILE="],
        "Cmd": ["postgres", "-c", "a=b,c"],
        "Entrypoint": ["bash", "-c", "echo a\nb"],
        "Labels": {"dev.envctl.cache": "k1", "dev.envctl.owner-pid": "", "p": "/a b/c"},
    }
    assert _commit_changes(config) == [
        'ENV PGDATA="/var/lib/postgresql/data"',
        'ENV ARGS="--a=1 --b"',
        'ENV POSTGRES_PASSWORD_FILE=""',
        'LABEL dev.envctl.cache="k1"',
        'LABEL dev.envctl.owner-pid=""',
        'LABEL p="/a b/c"',
        f"CMD {json.dumps(config['Cmd'])}",
        f"ENTRYPOINT {json.dumps(config['Entrypoint'])}",
    ]


def test_no_entrypoint_keeps_none() -> None:
    config = {"Env": [], "Cmd": ["postgres"], "Entrypoint": None, "Labels": {}}
    assert _commit_changes(config) == ['CMD ["postgres"]']
