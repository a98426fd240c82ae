"""Env files: render variables from presets and templates, merge them into a file, restore it.

The file a user had before envctl touched it is kept byte for byte: the backup is written and
fsynced *before* the file changes, so a crash at any point can be recovered from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import stat
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.connection import Connection
from provisioner.errors import InfrastructureError, ProfileError
from provisioner.presets import PRESETS

if TYPE_CHECKING:
    from provisioner.profile import Profile, RoleConfig

# Certificate variables are left out, not written empty, when the environment has no such file.
_OPTIONAL_FIELDS = ("{sslrootcert}", "{sslcert}", "{sslkey}")
_MARKER = "# envctl: managed variables below are restored when the environment is removed"
_ASSIGNMENT = re.compile(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=)")
_BARE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+,=?&-]*$")


def check_files(profile: Profile) -> None:
    """Refuse, before anything starts, a profile whose env file envctl must not write."""
    if profile.env_file is None:
        return
    protected = [*profile.sources] or ([profile.path] if profile.path else [])
    seeds = [item.path for item in profile.postgres.seed if item.path]
    protected += [(profile.folder / path).resolve() for path in seeds]
    where = f"{profile.path}: " if profile.path else ""
    try:
        check_target(profile.env_file, protected)
    except ProfileError as exc:
        raise ProfileError(where + exc.message, hint=exc.hint) from None


def check_target(target: Path, protected: Iterable[Path]) -> None:
    """Refuse an env file envctl must not merge into: not a regular file, one of `protected`
    (the profile, its seeds), or an existing file that is not a dotenv file."""
    fix = "point env.file at a dotenv file of its own, e.g. .env.test"
    try:
        info = os.stat(target)
        if not stat.S_ISREG(info.st_mode):
            raise ProfileError(f"env.file: {target} is not a regular file", hint=fix)
        text = target.read_bytes().decode("utf-8", errors="surrogateescape")
    except (FileNotFoundError, NotADirectoryError):
        _check_folder(target)
        return
    except OSError as exc:
        raise ProfileError(f"env.file: {target} cannot be read ({exc.strerror})") from None
    _check_folder(target)
    # A file with other hard links is rewritten in place (see _put): it must be writable too.
    if info.st_nlink > 1 and not os.access(target, os.W_OK):
        raise ProfileError(f"env.file: {target} is not writable", hint=fix)
    for path in protected:
        with contextlib.suppress(OSError):
            if os.path.samefile(target, path):
                raise ProfileError(f"env.file: {target} is {path}, which envctl reads", hint=fix)
    line = first_foreign_line(text)
    if line is not None:
        raise ProfileError(
            f"env.file: {target} line {line} is not a dotenv line (KEY=value, a comment or blank): "
            "envctl merges its variables only into dotenv files",
            hint=fix,
        )


def _check_folder(target: Path) -> None:
    """The env file's folder (or the nearest that exists, where envctl makes the rest) is one
    envctl can write in, and restore the file in afterwards."""
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ProfileError(
            f"env.file: {target}: {folder} is not a folder",
            hint="point env.file at a path inside a folder",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ProfileError(
            f"env.file: {target}: the folder {folder} is not writable: envctl writes the file "
            "there and puts it back afterwards",
            hint="make the folder writable, or point env.file elsewhere",
        )


def missing_folders(folder: Path) -> list[Path]:
    """The folders from `folder` up that do not exist yet, outermost first."""
    missing: list[Path] = []
    while not folder.exists() and folder != folder.parent:
        missing.insert(0, folder)
        folder = folder.parent
    return missing


def first_foreign_line(text: str) -> int | None:
    """The number of the first line that no dotenv reader takes as such, or None."""
    quote = ""  # the quote of a value that goes on over lines
    for number, line in enumerate(text.splitlines(), start=1):
        if quote:
            if line.rstrip().endswith(quote):
                quote = ""
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            return number
        value = line[match.end() :].strip()
        if value[:1] in ("'", '"') and not (len(value) > 1 and value.endswith(value[0])):
            quote = value[0]
    return None


def render_env(
    connection: Connection,
    presets: Iterable[str],
    custom: Mapping[str, str],
    roles: Iterable[RoleConfig] = (),
) -> dict[str, str]:
    """The variables for `connection`: each preset in order, then the profile's own templates,
    which may also name the profile's `roles`."""
    values = {**connection.template_values(), **role_values(roles)}
    rendered: dict[str, str] = {}
    for preset in presets:
        for name, template in PRESETS[preset].items():
            value = render_template(template, values)
            if value or not any(field in template for field in _OPTIONAL_FIELDS):
                rendered[name] = value
    for name, template in custom.items():
        rendered[name] = render_template(template, values)
    return rendered


def role_values(roles: Iterable[RoleConfig]) -> dict[str, str]:
    """`{roles.NAME.name}` and `{roles.NAME.password}` (for roles with a password)."""
    values: dict[str, str] = {}
    for role in roles:
        values[f"roles.{role.name}.name"] = role.name
        if role.password is not None:
            values[f"roles.{role.name}.password"] = role.password
    return values


def render_template(template: str, values: Mapping[str, str]) -> str:
    """`template` with each plain `{field}` replaced by `values[field]`.

    Not str.format_map: that reads `{roles.x.password}` as attribute access. The profile's
    models have refused format specs, conversions and unknown fields already.
    """
    parts: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if field is not None:
            parts.append(values[field])
    return "".join(parts)


def format_env(variables: Mapping[str, str], fmt: str) -> str:
    """Variables as a dotenv file, shell `export` lines or JSON."""
    if fmt == "json":
        return json.dumps(dict(variables), indent=2) + "\n"
    if fmt == "shell":
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())
    return "".join(f"{k}={dotenv_quote(v)}\n" for k, v in variables.items())


def dotenv_quote(value: str) -> str:
    """A value as dotenv parsers (node, bun, python-dotenv) read it back unchanged."""
    if _BARE_VALUE.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def merge_env(existing: str, variables: Mapping[str, str]) -> str:
    """`existing` with managed keys updated in place; other lines and comments kept."""
    remaining = dict(variables)
    lines = existing.splitlines(keepends=True)
    out: list[str] = []
    for line in lines:
        match = _ASSIGNMENT.match(line)
        if match and match.group(2) in variables:
            name = match.group(2)
            ending = "\n" if line.endswith("\n") else ""
            if name in remaining:
                out.append(f"{match.group(1)}{name}={dotenv_quote(remaining.pop(name))}{ending}")
            # A second assignment of a managed key would override ours: drop it.
            continue
        out.append(line)
    if remaining:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        if _MARKER + "\n" not in out:
            out.append(_MARKER + "\n")
        out.append(format_env(remaining, "dotenv"))
    return "".join(out)


def write_atomic(
    path: Path, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # 3 ms to import (random): `validate` never writes a file

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".envctl-tmp", dir=path.parent)
    try:
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _put(
    target: Path,
    data: bytes,
    info: os.stat_result | None,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write a user's file keeping its owner, group, mode and hard links.

    A file with other hard links is rewritten in place (a rename would split it from them);
    its backup is already synced, so a crash midway loses nothing.
    """
    if info is not None:
        # While it holds the password, nobody but its owner and group reads it.
        mode = info.st_mode & 0o7770 if mode is None else mode
        owner = (info.st_uid, info.st_gid) if owner is None else owner
        if info.st_nlink > 1:
            os.chmod(target, mode)  # before the data: the password is never readable by others
            with open(target, "r+b") as handle:
                handle.write(data)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
            return
    write_atomic(target, data, mode=0o600 if mode is None else mode, owner=owner)


@dataclass(frozen=True)
class EnvFileGuard:
    """Remembers how an env file was before envctl changed it, in the environment's state folder.

    The record (`envfile.json`) and the backup (`envfile.backup`) are written before the env
    file is touched; `restore()` puts the original back (or removes a file envctl created) and
    then forgets them. Calling `restore()` again, e.g. from `gc` after a crash, is harmless.
    """

    state_dir: Path

    @property
    def record(self) -> Path:
        return self.state_dir / "envfile.json"

    @property
    def backup(self) -> Path:
        return self.state_dir / "envfile.backup"

    def write(self, target: Path, variables: Mapping[str, str]) -> None:
        """Merge `variables` into `target`, saving the original first."""
        try:
            current = target.read_bytes()
            info: os.stat_result | None = target.stat()
        except FileNotFoundError:
            current, info = b"", None
        except OSError as exc:
            raise InfrastructureError(f"{target}: cannot be read ({exc.strerror})") from None
        record = self._load()
        if record is None:
            if info is not None:
                write_atomic(self.backup, current)
            record = {
                "path": str(target),
                "existed": info is not None,
                "mode": info.st_mode & 0o7777 if info else None,
                "owner": [info.st_uid, info.st_gid] if info else None,
            }
        merged = merge_env(current.decode("utf-8", errors="surrogateescape"), variables)
        data = merged.encode("utf-8", errors="surrogateescape")
        # What envctl wrote, before it writes it: `restore` tells the user's edits from it. The
        # previous digest stays valid too, in case envctl stops between the record and the file.
        record["managed"] = sorted({*record.get("managed", []), *variables})
        record["written"] = [*record.get("written", [])[-1:], _digest(data)]
        write_atomic(self.record, json.dumps(record).encode())
        try:
            _put(target, data, info)
        except OSError as exc:
            raise InfrastructureError(f"{target}: cannot be written ({exc.strerror})") from None

    def _load(self) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self.record.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return record

    def restore(self) -> Restored | None:
        """Put the env file back as it was, or None if nothing was recorded.

        Untouched since envctl wrote it, the file comes back byte for byte (or goes, if envctl
        created it). Edited meanwhile, the user's edits stay: envctl takes out only the lines of
        the variables it manages and puts back the original's lines for them.
        """
        record = self._load()
        if record is None:
            return None
        target = Path(record["path"])
        original = self.backup.read_bytes() if record["existed"] else b""
        try:
            info: os.stat_result | None = target.stat()
            current: bytes | None = target.read_bytes()
        except FileNotFoundError:
            info, current = None, None
        kept = 0
        data: bytes | None = original if record["existed"] else None
        # A record without digests (an older envctl's) gives the original back as it was.
        written = record.get("written")
        if current is not None and written is not None and _digest(current) not in written:
            text, kept = unmerge_env(
                original.decode("utf-8", errors="surrogateescape"),
                current.decode("utf-8", errors="surrogateescape"),
                record.get("managed", []),
            )
            data = text.encode("utf-8", errors="surrogateescape")
            if not record["existed"] and not text.strip():
                data, kept = None, 0
        if data is not None:
            owner = record.get("owner")
            mode = record["mode"] if record["existed"] else 0o600
            _put(target, data, info, mode, owner and tuple(owner))
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.backup.unlink()
        self.record.unlink()
        return Restored(target, kept, created=data is None)


@dataclass(frozen=True)
class Restored:
    """An env file put back; `kept` counts the lines of the user's own edits that stayed."""

    path: Path
    kept: int = 0
    created: bool = False  # envctl made the file: it went, nothing was put back

    def __str__(self) -> str:
        if self.created:
            return f"removed {self.path} (envctl created it)"
        if not self.kept:
            return f"restored {self.path}"
        return (
            f"restored {self.path}, keeping the {self.kept} line(s) you added or changed while "
            "it was up (envctl's variables were taken out)"
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unmerge_env(original: str, current: str, managed: Iterable[str]) -> tuple[str, int]:
    """`current` with envctl's variables taken out and the original's lines for them put back.

    Returns the text and how many of its lines are the user's own edits (in neither the
    original nor what envctl wrote). A managed variable is envctl's while it is up, so a value
    the user gave one meanwhile does not stay.
    """
    names = set(managed)
    theirs: dict[str, list[str]] = {}
    for line in original.splitlines(keepends=True):
        match = _ASSIGNMENT.match(line)
        if match and match.group(2) in names:
            theirs.setdefault(match.group(2), []).append(line)
    base = set(original.splitlines())
    out: list[str] = []
    kept = 0
    for line in current.splitlines(keepends=True):
        match = _ASSIGNMENT.match(line)
        if match and match.group(2) in names:
            out.extend(theirs.pop(match.group(2), []))
            continue
        if line.rstrip("\n") == _MARKER and _MARKER not in base:
            continue
        if line.rstrip("\n") not in base:
            kept += 1
        out.append(line)
    for lines in theirs.values():  # the user deleted envctl's line: the original's comes back
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.extend(lines)
    text = "".join(out)
    # merge_env ended an original's unterminated last line to append below it.
    if original and not original.endswith("\n") and text.endswith(original.splitlines()[-1] + "\n"):
        text = text[:-1]
    return text, kept
