"""A suite in a container (test.container): only the docker runtime runs one."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import UsageError
from provisioner.profile import load_profile
from provisioner.runtime.native import NativeRuntime
from provisioner.runtime.select import RUNTIME_VARIABLE, container_runtime


def _profile(tmp_path: Path, runtime: str = "auto"):
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: c\nruntime: {runtime}\ntest:\n  container:\n    image: x\n  command: ['true']\n"
    )
    return load_profile(path)


@pytest.mark.parametrize(("runtime", "override"), [("auto", None), ("native", "docker")])
def test_a_suite_in_a_container_runs_under_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str, override: str | None
) -> None:
    monkeypatch.delenv(RUNTIME_VARIABLE, raising=False)
    assert container_runtime(_profile(tmp_path, runtime), override) == "docker"


@pytest.mark.parametrize(("runtime", "override"), [("native", None), ("auto", "native")])
def test_a_suite_in_a_container_under_native_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str, override: str | None
) -> None:
    monkeypatch.delenv(RUNTIME_VARIABLE, raising=False)
    with pytest.raises(UsageError, match=r"test\.container needs the docker runtime, but native"):
        container_runtime(_profile(tmp_path, runtime), override)


def test_the_native_runtime_refuses_to_run_a_suite_container(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        NativeRuntime().run_suite_container(
            "env",
            image="x",
            argv=["true"],
            env={},
            mounts={},
            workdir=str(tmp_path),
            timeout=None,
        )
    assert "runs on native binaries" in info.value.message
    assert "--runtime docker" in (info.value.hint or "")
