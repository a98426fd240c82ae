"""JUnit XML results (jest-junit, pytest --junitxml, go-junit-report, ...) as plain values."""

from __future__ import annotations

import glob
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CaseResult:
    """One test case in one run."""

    name: str
    classname: str
    outcome: str  # passed | failed | skipped
    seconds: float
    message: str = ""
    file: str | None = None
    line: int | None = None

    @property
    def test_id(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


def junit_files(pattern: str, workdir: Path) -> list[Path]:
    """The files a glob (relative to the suite's workdir) matches now."""
    full = pattern if Path(pattern).is_absolute() else str(workdir / pattern)
    return sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())


def clear_stale(pattern: str, workdir: Path) -> None:
    """Remove results of an earlier run so they are not read as this run's."""
    for path in junit_files(pattern, workdir):
        path.unlink(missing_ok=True)


def read_results(files: list[Path]) -> list[CaseResult]:
    """Every test case in `files`; unreadable files are skipped (the suite may have crashed)."""
    cases: list[CaseResult] = []
    for path in files:
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError):
            continue
        for case in root.iter("testcase"):
            cases.append(_case(case))
    return cases


def _case(element: ET.Element) -> CaseResult:
    outcome, message = "passed", ""
    for tag in ("failure", "error"):
        found = element.find(tag)
        if found is not None:
            outcome = "failed"
            lines = (found.get("message") or found.text or "").strip().splitlines()
            message = lines[0] if lines else ""
            break
    else:
        if element.find("skipped") is not None:
            outcome = "skipped"
    line = element.get("line")
    return CaseResult(
        name=element.get("name", "?"),
        classname=element.get("classname", ""),
        outcome=outcome,
        seconds=_float(element.get("time")),
        message=message,
        file=element.get("file"),
        line=int(line) if line and line.isdigit() else None,
    )


def _float(text: str | None) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0
