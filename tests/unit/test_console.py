"""The console script starts commands without the cyclic garbage collector, then brings it back;
a plain `validate PATH...` runs without typer and without pydantic's search for plugins, saying
and exiting as the typer command does."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from provisioner import console


def test_a_command_starts_without_the_collector_which_comes_back_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, bool] = {}
    cli = types.ModuleType("provisioner.cli")
    cli.main = lambda: seen.update(enabled_during_the_command=gc.isenabled())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "provisioner.cli", cli)
    monkeypatch.setattr(console, "START_UP_SECONDS", 0.05)
    try:
        console.main()
        assert seen == {"enabled_during_the_command": False}
        deadline = time.monotonic() + 5
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # start-up's objects are never scanned again
    finally:
        gc.enable()
        gc.unfreeze()


# A command line run as the console script does, which reports at exit whether typer and
# importlib.metadata (what pydantic's plugin search imports) were imported: `exit_process` runs
# atexit callbacks before it ends the process.
_RUN = """
import atexit, json, sys
report = sys.argv.pop(1)
atexit.register(lambda: open(report, "w").write(json.dumps(
    {{name: name in sys.modules for name in ("typer", "importlib.metadata")}}
)))
from provisioner.{module} import main
main()
"""

GOOD = "name: good\nenv:\n  file: null\n"
MIGRATOR = "name: x\nenv:\n  file: null\npostgres:\n  migrate:\n    command: no-such-migrator\n"
CASES = {
    "a good profile": (GOOD,),
    "two, the second missing": (GOOD, None),
    "not YAML": ("name: [x\n",),
    "an unknown key, with its hint": ("name: x\npostgress: {}\n",),
    "a value the model refuses": ("name: x\npostgres:\n  port: 70000\n",),
    "a missing seed file": ("name: x\nenv:\n  file: null\npostgres:\n  seed: [nowhere.sql]\n",),
    "a migration command that cannot run": (MIGRATOR,),
}


def _run(
    module: str, args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str, dict[str, bool]]:
    report = cwd / f"imported-{module}"
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(module=module), str(report), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return done.returncode, done.stdout, done.stderr, json.loads(report.read_text())


@pytest.mark.parametrize("texts", CASES.values(), ids=CASES.keys())
def test_a_plain_validate_skips_typer_and_says_and_exits_as_the_typer_command(
    tmp_path: Path, texts: tuple[str | None, ...]
) -> None:
    paths = []
    for index, text in enumerate(texts):
        path = tmp_path / f"p{index}.yaml"
        if text is not None:
            path.write_text(text)
        paths.append(path.name)
    code, out, err, imported = _run("console", ["validate", *paths], tmp_path)
    assert imported == {"typer": False, "importlib.metadata": False}
    assert (code, out, err) == _run("cli", ["validate", *paths], tmp_path)[:3]
    assert code == (0 if texts == (GOOD,) else 2) and "Traceback" not in err
    if texts == (MIGRATOR,):
        assert "'no-such-migrator' was not found" in err


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["validate", "--help"],
        ["validate", "p.yaml", "-v"],
        ["validate", "--", "p.yaml"],
        ["-v", "validate", "p.yaml"],
        ["up", "p.yaml"],
        ["--help"],
    ],
)
def test_any_other_command_line_goes_to_typer(args: list[str]) -> None:
    assert console._profiles_to_validate(args) is None


def test_shell_completion_goes_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["validate", "p.yaml"]
    assert console._profiles_to_validate(args) == [Path("p.yaml")]
    monkeypatch.setenv("_ENVCTL_COMPLETE", "bash_complete")
    assert console._profiles_to_validate(args) is None


def test_a_plugin_the_user_turns_off_by_name_leaves_pydantic_looking_for_the_others(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.yaml").write_text(GOOD)
    env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": "logfire"}
    code, out, _, imported = _run("console", ["validate", "p.yaml"], tmp_path, env)
    assert (code, out) == (0, "")
    assert imported == {"typer": False, "importlib.metadata": True}


_STAND_IN = """
import os, sys
from provisioner.validation import PLUGIN_LOADER, without_plugin_discovery
without_plugin_discovery()
from pydantic import BaseModel
class Model(BaseModel):
    x: int
assert Model(x=1).x == 1
loader = sys.modules[PLUGIN_LOADER]
assert list(loader.get_plugins()) == []
assert "importlib.metadata" not in sys.modules
# Any other name comes from the real module: a pydantic that wants more from it still works.
from pydantic.plugin._loader import PYDANTIC_ENTRY_POINT_GROUP
assert PYDANTIC_ENTRY_POINT_GROUP == "pydantic"
assert "importlib.metadata" in sys.modules
try:
    loader.no_such_name
except AttributeError:
    print("ok", os.environ["PYDANTIC_DISABLE_PLUGINS"])
"""


def test_the_stand_in_plugin_loader_finds_none_and_hands_on_any_other_name() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", _STAND_IN], capture_output=True, text=True, timeout=60, env=env
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok __all__\n", "")


def test_a_pydantic_imported_before_keeps_its_own_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import pydantic  # noqa: F401  (this process has it: it looked for plugins already)

    from provisioner import validation

    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    monkeypatch.delitem(sys.modules, validation.PLUGIN_LOADER, raising=False)
    validation.without_plugin_discovery()
    assert validation.PLUGIN_LOADER not in sys.modules
