"""``gsomia link simulate``, through the Typer sub-app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gsomia.cli.link import link_app
from gsomia.core.errors import InputError, UnknownPartyError
from gsomia.link.tracks import WIRE_FIELDS, from_wire

runner = CliRunner()
AT = ["--at", "2026-03-01T03:00:00Z"]


def test_json_lines_are_wire_updates_from_launch_to_impact() -> None:
    result = runner.invoke(
        link_app,
        ["simulate", "--from", "39.0,125.7", "--range-km", "1000", "--rate", "0.2", "--json", *AT],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(set(line) == WIRE_FIELDS for line in lines)
    updates = [from_wire(line) for line in lines]
    assert [u.seq for u in updates] == list(range(len(updates)))
    assert updates[0].phase.value == "boost" and updates[-1].phase.value == "impact"
    assert updates[0].label.topics == frozenset({"dprk-missile"})
    assert updates[0].launch_time.isoformat() == "2026-03-01T03:00:00+00:00"


def test_table() -> None:
    result = runner.invoke(
        link_app, ["simulate", "--range-km", "300", "--rate", "0.05", "--originator", "JPN", *AT]
    )
    assert result.exit_code == 0, result.output
    assert "impact" in result.stdout and "midcourse" in result.stdout


def test_bad_input() -> None:
    result = runner.invoke(link_app, ["simulate", "--from", "39.0", *AT])
    assert isinstance(result.exception, InputError)
    result = runner.invoke(link_app, ["simulate", "--range-km", "0", *AT])
    assert isinstance(result.exception, InputError)
    result = runner.invoke(link_app, ["simulate", "--originator", "XYZ", *AT])
    assert isinstance(result.exception, UnknownPartyError)
