"""The console script starts commands without the cyclic garbage collector, then brings it back."""

from __future__ import annotations

import gc
import sys
import time
import types

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
