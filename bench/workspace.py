"""A private place to benchmark in: temp state, temp profiles, and a sweep that removes it all.

Everything the benchmarks start is found again by where it lives: envctl's containers and
networks by their `dev.envctl.state-dir` label (under this workspace's temp root), the
baselines' containers by the `dev.envctl.bench` label, native servers through `envctl down`
of every profile written here. `Workspace.close()` removes all of it, also after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
IMAGE_TEMPLATE = "envctl-test/postgres:{major}"
BENCH_LABEL = "dev.envctl.bench"
STATE_DIR_LABEL = "dev.envctl.state-dir"
CACHE_LABEL = "dev.envctl.cache"
CACHE_PROFILE_LABEL = "dev.envctl.cache-profile"
MANAGED_LABEL = "dev.envctl.managed"
COMMAND_TIMEOUT = 900.0
INTERRUPT_GRACE = 60.0  # seconds a command gets to clean up after Ctrl-C
# Outer settings that would change what is measured: a cache switched off for every row, or
# envctl exporting into a CI job's environment.
DROPPED_VARIABLES = ("ENVCTL_CACHE", "GITHUB_ACTIONS", "GITHUB_ENV", "GITHUB_OUTPUT")


class CommandFailed(RuntimeError):
    """A subprocess the benchmark relies on exited non-zero; the message is its last lines."""


def envctl_argv() -> list[str]:
    """The `envctl` console script of this interpreter's environment (what users run)."""
    script = Path(sys.executable).parent / "envctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provisioner"]


def run(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell), capture its output, raise CommandFailed with its tail.

    On Ctrl-C the command gets SIGINT and time to finish: envctl tears down what it was
    starting, which killing it (as subprocess.run does) would cut short.
    """
    with subprocess.Popen(
        argv,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=INTERRUPT_GRACE)
            process.kill()
            raise
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    if check and done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise CommandFailed(
            f"`{' '.join(argv[:3])} …` exited {done.returncode}: {' | '.join(tail)}"
        )
    return done


def docker(*args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> str:
    """`docker ARGS`; its stdout, stripped."""
    return run(["docker", *args], check=check, timeout=timeout).stdout.strip()


def wait_for_select_1(url: str, timeout: float = 120.0) -> None:
    """Poll until `SELECT 1` succeeds through `url` (what a test suite's first query needs)."""
    import psycopg

    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1").fetchone()
            return
        except psycopg.Error:
            if time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


class Workspace:
    """Temp root with envctl's state folder and the profiles; the environment envctl runs in."""

    def __init__(self, major: int) -> None:
        self.major = major
        self.image = IMAGE_TEMPLATE.format(major=major)
        self.root = Path(tempfile.mkdtemp(prefix="envctl-bench-"))
        self.state = self.root / "state"
        self.profiles = self.root / "profiles"
        self.profiles.mkdir()
        self._maybe_up: set[Path] = set()
        self._containers: set[str] = set()
        # Labels of containers started by libraries that take no label of ours (testcontainers).
        self.sweep_labels: set[str] = set()
        self._lock = threading.Lock()
        self.base_env = {
            **{k: v for k, v in os.environ.items() if k not in DROPPED_VARIABLES},
            "ENVCTL_STATE_DIR": str(self.state),
            # The native runtime's entries: private to this run, emptied with it.
            "ENVCTL_CACHE_DIR": str(self.root / "cache"),
            "ENVCTL_POSTGRES_IMAGE": IMAGE_TEMPLATE,
            # Docker unless a variant asks for --runtime native: `auto` could hide a failure.
            "ENVCTL_RUNTIME": "docker",
        }

    # -- envctl ---------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment every envctl command runs with, plus `extra`."""
        return {**self.base_env, **extra}

    def envctl(
        self, *args: str, check: bool = True, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `envctl` CLI against this workspace's state folder."""
        return run([*envctl_argv(), *args], env=self.env(**(extra_env or {})), check=check)

    def up(
        self, profile: Path, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`envctl up [ARGS] PROFILE`; remembered so that `close()` takes it down."""
        with self._lock:
            self._maybe_up.add(profile)
        return self.envctl("up", *args, str(profile), extra_env=extra_env)

    def down(self, profile: Path) -> None:
        """`envctl down PROFILE` (outside any timed part); failures are left for close()."""
        done = self.envctl("down", str(profile), check=False)
        if done.returncode == 0:
            with self._lock:
                self._maybe_up.discard(profile)

    def envctl_containers(self) -> list[str]:
        """Ids of the running containers envctl started from this workspace."""
        return [cid for cid, _ in self._managed("ps")]

    def has_command(self, name: str) -> bool:
        """Whether this build of envctl has the subcommand `name`."""
        done = self.envctl(name, "--help", check=False)
        return done.returncode == 0

    def profile(
        self,
        name: str,
        *,
        seed: list[Any] | None = None,
        preset: str | None = None,
        **postgres: Any,
    ) -> Path:
        """Write profile `name` (Postgres `major`, port auto, its own env file, `preset`'s
        variables or the default ones); its path."""
        pg: dict[str, Any] = {
            "version": str(self.major),
            "port": "auto",
            "database": "app",
            **postgres,
        }
        if seed:
            pg["seed"] = seed
        env: dict[str, Any] = {"file": f"{name}.env.test"}
        if preset:
            env["preset"] = preset
        data = {"name": name, "postgres": pg, "env": env}
        path = self.profiles / f"{name}.yaml"
        path.write_text(json.dumps(data, indent=2) + "\n")  # JSON is YAML
        return path

    def url_of(self, profile: Path) -> str:
        """DATABASE_URL from the env file `envctl up` wrote for `profile`."""
        name = profile.stem
        return read_env_file(profile.parent / f"{name}.env.test")["DATABASE_URL"]

    def container_of(self, profile: Path) -> str:
        """The id of the running container envctl started for `profile`."""
        fmt = '{{.ID}}\t{{.Label "dev.envctl.profile"}}'
        listing = docker("ps", "--filter", f"label={MANAGED_LABEL}", "--format", fmt)
        found = [
            cid
            for cid, _, path in (line.partition("\t") for line in listing.splitlines())
            if path and Path(path).resolve() == profile.resolve()
        ]
        if len(found) != 1:
            raise CommandFailed(f"expected one container for {profile.name}, found {len(found)}")
        return found[0]

    # -- baselines' containers -------------------------------------------------------------

    def label(self) -> str:
        """`--label` value that marks a baseline container as this workspace's."""
        return f"{BENCH_LABEL}={self.root}"

    def track(self, container_id: str) -> None:
        with self._lock:
            self._containers.add(container_id)

    def untrack(self, container_id: str) -> None:
        with self._lock:
            self._containers.discard(container_id)

    # -- cleanup ---------------------------------------------------------------------------

    def down_all(self) -> None:
        """`envctl down` every profile that may still be up (native servers included)."""
        for path in sorted(self._maybe_up):
            with contextlib.suppress(Exception):
                self.envctl("down", str(path), check=False)
        self._maybe_up.clear()

    def sweep(self) -> list[str]:
        """Remove every container and network this workspace started; their names."""
        removed: list[str] = []
        ids = set(self._containers)
        ids.update(docker("ps", "-aq", "--filter", f"label={self.label()}", check=False).split())
        for label in self.sweep_labels:
            ids.update(docker("ps", "-aq", "--filter", f"label={label}", check=False).split())
        ids.update(cid for cid, _ in self._managed("ps", "-a"))
        if ids:
            docker("rm", "-fv", *sorted(ids), check=False)
            removed += sorted(ids)
        for nid, _ in self._managed("network", "ls"):
            docker("network", "rm", nid, check=False)
            removed.append(nid)
        with self._lock:
            self._containers.clear()
        return removed

    def _managed(self, *listing: str) -> list[tuple[str, str]]:
        """(id, state dir) of envctl's containers or networks whose state is under the root."""
        fmt = '{{.ID}}\t{{.Label "' + STATE_DIR_LABEL + '"}}'
        args = [*listing, "--filter", f"label={MANAGED_LABEL}", "--format", fmt]
        found = []
        for line in docker(*args, check=False).splitlines():
            oid, _, state_dir = line.partition("\t")
            if state_dir.startswith(str(self.root)):
                found.append((oid, state_dir))
        return found

    def cache_entries(self) -> list[str]:
        """Ids of envctl's cache images made from this workspace's profiles."""
        ids = docker("images", "-q", "--filter", f"label={CACHE_LABEL}", check=False).split()
        if not ids:
            return []
        fmt = '{{.Id}}\t{{index .Config.Labels "' + CACHE_PROFILE_LABEL + '"}}'
        listing = docker("image", "inspect", "--format", fmt, *sorted(set(ids)), check=False)
        return [
            image
            for image, _, profile in (line.partition("\t") for line in listing.splitlines())
            if profile.startswith(str(self.root))
        ]

    def remove_cache_entries(self) -> list[str]:
        """Remove the cache images this workspace's profiles made (those not in use), the
        native runtime's entries (all of them this run's), and what the state folder
        remembers of earlier starts: by default envctl keeps an entry from a key's second
        start on, and the next start must be a first one again."""
        images = self.cache_entries()
        for image in images:
            docker("rmi", image, check=False)
        native = self.root / "cache" / "native"
        entries = sorted(native.iterdir()) if native.is_dir() else []
        for entry in entries:
            shutil.rmtree(entry, ignore_errors=True)
        remembered = self.state / "cache"
        for started in remembered.iterdir() if remembered.is_dir() else []:
            if started.is_file() and len(started.name) == 64:  # a key's last start
                started.unlink()
        return [*images, *(f"native cache entry {entry.name[:16]}" for entry in entries)]

    def close(self) -> list[str]:
        """Take everything down, sweep what is left, delete the temp root."""
        self.down_all()
        removed = self.sweep()
        removed += self.remove_cache_entries()
        shutil.rmtree(self.root, ignore_errors=True)
        return removed

    @contextlib.contextmanager
    def process_env(self, **extra: str) -> Iterator[None]:
        """This process's os.environ as envctl's commands see it, for in-process API calls."""
        keys = ("ENVCTL_STATE_DIR", "ENVCTL_POSTGRES_IMAGE", "ENVCTL_RUNTIME", *extra)
        saved = {key: os.environ.get(key) for key in keys}
        os.environ.update({key: self.base_env[key] for key in keys[:3]})
        os.environ.update(extra)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
