"""Small file helpers of the native runtime: reading logs and lock files, walking, copying,
removing."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from provisioner.processes import run


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            # Enough bytes for `lines` lines of a usual length, and at least 64 KiB.
            handle.seek(max(handle.tell() - max(64 * 1024, lines * 256), 0))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def tree(path: Path) -> list[Path]:
    if not path.is_dir() or path.is_symlink():
        return [path]
    return [path, *(item for item in sorted(path.rglob("*")) if not item.is_symlink())]


def copy_tree(source: Path, target: Path, pass_fds: tuple[int, ...] = ()) -> None:
    """A copy that keeps owners and modes (`cp -a`; copy-on-write where the disk can).

    `pass_fds`: open files `cp` holds too while it copies (a lock that must outlive its caller)."""
    result = run(["cp", "-a", str(source), str(target)], pass_fds=pass_fds)
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or f"cp exited with {result.returncode}")


def remove_folder(folder: Path) -> list[str]:
    """Remove `folder` as far as it goes; each path that stayed, with why."""
    failures: list[str] = []
    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=lambda _, path, exc: failures.append(_why(path, exc)))
    else:
        shutil.rmtree(folder, onerror=lambda _, path, info: failures.append(_why(path, info[1])))
    return failures


def _why(path: str, exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{path} ({reason})"
