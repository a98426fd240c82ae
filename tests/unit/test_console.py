"""The console script starts commands without the cyclic garbage collector, then brings it back;
a plain `validate PATH...` runs without typer, saying and exiting as the typer command does."""

from __future__ import annotations

import gc
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


# A command line run as the console script does, which reports at exit whether typer was
# imported: `exit_process` runs atexit callbacks before it ends the process.
_RUN = """
import atexit, sys
report = sys.argv.pop(1)
atexit.register(lambda: open(report, "w").write(str("typer" in sys.modules)))
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


def _run(module: str, args: list[str], cwd: Path) -> tuple[int, str, str, str]:
    report = cwd / f"typer-imported-{module}"
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(module=module), str(report), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr, report.read_text()


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
    code, out, err, typer_imported = _run("console", ["validate", *paths], tmp_path)
    assert typer_imported == "False"
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
