"""The cache on a Docker-API engine: an entry is a committed image (`envctl-cache:<key>`) of a
seeded server's container, whose layer holds the cluster; a start from it runs as fast as the
image it came from, whatever the seed's size."""

from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.errors import CacheNotKept, InfrastructureError
from provisioner.runtime.engine import Engine, EngineError, EngineUnreachable, guarded_calls
from provisioner.runtime.labels import CACHE_LABEL, CACHE_REPOSITORY, container_name, image_tag

CACHED_PGDATA = "/var/lib/envctl/pgdata"  # outside the image's VOLUME, so a commit keeps it


@guarded_calls
class DockerCache:
    """The cache entries of one engine."""

    def __init__(
        self,
        engine: Engine,
        client: Callable[[], Any],
        ensure_image: Callable[[str], dict[str, Any]],
    ) -> None:
        self.engine = engine
        self._client = client  # the SDK's client, made on first use
        self._ensure_image = ensure_image

    def identity(self, image: str, major: int, bin_dir: Path | None) -> str | None:
        # Where the cluster lives is part of what an entry holds.
        return f"{self._ensure_image(image)['Id']} pgdata={CACHED_PGDATA}"

    def entry(self, key: str) -> str | None:
        found = self.engine.image(image_tag(key))
        # The tag holds a prefix of the key: serve it only if the whole key matches.
        if found is None or _image_labels(found).get(CACHE_LABEL) != key:
            return None
        return image_tag(key)

    def store(self, env_id: str, key: str, base_image: str, labels: dict[str, str]) -> None:
        base = (self.engine.image(base_image) or {}).get("Config") or {}
        mine = (self.engine.container(container_name(env_id)) or {}).get("Config") or {}
        # The entry gets the base image's own configuration back: none of this container's
        # environment (its password) or labels (its owner) may travel with the data. A commit
        # keeps every variable and label of the container's that it is not given, so those
        # the base lacks are given empty.
        env = list(base.get("Env") or [])
        known = {item.split("=", 1)[0] for item in env}
        env += [f"{name}=" for name in _names(mine.get("Env")) if name not in known]
        kept = {**(base.get("Labels") or {}), **labels, CACHE_LABEL: key}
        config = {
            "Env": env,
            "Cmd": base.get("Cmd") or ["postgres"],
            "Entrypoint": base.get("Entrypoint"),
            "Labels": {
                **{name: "" for name in (mine.get("Labels") or {}) if name not in kept},
                **kept,
            },
        }
        path = "/commit"
        if self._podman:
            path += "?" + urllib.parse.urlencode([("changes", c) for c in _commit_changes(config)])
        try:
            self.engine.request(
                "POST",
                path,
                {
                    "container": container_name(env_id),
                    "repo": CACHE_REPOSITORY,
                    "tag": image_tag(key).split(":", 1)[1],
                    "pause": True,  # a crash-consistent copy of a running server's files
                },
                json_body=config,
            )
        except EngineError as exc:
            if exc.not_found:
                raise container_gone(env_id) from None
            # Rootless Podman on cgroup v1 cannot pause a container, so it cannot commit one
            # that runs; a full disk refuses too. The entry is a saving, not the start's point.
            raise CacheNotKept(exc.message) from None

    def started_from(self, env_id: str, entry: str) -> None:
        """Nothing to prepare: a container starts from the image as it is."""

    @functools.cached_property
    def _podman(self) -> bool:
        """Podman's Docker API (4.3) ignores the configuration a commit is given in its body:
        it takes Dockerfile instructions (`changes`) instead."""
        try:
            version = self.engine.request("GET", "/version") or {}
        except (EngineError, EngineUnreachable):
            return False
        components = version.get("Components") or [{}]
        return str(components[0].get("Name", "")).startswith("Podman")

    def entries(self) -> list[dict[str, Any]]:
        """Every cache image, tagged or left dangling by a concurrent build of the same key."""
        entries = []
        for image in self._client().images.list(filters={"label": CACHE_LABEL}):
            entries.append(
                {
                    "id": image.id,
                    "tags": list(image.tags),
                    "labels": dict(image.labels or {}),
                    "size": int(image.attrs.get("Size", 0)),
                    "created": image.attrs.get("Created", ""),
                }
            )
        return entries

    def remove(self, entry_id: str) -> None:
        """Remove a cache image (not while a container uses it)."""
        self._client().images.remove(entry_id, force=False, noprune=False)


def container_gone(env_id: str) -> InfrastructureError:
    return InfrastructureError(
        f"the container of environment {env_id} is gone", hint="start it again with `envctl up`"
    )


def _commit_changes(config: dict[str, Any]) -> list[str]:
    """A commit's configuration as Podman's `changes`: one pair per ENV or LABEL (Podman does
    not split several), each value in double quotes, which Podman strips (it reads no escapes
    in them); CMD and ENTRYPOINT as JSON arrays."""
    pairs = (item.partition("=") for item in config["Env"])
    changes = [f'ENV {name}="{value}"' for name, _, value in pairs]
    changes += [f'LABEL {name}="{value}"' for name, value in config["Labels"].items()]
    changes.append(f"CMD {json.dumps(config['Cmd'])}")
    if config.get("Entrypoint"):
        changes.append(f"ENTRYPOINT {json.dumps(config['Entrypoint'])}")
    return changes


def _image_labels(image: dict[str, Any]) -> dict[str, str]:
    return dict((image.get("Config") or {}).get("Labels") or {})


def _names(env: list[str] | None) -> list[str]:
    """The names of a container's `NAME=value` variables."""
    return [item.split("=", 1)[0] for item in env or []]
