"""The switch that picks the Docker tests' images: local look-alikes here, official on GitHub."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import LOCAL_IMAGES, ROOT, image_settings, in_ci


def test_by_default_the_tests_use_the_local_look_alikes() -> None:
    assert image_settings({}) == (LOCAL_IMAGES, (15, 17))


def test_the_switch_names_images_and_majors() -> None:
    environ = {"ENVCTL_TEST_IMAGE_TEMPLATE": "postgres:{major}", "ENVCTL_TEST_MAJORS": "16, 18"}
    assert image_settings(environ) == ("postgres:{major}", (16, 18))


@pytest.mark.parametrize(
    "environ",
    [{"ENVCTL_TEST_IMAGE_TEMPLATE": "postgres:16"}, {"ENVCTL_TEST_MAJORS": "15,seventeen"}],
)
def test_a_wrong_switch_stops_the_run(environ: dict[str, str]) -> None:
    with pytest.raises(pytest.UsageError):
        image_settings(environ)


def test_the_github_workflow_sets_the_switch_to_the_official_images() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["integration"]
    assert job["env"]["ENVCTL_TEST_MAJORS"] == "${{ matrix.postgres }}"
    for majors in job["strategy"]["matrix"]["postgres"]:
        template, chosen = image_settings({**job["env"], "ENVCTL_TEST_MAJORS": majors})
        assert template == "postgres:{major}" and chosen
    # It runs the README's test command.
    assert any("python -m pytest" in step.get("run", "") for step in job["steps"])
    assert "python -m pytest" in (ROOT / "README.md").read_text()


def test_local_ci_builds_the_look_alikes_the_default_switch_names() -> None:
    run = (Path(ROOT) / ".ci" / "run").read_text()
    assert "tests/images/build.py" in run
    assert LOCAL_IMAGES.split(":")[0] in (ROOT / "tests" / "images" / "build.py").read_text()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("", False),
        ("0", False),
        ("false", False),
        ("no", False),
    ],
)
def test_ci_is_any_truthy_value(value: str, expected: bool) -> None:
    assert in_ci({"CI": value}) is expected
