"""`envctl validate`, without typer: the typer command runs `validate_profiles`, and so does the
console script for a plain `envctl validate PATH...`, through `validate_without_typer`, which
does what the typer app does around a command. Both say the same and end with the same code."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from provisioner.errors import EXIT_INTERRUPTED, EnvctlError
from provisioner.terminal import configure_logging, exit_process, print_error, say

PLUGIN_LOADER = "pydantic.plugin._loader"
# The values of PYDANTIC_DISABLE_PLUGINS that turn every plugin off (pydantic's own test).
_ALL_PLUGINS_OFF = ("__all__", "1", "true")


def validate_profiles(paths: Iterable[Path]) -> None:
    """Load and check each profile as `up` would, saying `ok: ...` for each; the first problem
    raises its ProfileError."""
    from provisioner.preflight import check_before_start
    from provisioner.profile import load_profile

    for path in paths:
        profile = load_profile(path)
        check_before_start(profile)
        pg = profile.postgres
        say(
            f"ok: {path} (name {profile.name}, Postgres {pg.version}, port {pg.port}, "
            f"ssl {pg.ssl.mode}, image {pg.resolved_image()})"
        )


def validate_without_typer(paths: list[Path]) -> NoReturn:
    """`validate_profiles` as the typer app runs it: its logging (no --verbose), an envctl
    error printed with its exit code, Ctrl-C ending with 130 and nothing said, as typer does."""
    without_plugin_discovery()
    configure_logging(verbose=False)
    try:
        validate_profiles(paths)
    except EnvctlError as exc:
        print_error(exc)
        exit_process(exc.exit_code)
    except KeyboardInterrupt:
        exit_process(EXIT_INTERRUPTED)
    exit_process(0)


def without_plugin_discovery() -> None:
    """Build validate's models without looking for pydantic plugins (envctl's models use none).

    pydantic looks for them in the entry points of every installed distribution at the first
    model it builds, and its plugin loader imports importlib.metadata (with email, zipfile, csv
    and socket: 12-15 ms here, a tenth of validate) even when PYDANTIC_DISABLE_PLUGINS turns
    them off. So plugins are turned off, unless the user's PYDANTIC_DISABLE_PLUGINS says
    otherwise, and the loader is a stand-in that finds none, as the real one does then; any
    other name asked of it comes from the real module, so a pydantic that wants more from its
    loader still gets it. Only here: validate starts no process, while the suite and migration
    commands of the other commands inherit envctl's environment, where the user's own plugins
    must stay on, and the process ends when validate does.
    """
    if os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__") not in _ALL_PLUGINS_OFF:
        return
    if "pydantic" not in sys.modules:  # a pydantic imported before has looked already
        sys.modules[PLUGIN_LOADER] = _PluginLoaderFindingNone(PLUGIN_LOADER)


class _PluginLoaderFindingNone(ModuleType):
    """`pydantic.plugin._loader` when every plugin is off: `get_plugins()` finds none, without
    importing importlib.metadata; anything else is the real module's."""

    _real: ModuleType | None = None

    @staticmethod
    def get_plugins() -> tuple[()]:
        return ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system's probes: a stand-in has none
            raise AttributeError(name)
        if self._real is None:
            import importlib.machinery
            import importlib.util

            package = sys.modules[PLUGIN_LOADER.rpartition(".")[0]]
            spec = importlib.machinery.PathFinder.find_spec(PLUGIN_LOADER, package.__path__)
            if spec is None or spec.loader is None:
                raise AttributeError(name)
            real = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(real)
            self._real = real
        return getattr(self._real, name)
