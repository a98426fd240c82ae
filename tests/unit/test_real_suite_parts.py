"""The real-suite test's parts that need no download: its profile and its reading of the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.profile import load_profile
from tests.integration.test_real_suite import PROFILE, unittest_counts


def test_the_real_suites_profile_is_valid_and_verifies_ssl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSYCOPG2_SOURCE", str(tmp_path))
    profile = load_profile(PROFILE)
    assert profile.postgres.ssl.mode == "verify-full"
    assert profile.workdir == tmp_path.resolve()


def test_unittest_counts_subtracts_skips_failures_and_errors() -> None:
    output = "test_a ... ok\nRan 749 tests in 103.4s\n\nFAILED (failures=2, errors=1, skipped=19)\n"
    assert unittest_counts(output) == {
        "ran": 749,
        "failures": 2,
        "errors": 1,
        "skipped": 19,
        "passed": 727,
    }
    assert unittest_counts("Ran 3 tests in 0.1s\n\nOK\n")["passed"] == 3


def test_unittest_counts_refuses_output_without_a_summary() -> None:
    with pytest.raises(AssertionError, match="no unittest summary"):
        unittest_counts("Failed connection to test db: OperationalError\n")
