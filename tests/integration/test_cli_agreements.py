"""The ``gsomia agreements`` commands, through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gsomia.cli.main import app

runner = CliRunner()

STATUS_KEYS = {
    "agreement",
    "at",
    "state",
    "notice",
    "term_start",
    "term_end",
    "terminates_at",
    "notice_deadline",
    "terminable_at_any_time",
    "events_applied",
}


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_status_json_has_the_documented_keys_and_values() -> None:
    code, out, _ = invoke(
        "agreements", "status", "JPN-KOR-GSOMIA", "--at", "2019-08-23T12:00", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data.keys() >= STATUS_KEYS
    assert data["at"] == "2019-08-23T12:00:00+09:00"  # no offset: read in Seoul time
    assert data["state"] == "in-force"
    assert data["notice"] == "pending"
    assert data["terminates_at"] == "2019-11-23T00:00:00+09:00"
    assert data["notice_deadline"] == "2019-08-24"
    assert data["term_start"] == "2018-11-23T00:00:00+09:00"


def test_status_what_if_without_the_suspension() -> None:
    code, out, _ = invoke(
        "agreements",
        "status",
        "JPN-KOR-GSOMIA",
        "--at",
        "2019-11-23T00:00+09:00",
        "--without",
        "kor-notice-suspension-2019",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["state"] == "terminated"
    assert data["terminated_at"] == "2019-11-23T00:00:00+09:00"
    assert data["hypothetical"] is True


def test_status_what_if_with_an_event_file(tmp_path: Path) -> None:
    events = tmp_path / "resume.toml"
    events.write_text(
        """
[[events]]
id = "kor-notice-resumption-2020"
kind = "notice-resumption"
at = 2020-09-01T09:00:00+09:00
by = "KOR"
summary = "Hypothetical: Korea revives its suspended notice."
source = "hypothetical"
evidence = "design-note"
""",
        encoding="utf-8",
    )
    code, out, err = invoke(
        "agreements",
        "status",
        "JPN-KOR-GSOMIA",
        "--at",
        "2020-09-02",
        "--with",
        str(events),
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    # Korea claimed it may terminate at any time: the resumption ends the agreement at once.
    assert data["state"] == "terminated"
    assert data["terminated_at"] == "2020-09-01T09:00:00+09:00"
    assert "kor-notice-resumption-2020" in data["events_applied"]


def test_list_json_covers_the_shipped_instruments() -> None:
    code, out, _ = invoke("agreements", "list", "--at", "2020-01-01", "--json")
    assert code == 0
    ids = {row["id"] for row in json.loads(out)}
    assert {"JPN-KOR-GSOMIA", "JPN-USA-GSOMIA", "KOR-USA-GSOMIA", "TISA"} <= ids
    assert {"JPN-NATO-ISA", "JPN-FRA-ISA", "JPN-AUS-ISA", "JPN-GBR-ISA"} <= ids
    assert {"JPN-IND-ISA", "JPN-ITA-ISA", "JPN-DEU-ISA"} <= ids


def test_show_json_keeps_every_source_and_marks_the_unverified() -> None:
    code, out, _ = invoke("agreements", "show", "JPN-USA-GSOMIA", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["entry_into_force"]["on"] == "2007-08-10"
    assert all(row["evidence"] == "unverified" for row in data["equivalence"]["rows"])
    assert "termination" in data["unverified"]


def test_show_table_names_the_native_levels() -> None:
    code, out, _ = invoke("agreements", "show", "JPN-KOR-GSOMIA")
    assert code == 0
    for name in ("極秘", "特定秘密", "군사II급비밀", "秘", "군사III급비밀", "Art. 21(3)"):
        assert name in out


def test_timeline_json_lists_terms_and_deadlines() -> None:
    code, out, _ = invoke(
        "agreements", "timeline", "JPN-KOR-GSOMIA", "--until", "2020-12-01", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert [t["notice_deadline"] for t in data["terms"]] == [
        "2017-08-24",
        "2018-08-24",
        "2019-08-24",
        "2020-08-24",
        "2021-08-24",
    ]
    assert data["terms"][0]["start"] == "2016-11-23T00:00:00+09:00"


def test_timeline_what_if_ends_with_the_termination() -> None:
    code, out, _ = invoke(
        "agreements",
        "timeline",
        "JPN-KOR-GSOMIA",
        "--until",
        "2025-01-01",
        "--without",
        "kor-notice-suspension-2019",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["terminated_at"] == "2019-11-23T00:00:00+09:00"
    assert data["terms"][-1]["number"] == 3
    assert data["terms"][-1]["outcome"].startswith("terminated")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["agreements", "show", "JPN-KOR-GSOMI"], "unknown instrument 'JPN-KOR-GSOMI'"),
        (["agreements", "status", "TISA", "--at", "yesterday"], "malformed instant 'yesterday'"),
        (
            ["agreements", "status", "JPN-KOR-GSOMIA", "--without", "no-such-event"],
            "unknown event 'no-such-event'",
        ),
        (["--registry", "/no/such/dir", "agreements", "list"], "registry directory not found"),
        (
            ["agreements", "status", "TISA", "--with", "/no/such/events.toml"],
            "event file not found",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_registry_override_models_a_hypothetical_agreement(tmp_path: Path) -> None:
    (tmp_path / "jpn-kor-direct-link.toml").write_text(
        """
id = "JPN-KOR-HYPOTHETICAL"
title = "A hypothetical Japan-Korea arrangement"
kind = "arrangement"
binding = false
parties = ["JPN", "KOR"]
timezone = "Asia/Tokyo"
source = "what-if"
evidence = "design-note"

[entry_into_force]
on = 2030-01-01
article = "para 1"
source = "what-if"
evidence = "design-note"

[term]
initial = "P2Y"
article = "para 2"
source = "what-if"
evidence = "design-note"

[termination]
mode = "at-term-end"
notice = "P30D"
form = "written notice"
article = "para 2"
source = "what-if"
evidence = "design-note"
""",
        encoding="utf-8",
    )
    code, out, err = invoke(
        "--registry", str(tmp_path), "agreements", "status", "JPN-KOR-HYPOTHETICAL",
        "--at", "2031-06-01", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["state"] == "in-force"
    assert data["terminates_at"] == "2032-01-01T00:00:00+09:00"  # no renewal: it expires
    assert data["notice_deadline"] == "2031-12-01"
