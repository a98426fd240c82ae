"""Installing envctl never breaks pytest: every module imports where POSIX-only parts are not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A process where the POSIX-only modules cannot be imported and signal has no SIGHUP, as on
# Windows; then every envctl module is imported, and pytest starts with the plugin loaded.
NOT_POSIX = """
import signal, sys
for name in ("fcntl", "pwd", "grp", "termios", "resource"):
    sys.modules[name] = None
del signal.SIGHUP
import pkgutil, importlib, provisioner
for module in pkgutil.walk_packages(provisioner.__path__, "provisioner."):
    if module.name != "provisioner.__main__":  # it runs the CLI
        importlib.import_module(module.name)
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", sys.argv[1]]))
"""


def test_every_module_and_the_plugin_load_without_posix_only_modules(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    result = subprocess.run(
        [sys.executable, "-c", NOT_POSIX, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
