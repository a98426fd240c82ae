"""Every label envctl puts on what it creates (servers: containers, native server folders; cache
entries), and the names it gives them. One home, so that what `gc`, `status` and `cache ls`
read back is what was written."""

from __future__ import annotations

from provisioner.state import EnvironmentRecord, env_state_dir

LABEL_PREFIX = "dev.envctl."
MANAGED_LABEL = f"{LABEL_PREFIX}managed"
ENV_LABEL = f"{LABEL_PREFIX}env"
NAME_LABEL = f"{LABEL_PREFIX}name"
PURPOSE_LABEL = f"{LABEL_PREFIX}purpose"
ROLE_LABEL = f"{LABEL_PREFIX}role"
PORT_LABEL = f"{LABEL_PREFIX}port"  # the port of a server on this machine's network
STATE_DIR_LABEL = f"{LABEL_PREFIX}state-dir"
OWNER_PID_LABEL = f"{LABEL_PREFIX}owner-pid"
OWNER_START_LABEL = f"{LABEL_PREFIX}owner-start"
MODE_LABEL = f"{LABEL_PREFIX}mode"
CACHE_REPOSITORY = "envctl-cache"
CACHE_LABEL = f"{LABEL_PREFIX}cache"
CACHE_PROFILE_LABEL = f"{LABEL_PREFIX}cache-profile"


def environment_labels(record: EnvironmentRecord) -> dict[str, str]:
    """The labels of an environment's server: whose it is, and where its state folder is."""
    return {
        MANAGED_LABEL: "true",
        ENV_LABEL: record.env_id,
        NAME_LABEL: record.name,
        f"{LABEL_PREFIX}profile": record.profile or "",
        MODE_LABEL: record.mode,
        OWNER_PID_LABEL: str(record.owner_pid),
        OWNER_START_LABEL: str(record.owner_start or ""),
        f"{LABEL_PREFIX}runtime": record.runtime,
        STATE_DIR_LABEL: str(env_state_dir(record.env_id)),
    }


def container_name(env_id: str) -> str:
    """The container (and network) name of an environment."""
    return f"envctl-{env_id}"


def image_tag(key: str) -> str:
    """The image name of a cache entry."""
    return f"{CACHE_REPOSITORY}:{key[:40]}"
