"""``gsomia export`` through the Typer sub-app: JSON keys, tables, one-line errors, batches."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gsomia.cli.export import export_app

from .conftest import FIXTURES

runner = CliRunner()
CHECK_KEYS = {"license_required", "license", "eligible_licenses", "group", "reasons", "screening"}


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(export_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def as_json(*args: str) -> Any:
    code, out, err = invoke(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_check_json_has_the_documented_keys() -> None:
    data = as_json("check", "--item", "resist", "--to", "KOR", "--on", "2019-07-04")
    assert data.keys() >= CHECK_KEYS
    assert data["license_required"] is True
    assert data["license"] == "individual"
    assert [e["type"] for e in data["eligible_licenses"]] == ["individual"]
    assert data["group"] == "A"
    assert data["destination"] == {"code": "KOR", "name": "South Korea"}
    assert data["screening"] is None
    assert any(r["rule"] == "kor-three-items-2019" for r in data["reasons"])


def test_check_with_an_end_user_screens_it() -> None:
    data = as_json(
        "check", "--item", "steel-bolts", "--to", "Iran", "--on", "2024-01-10",
        "--end-user", "Shahid Hemat Industrial Group Co., Ltd.", "--end-use", "civil",
    )  # fmt: skip
    assert data["license_required"] is True and data["license"] == "individual"
    assert data["screening"]["status"] == "match"
    assert data["screening"]["hits"][0]["no"] == "14"
    assert data["screening"]["sample_list"] is True
    end_user = next(r for r in data["reasons"] if r["step"] == "end-user")
    assert "SAMPLE" in end_user["detail"] and end_user["unverified"] is True


def test_check_informed_after_the_reform_for_group_a() -> None:
    args = ("check", "--item", "cnc-lathe", "--to", "United States", "--informed")
    assert as_json(*args, "--on", "2025-10-08")["license_required"] is False
    assert as_json(*args, "--on", "2025-10-09")["license_required"] is True


def test_check_table_output_shows_the_verdict_and_unverified_facts() -> None:
    code, out, _ = invoke("check", "--item", "resist", "--to", "KOR", "--on", "2020-01-10")
    assert code == 0
    assert "LICENCE REQUIRED" in out and "Specific bulk licence" in out
    assert "[unverified]" in out


def test_group_json_and_text() -> None:
    data = as_json("group", "KOR", "--on", "2019-08-28")
    assert data["group"] == "B" and data["interval"] == {"from": "2019-08-28", "to": "2023-07-21"}
    code, out, _ = invoke("group", "대한민국", "--on", "2023-07-21")
    assert code == 0 and "Group A" in out


def test_items_lists_the_catalogue() -> None:
    data = as_json("items")
    ids = {it["id"] for it in data}
    assert {"fluorinated-polyimide", "resist", "hydrogen-fluoride"} <= ids
    assert any(it["control"] == "catch-all" for it in data)
    assert any(it["unverified"] for it in data)
    code, out, _ = invoke("items")
    assert code == 0 and "フッ化水素" in out


def test_screen_a_name() -> None:
    data = as_json("screen", "남천강무역회사")
    assert data["status"] == "match" and data["hits"][0]["no"] == "4"
    code, out, _ = invoke("screen", "Toshiba Corporation")
    assert code == 0 and "CLEAR" in out and "SAMPLE" in out


def test_screen_against_a_given_list_only() -> None:
    data = as_json("screen", "Huawei Technologies", "--list", str(FIXTURES / "csl-sample.csv"))
    assert data["sample_list"] is False
    assert data["hits"][0]["list"] == "csl-sample"
    assert data["hits"][0]["name"] == "Huawei Technologies Co. Ltd."


def test_screen_a_csv_batch_reports_bad_rows_and_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "screened.csv"
    code, stdout, stderr = invoke(
        "screen", "--csv", str(FIXTURES / "customers.csv"), "--out", str(out), "--json"
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["rows"] == 6 and report["screened"] == 4
    assert [e["line"] for e in report["errors"]] == [4, 6]
    assert "line 4: skipped: no name" in stderr
    assert "line 6: skipped: 4 fields" in stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    by_id = {r["id"]: r for r in rows}
    assert by_id["1"]["status"] == "match" and by_id["1"]["no"] == "14"
    assert by_id["2"]["status"] == "clear"
    assert by_id["3"]["status"] == "error" and by_id["3"]["error"] == "no name"
    assert by_id["4"]["no"] == "3"
    assert rows[-1]["name"] == "남천강무역회사" and rows[-1]["no"] == "4"


def check_args(item: str = "resist", to: str = "KOR", on: str = "2019-07-04") -> tuple[str, ...]:
    return ("check", "--item", item, "--to", to, "--on", on)


@pytest.mark.parametrize(
    ("args", "message", "code_"),
    [
        (check_args(item="resits"), "did you mean", "unknown-export-item"),
        (check_args(to="Atlantis"), "unknown country 'Atlantis'", "unknown-country"),
        (check_args(to="Korea"), "KOR (South Korea), PRK (North Korea)", "ambiguous-country"),
        (check_args(on="2019-02-30"), "not a real date", "invalid-export-date"),
        (check_args(on="04/07/2019"), "give YYYY-MM-DD", "invalid-export-date"),
        (
            ("group", "KOR", "--on", "2015-01-01"),
            "before the export tables",
            "export-date-out-of-range",
        ),
        (("screen", "x", "--list", "missing.csv"), "no such file", "malformed-screening-file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str, code_: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gsomia: error: ")
    assert message in lines[0] and lines[0].endswith(f"[{code_}]")


def test_a_malformed_batch_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("customer,country\nAcme,JP\n", encoding="utf-8")
    code, _, err = invoke("screen", "--csv", str(bad), "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "no 'name' column" in err and "[malformed-screening-file]" in err
