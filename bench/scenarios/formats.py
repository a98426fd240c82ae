"""Which way of keeping a seeded cluster starts fastest: the measurement behind envctl's cache.

One seeded cluster (envctl's own cache entry for a pg_dump seed) is kept three ways, and each
trial starts a server from it until it answers on TCP:

- **committed image**, what envctl does: `docker run` of the image whose layer holds PGDATA;
- **tar of PGDATA**: `docker create` of the base image, the tar streamed in (`docker cp -`),
  `docker start`;
- **copied volume**: `docker volume create`, a helper container copying a kept volume into it
  (`cp -a`), `docker run` with the new volume.

Every variant runs the same server the same way (`postgres -D ...` as the image's postgres
user), so only the format differs. "Answers" means the server accepts the connection and asks
for the password: the cluster's password is not known (entries never share one), and the
moment of the first answer is the same with or without it.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.measure import ScenarioResult, TrialResult, Variant, alternate, stopwatch
from bench.scenarios.context import CACHE_ON, Context
from bench.seeds import ensure_seed
from bench.workspace import Workspace, docker, run

PGDATA = (
    "/var/lib/envctl/pgdata"  # where envctl's entries keep the cluster (provisioner.runtime.docker)
)
SERVER = ["--user", "postgres", "--entrypoint", "postgres"]
SERVER_ARGS = ["-D", PGDATA, "-c", "listen_addresses=*", "-c", "fsync=off"]


def formats(ctx: Context) -> ScenarioResult:
    """Start from a seeded cluster kept as a committed image, a tar of PGDATA, a copied volume."""
    ws = ctx.ws
    result = ctx.begin(
        "formats", f"Cache format: start a server from a kept seeded cluster ({ws.image})"
    )
    sizes = (5,) if ctx.plan.quick else (5, 50)
    with contextlib.ExitStack() as cleanup:
        variants = []
        for size in sizes:
            kept = _keep_three_ways(ctx, size, cleanup)
            image = f"{size} MB, committed image (envctl's)"
            variants += [
                Variant(image, _image_trial(ws, kept["image"]), note="docker run"),
                Variant(
                    f"{size} MB, tar of PGDATA",
                    _tar_trial(ws, kept["tar"]),
                    baseline=image,
                    note="docker create + docker cp - + docker start",
                ),
                Variant(
                    f"{size} MB, copied volume",
                    _volume_trial(ws, kept["volume"]),
                    baseline=image,
                    note="volume create + cp -a in a helper container + docker run",
                ),
            ]
        alternate(result, variants, ctx.plan.rounds, ctx.progress)
    result.notes.append(
        "docker CLI only (no Python start-up in any row); ready = the server answers on TCP."
    )
    return result


def _keep_three_ways(ctx: Context, size: int, cleanup: contextlib.ExitStack) -> dict[str, str]:
    """envctl's cache image for a seeded profile, then the same PGDATA as a tar and a volume."""
    ws = ctx.ws
    dump = ensure_seed(ws, size, ctx.progress)
    profile = ws.profile(f"formats-{size}mb", seed=[str(dump)])
    ctx.progress(f"formats · keeping the {size} MB cluster three ways")
    try:
        ws.up(profile, extra_env=CACHE_ON)  # this start stores the entry
    finally:
        ws.down(profile)
    images = ws.cache_entries()
    cleanup.callback(ws.remove_cache_entries)
    image = _entry_of(images, profile)
    folder = Path(tempfile.mkdtemp(prefix="envctl-bench-formats-"))
    cleanup.callback(run, ["rm", "-rf", str(folder)], check=False)
    tar = folder / "pgdata.tar"
    holder = docker("create", image)
    try:
        with tar.open("wb") as out:
            # A tar whose members are envctl/pgdata/...: streamed into /var/lib of a new one.
            subprocess.run(
                ["docker", "cp", f"{holder}:/var/lib/envctl", "-"], stdout=out, check=True
            )
    finally:
        docker("rm", "-fv", holder, check=False)
    volume = docker("volume", "create", "--label", ws.label())
    cleanup.callback(docker, "volume", "rm", "-f", volume, check=False)
    docker(
        "run", "--rm", "-v", f"{volume}:/dst", "--entrypoint", "cp", image,
        "-a", f"{PGDATA}/.", "/dst/",
    )  # fmt: skip
    return {"image": image, "tar": str(tar), "volume": volume}


def _entry_of(images: list[str], profile: Path) -> str:
    for image in images:
        labels = docker(
            "image", "inspect", "--format", '{{index .Config.Labels "dev.envctl.cache-profile"}}',
            image,
        )  # fmt: skip
        if labels == str(profile):
            return image
    raise RuntimeError(f"envctl kept no cache image for {profile}")


def _timed(start: Callable[[list[tuple[str, ...]]], str]) -> Callable[[], TrialResult]:
    """A trial: `start` makes a server's container (adding the docker commands that remove what
    it made to its list) and returns it; timed until the server answers; then all removed."""

    def trial() -> float:
        undo: list[tuple[str, ...]] = []
        try:
            with stopwatch() as watch:
                _wait_for_answer(start(undo))
            return watch.seconds
        finally:
            for argv in reversed(undo):
                docker(*argv, check=False)

    return trial


def _image_trial(ws: Workspace, image: str) -> Callable[[], TrialResult]:
    def start(undo: list[tuple[str, ...]]) -> str:
        container = docker(
            "run", "-d", "--label", ws.label(), "-p", "127.0.0.1::5432", *SERVER, image,
            *SERVER_ARGS,
        )  # fmt: skip
        undo.append(("rm", "-fv", container))
        return container

    return _timed(start)


def _tar_trial(ws: Workspace, tar: str) -> Callable[[], TrialResult]:
    def start(undo: list[tuple[str, ...]]) -> str:
        container = docker(
            "create", "--label", ws.label(), "-p", "127.0.0.1::5432", *SERVER, ws.image,
            *SERVER_ARGS,
        )  # fmt: skip
        undo.append(("rm", "-fv", container))
        with open(tar, "rb") as stream:
            subprocess.run(
                ["docker", "cp", "-", f"{container}:/var/lib"],
                stdin=stream,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        docker("start", container)
        return container

    return _timed(start)


def _volume_trial(ws: Workspace, kept: str) -> Callable[[], TrialResult]:
    def start(undo: list[tuple[str, ...]]) -> str:
        volume = docker("volume", "create", "--label", ws.label())
        undo.append(("volume", "rm", "-f", volume))
        docker(
            "run", "--rm", "-v", f"{kept}:/src:ro", "-v", f"{volume}:/dst",
            "--entrypoint", "cp", ws.image, "-a", "/src/.", "/dst/",
        )  # fmt: skip
        container = docker(
            "run", "-d", "--label", ws.label(), "-p", "127.0.0.1::5432",
            "-v", f"{volume}:{PGDATA}", *SERVER, ws.image, *SERVER_ARGS,
        )  # fmt: skip
        undo.append(("rm", "-fv", container))
        return container

    return _timed(start)


def _wait_for_answer(container: str, timeout: float = 60.0) -> None:
    """Until the server asks for a password on its published port (see the module doc)."""
    import psycopg

    port = docker("port", container, "5432/tcp").splitlines()[0].rsplit(":", 1)[1]
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(
                f"postgresql://postgres:not-the-password@127.0.0.1:{port}/postgres",
                connect_timeout=2,
            ).close()
            return
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.01)
