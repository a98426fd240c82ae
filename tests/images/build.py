#!/usr/bin/env python3
"""Build the local ``envctl-test/postgres:<MAJOR>`` images used by envctl's tests.

Each image is also tagged ``postgres:<MAJOR>``, the official image's name: envctl's default
image template names it, so the journey tests (tests/journeys) run envctl exactly as a user
does, with no ENVCTL_POSTGRES_IMAGE. An official ``postgres:<MAJOR>`` already here (pulled,
without our label) is never retagged.

Usage: python tests/images/build.py [--force] [--verbose] [MAJOR ...]   (default: 15 17)

Nothing is pulled from a container registry. Each image is made like this:

1. ``debootstrap --variant=minbase`` of the Debian suite carrying PostgreSQL
   <MAJOR> (see SUITES), from the Debian mirror configured on this host (or
   ``$ENVCTL_DEBIAN_MIRROR``);
2. the rootfs is piped into ``docker import`` as a temporary base image;
3. a temporary container of that base (host network, for the mirror) runs
   SETUP_SCRIPT: postgres user/group 999:999, en_US.UTF-8 locale,
   ``postgresql-<MAJOR>`` without an auto-created cluster, our entrypoint,
   then strips docs/man pages/apt lists;
4. that container is exported and ``docker import --change ...``-ed as one
   layer with the official ``postgres`` image's metadata (ENTRYPOINT/CMD/ENV/
   VOLUME/EXPOSE/LABEL); a metadata-only ``docker build`` FROM that local image
   adds STOPSIGNAL (which ``docker import`` rejects);
5. a quick smoke test, the tag is set, and the temporary images/container/
   directories go (also on failure or SIGINT/SIGTERM).

Standard library only; must run as root (debootstrap).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENTRYPOINT = HERE / "docker-entrypoint.sh"

REPOSITORY = "envctl-test/postgres"
OFFICIAL_REPOSITORY = "postgres"
LABEL = "org.envctl.test-image"
DEFAULT_MAJORS = ("15", "17")
# PostgreSQL major -> Debian suite whose main archive ships postgresql-<major>
SUITES = {"15": "bookworm", "17": "trixie", "18": "sid"}
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_TAIL_LINES = 60
# must all be callable by name in the final image
SMOKE_COMMANDS = (
    *("postgres", "initdb", "pg_ctl", "psql", "pg_dump", "pg_restore", "pg_dumpall"),
    *("docker-entrypoint.sh", "setpriv"),
)
# suites that identify a source as the Debian archive (for finding the mirror)
DEBIAN_SUITE_NAMES = {
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "experimental",
}

# Runs inside the temporary container (as root, `sh -s MAJOR PGDATA`).
SETUP_SCRIPT = r"""
set -eu
major="$1"; pgdata="$2"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PYTHONDONTWRITEBYTECODE=1

# no docs/man pages/translations from here on
cat > /etc/dpkg/dpkg.cfg.d/envctl-nodoc <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
cat > /etc/apt/apt.conf.d/90envctl <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::Retries "3";
// sid's Release carries a Valid-Until; a frozen/snapshot mirror would otherwise
// be refused (signatures are still checked)
Acquire::Check-Valid-Until "false";
EOF

# the ids envctl (and the official image) rely on, before any package adds the user
if ! getent group postgres >/dev/null; then groupadd --system --gid 999 postgres; fi
if ! getent passwd postgres >/dev/null; then
    useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql \
        --shell /bin/bash --comment 'PostgreSQL administrator' postgres
fi
install -d -o postgres -g postgres -m 1777 /var/lib/postgresql

apt-get update -qq
apt-get install -y -q locales xz-utils zstd libnss-wrapper postgresql-common
# the entrypoint drops privileges with util-linux's setpriv
command -v setpriv >/dev/null

echo 'en_US.UTF-8 UTF-8' > /etc/locale.gen
locale-gen
locale -a | grep -qx 'en_US.utf8'

# Debian's packaging must not create the "main" cluster (/etc/postgresql/<major>/main)
sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
grep -qx 'create_main_cluster = false' /etc/postgresql-common/createcluster.conf
apt-get install -y -q "postgresql-$major"
# 18+ ships the LLVM JIT separately; the official image installs it where available
if apt-get install -s "postgresql-$major-jit" >/dev/null 2>&1; then
    apt-get install -y -q "postgresql-$major-jit"
fi

# if anything gave postgres other ids, move it (and its files) to 999:999
uid="$(id -u postgres)"; gid="$(getent group postgres | cut -d: -f3)"
if [ "$gid" != 999 ]; then
    groupmod --gid 999 postgres
    find / -xdev -gid "$gid" -exec chgrp -h 999 {} +
fi
if [ "$uid" != 999 ]; then
    usermod --uid 999 --gid 999 postgres
    find / -xdev -uid "$uid" -exec chown -h 999 {} +
fi
[ "$(id -u postgres):$(id -g postgres)" = 999:999 ]

rm -rf "/var/lib/postgresql/$major/main" "/etc/postgresql/$major/main"
rmdir "/etc/postgresql/$major" 2>/dev/null || true

# the server listens on every interface, like the official image's sample config
sample="/usr/share/postgresql/$major/postgresql.conf.sample"
sed -ri "s/^#?(listen_addresses)[[:space:]]*=[[:space:]]*[^[:space:]]+/\1 = '*'/" "$sample"
grep -q "^listen_addresses = '\*'" "$sample"

install -d -o postgres -g postgres -m 3777 /var/run/postgresql
install -d -o postgres -g postgres -m 1777 "$pgdata"
install -d /docker-entrypoint-initdb.d
install -m 0755 /envctl-setup/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# leftovers
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old \
    /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/lintian /var/cache/man \
    /debootstrap /var/log/bootstrap.log /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log \
    /tmp/* /var/tmp/* /root/.cache
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find / -xdev -name '*.pyc' -type f -delete
find /usr/share/doc -xdev -mindepth 1 -type d -empty -delete 2>/dev/null || true

PATH="$PATH:/usr/lib/postgresql/$major/bin"
postgres --version
"""


class BuildError(Exception):
    """A step failed; the message is shown to the user."""


def say(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- mirror


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t" and key:
            current[key] += " " + line.strip()
            continue
        if ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _candidate_mirrors() -> list[tuple[str, str]]:
    """(uri, suites) pairs of the host's 'deb' sources, in apt's reading order."""
    found: list[tuple[str, str]] = []
    legacy = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    for path in legacy:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line.startswith("deb "):
                continue
            line = re.sub(r"\[[^\]]*\]", " ", line)  # drop [ options ]
            fields = line.split()
            if len(fields) >= 3:
                found.append((fields[1], fields[2]))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for stanza in _deb822_stanzas(text):
            if "deb" not in stanza.get("types", "").split():
                continue
            if stanza.get("enabled", "yes").lower() == "no":
                continue
            for uri in stanza.get("uris", "").split():
                found.append((uri, stanza.get("suites", "")))
    return found


def debian_mirror() -> str:
    override = os.environ.get("ENVCTL_DEBIAN_MIRROR", "").strip()
    if override:
        return override.rstrip("/")
    for uri, suites in _candidate_mirrors():
        if not uri.startswith(("http://", "https://")):
            continue
        # the main archive: not debian-security, not a third-party repository
        if "security" in uri or "security" in suites:
            continue
        if not any(s.split("-")[0] in DEBIAN_SUITE_NAMES for s in suites.split()):
            continue
        return uri.rstrip("/")
    raise BuildError(
        "no Debian mirror found in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; "
        "set ENVCTL_DEBIAN_MIRROR=<http URL of a Debian archive>"
    )


# --------------------------------------------------------------------------- helpers


class Log:
    """Collects every subprocess' output in a file; shown (tail) on failure."""

    def __init__(self, path: Path, verbose: bool) -> None:
        self.path = path
        self.verbose = verbose
        self.fh = open(path, "ab")  # noqa: SIM115 (closed by close())

    def close(self) -> None:
        self.fh.close()

    def tail(self, n: int = LOG_TAIL_LINES) -> str:
        self.fh.flush()
        try:
            lines = self.path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def run(self, cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
        self.fh.write(f"\n$ {shlex.join(cmd)}\n".encode())
        self.fh.flush()
        out = None if self.verbose else self.fh
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT if out else None, **kw)
        except FileNotFoundError as exc:
            raise BuildError(f"{what}: {exc.filename} not found") from None
        if proc.returncode != 0:
            raise BuildError(f"{what} failed (exit {proc.returncode})")
        return proc


def docker_out(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"docker {args[0]} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def image_exists(ref: str) -> bool:
    return (
        subprocess.run(
            ["docker", "image", "inspect", ref],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


def mounts_under(root: Path) -> list[str]:
    root_s = str(root)
    points = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                point = line.split()[4].replace("\\040", " ")
                if point == root_s or point.startswith(root_s + "/"):
                    points.append(point)
    except OSError:
        pass
    return sorted(points, key=len, reverse=True)


def remove_tree(root: Path) -> None:
    """rm -rf that never walks into something still mounted (debootstrap may leave
    /proc, /sys or bind-mounted /dev nodes behind when it fails)."""
    if not root.exists():
        return
    for point in mounts_under(root):
        if subprocess.run(["umount", point], stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
    left = mounts_under(root)
    if left:
        raise BuildError(f"could not unmount {', '.join(left)}; remove {root} by hand")
    shutil.rmtree(root, ignore_errors=True)


def human(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


# --------------------------------------------------------------------------- build


def pgdata_for(major: str) -> str:
    return "/var/lib/postgresql/data" if int(major) <= 17 else f"/var/lib/postgresql/{major}/docker"


def image_metadata(major: str, suite: str) -> list[str]:
    """Dockerfile instructions of the final image (the official image's contract)."""
    volume = "/var/lib/postgresql/data" if int(major) <= 17 else "/var/lib/postgresql"
    return [
        f"ENV PATH={BASE_PATH}:/usr/lib/postgresql/{major}/bin",
        "ENV LANG=en_US.utf8",
        f"ENV PG_MAJOR={major}",
        f"ENV PGDATA={pgdata_for(major)}",
        f"VOLUME {volume}",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        "EXPOSE 5432",
        f"LABEL {LABEL}=true org.envctl.pg-major={major} org.envctl.debian-suite={suite}",
        # `docker import --change` rejects STOPSIGNAL: it is added by `docker build`
        "STOPSIGNAL SIGINT",
    ]


def pipe(log: Log, producer: list[str], consumer: list[str], what: str) -> None:
    """producer | consumer, output into the log; fails if either side fails."""
    log.fh.write(f"\n$ {shlex.join(producer)} | {shlex.join(consumer)}\n".encode())
    log.fh.flush()
    out = None if log.verbose else log.fh
    prod = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=out)
    assert prod.stdout is not None
    try:
        cons = subprocess.run(
            consumer, stdin=prod.stdout, stdout=out, stderr=subprocess.STDOUT if out else None
        )
    finally:
        prod.stdout.close()
        if prod.wait() != 0 and prod.returncode != -signal.SIGPIPE:
            raise BuildError(f"{what} failed ({producer[0]} exit {prod.returncode})")
    if prod.returncode != 0 or cons.returncode != 0:
        raise BuildError(
            f"{what} failed ({producer[0]} exit {prod.returncode}, "
            f"{consumer[0]} exit {cons.returncode})"
        )


def image_id(ref: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def build(major: str, mirror: str, verbose: bool) -> None:
    suite = SUITES[major]
    tag = f"{REPOSITORY}:{major}"
    prefix = f"[{major}]"
    token = f"{os.getpid()}-{int(time.time())}"
    # temporary names, all removed in `finally`
    rootfs_tag = f"{REPOSITORY}-tmp:{major}-rootfs-{token}"
    flat_tag = f"{REPOSITORY}-tmp:{major}-flat-{token}"
    candidate = f"{REPOSITORY}-tmp:{major}-candidate-{token}"
    container = f"envctl-test-postgres-setup-{major}-{token}"
    previous = image_id(tag)  # replaced by --force; dropped at the end if unused
    started = time.monotonic()

    work = Path(tempfile.mkdtemp(prefix=f"envctl-pg{major}-", dir="/var/tmp"))
    log = Log(work / "build.log", verbose)
    rootfs = work / "rootfs"
    setup_dir = work / "setup"
    try:
        say(f"{prefix} debootstrap --variant=minbase {suite} from {mirror}")
        log.run(
            ["nice", "-n", "10", "debootstrap", "--variant=minbase", suite, str(rootfs), mirror],
            "debootstrap",
        )
        leftover = mounts_under(rootfs)
        if leftover:
            raise BuildError(f"debootstrap left mounts behind: {', '.join(leftover)}")

        say(f"{prefix} tar rootfs | docker import")
        pipe(
            log,
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "-C",
                str(rootfs),
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "-c",
                ".",
            ],
            ["docker", "import", "--change", f"LABEL {LABEL}=true", "-", rootfs_tag],
            "importing the rootfs",
        )
        remove_tree(rootfs)  # free the disk early

        say(f"{prefix} setup container: user 999:999, locales, postgresql-{major}, entrypoint")
        setup_dir.mkdir()
        (setup_dir / "setup.sh").write_text(SETUP_SCRIPT)
        shutil.copy2(ENTRYPOINT, setup_dir / "docker-entrypoint.sh")
        log.run(
            [
                "docker",
                "run",
                "--name",
                container,
                "--network",
                "host",
                "--cpu-shares",
                "512",
                "-v",
                f"{setup_dir}:/envctl-setup:ro",
                rootfs_tag,
                "/bin/sh",
                "/envctl-setup/setup.sh",
                major,
                pgdata_for(major),
            ],
            "setup container",
        )

        say(f"{prefix} docker export | docker import --change ... (single layer)")
        metadata = image_metadata(major, suite)
        late = [m for m in metadata if m.startswith("STOPSIGNAL")]
        changes = [arg for m in metadata if m not in late for arg in ("--change", m)]
        pipe(
            log,
            ["docker", "export", container],
            ["docker", "import", *changes, "-", flat_tag],
            "flattening the setup container",
        )

        say(f"{prefix} docker build FROM that local image: {', '.join(late)} (no pull)")
        log.run(
            ["docker", "build", "--network", "none", "-t", candidate, "-"],
            "docker build",
            input="\n".join([f"FROM {flat_tag}", *late, ""]).encode(),
        )

        say(f"{prefix} smoke test")
        out = docker_out(
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            candidate,
            "-c",
            "id -u postgres; id -g postgres; postgres --version; "
            f"for c in {' '.join(SMOKE_COMMANDS)}; do command -v $c; done | wc -l; "
            "stat -c %a /var/run/postgresql",
        ).splitlines()
        want_version = re.compile(rf"postgres \(PostgreSQL\) {major}\.")
        if (
            len(out) != 5
            or out[:2] != ["999", "999"]
            or not want_version.match(out[2])
            or out[3] != str(len(SMOKE_COMMANDS))
            or out[4] not in ("2775", "3777")
        ):
            raise BuildError(f"smoke test failed: {out}")
        docker_out("tag", candidate, tag)
        tag_official(major)
        size = int(docker_out("image", "inspect", "-f", "{{.Size}}", tag))
        say(f"{prefix} built {tag}: {out[2]}, {human(size)}, {time.monotonic() - started:.0f}s")
    except BuildError as exc:
        tail = log.tail()
        if tail and not verbose:
            print(
                f"--- last lines of {log.path.name} ---\n{tail}\n---", file=sys.stderr, flush=True
            )
        raise BuildError(f"{prefix} {exc}") from None
    finally:
        subprocess.run(
            ["docker", "rm", "-fv", container], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for ref in (candidate, flat_tag, rootfs_tag):  # only untags if `tag` took the image
            subprocess.run(
                ["docker", "rmi", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        if previous and image_id(tag) != previous:
            # the image --force replaced; fails harmlessly if a container still uses it
            subprocess.run(
                ["docker", "rmi", previous], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        log.close()
        remove_tree(work)


def tag_official(major: str) -> None:
    """Tag the test image as the official ``postgres:<MAJOR>`` too, unless a real one is here."""
    official = f"{OFFICIAL_REPOSITORY}:{major}"
    current = image_id(official)
    if current is not None and current != image_id(f"{REPOSITORY}:{major}"):
        labels = docker_out(
            "image", "inspect", "-f", f'{{{{index .Config.Labels "{LABEL}"}}}}', official
        )
        if labels != "true":
            say(f"[{major}] {official} is another image (not ours): left as it is")
            return
    docker_out("tag", f"{REPOSITORY}:{major}", official)
    say(f"[{major}] tagged {official}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=f"Build the local {REPOSITORY}:<MAJOR> test images."
    )
    parser.add_argument(
        "majors",
        nargs="*",
        metavar="MAJOR",
        help=f"PostgreSQL major(s) among {', '.join(SUITES)} (default: {' '.join(DEFAULT_MAJORS)})",
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the tag already exists"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="stream the build output")
    args = parser.parse_args(argv)
    majors = list(dict.fromkeys(args.majors or DEFAULT_MAJORS))

    def fail(msg: str) -> int:
        print(f"build.py: error: {msg}", file=sys.stderr)
        return 1

    unknown = [m for m in majors if m not in SUITES]
    if unknown:
        return fail(f"unsupported major(s) {', '.join(unknown)}; supported: {', '.join(SUITES)}")
    if os.geteuid() != 0:
        return fail(
            "must run as root (debootstrap needs it): sudo python tests/images/build.py ..."
        )
    for tool in ("debootstrap", "docker", "tar"):
        if shutil.which(tool) is None:
            return fail(f"{tool} is not installed / not on PATH")
    if subprocess.run(
        ["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode:
        return fail("cannot talk to the Docker engine (is it running?)")

    # turn SIGTERM/SIGHUP into an exception so the cleanup in build() runs
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    todo = []
    for major in majors:
        if image_exists(f"{REPOSITORY}:{major}") and not args.force:
            say(f"[{major}] {REPOSITORY}:{major} exists, skipping (use --force to rebuild)")
            try:
                tag_official(major)
            except BuildError as exc:
                return fail(str(exc))
        else:
            todo.append(major)
    if not todo:
        return 0
    try:
        mirror = debian_mirror()
        for major in todo:
            build(major, mirror, args.verbose)
    except BuildError as exc:
        return fail(str(exc))
    except KeyboardInterrupt as exc:
        return fail(f"interrupted ({exc or 'SIGINT'}); temporary files removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
