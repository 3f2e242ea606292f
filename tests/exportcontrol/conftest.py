"""Shared fixtures: the shipped tables and the service, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsomia.exportcontrol.loader import load_tables
from gsomia.exportcontrol.service import ExportControl
from gsomia.exportcontrol.tables import Tables

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exportcontrol"


@pytest.fixture(scope="session")
def tables() -> Tables:
    return load_tables()


@pytest.fixture(scope="session")
def service() -> ExportControl:
    return ExportControl.load()


# Figures a test measured, printed at the end of the run (pytest shows no output of passing tests).
REPORT: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, line in REPORT.items():
        terminalreporter.write_line(f"{name}: {line}")
