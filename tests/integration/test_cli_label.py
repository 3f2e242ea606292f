"""The ``gsomia label`` commands, through the Typer sub-app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gsomia import load_registry
from gsomia.cli.label import label_app
from gsomia.core.errors import (
    InvalidLabelError,
    InvalidMarkingError,
    UnknownLevelError,
    UnknownTopicError,
)
from gsomia.core.labels import SecurityLabel
from gsomia.formats.stanag4774 import from_xml

runner = CliRunner()
TRIANGLE = ["--rel-to", "USA,JPN,KOR"]


def ok(*args: str) -> str:
    result = runner.invoke(label_app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(*args: str) -> BaseException:
    result = runner.invoke(label_app, list(args))
    assert result.exit_code != 0
    assert result.exception is not None
    return result.exception


@pytest.mark.parametrize(
    ("args", "marking"),
    [
        (["--originator", "USA", "--classification", "SECRET"], "SECRET//REL TO USA, JPN, KOR"),
        (
            ["--originator", "USA", "--classification", "secret", "--form", "portion"],
            "(S//REL TO USA, JPN, KOR)",
        ),
        (
            ["--originator", "JPN", "--classification", "極秘", "--holder", "USA"],
            "//JPN S//REL TO USA, JPN, KOR",
        ),
        (
            ["--originator", "JPN", "--classification", "Gokuhi", "--holder", "usa"],
            "//JPN S//REL TO USA, JPN, KOR",
        ),
        (
            [
                "--originator",
                "JPN",
                "--classification",
                "極秘",
                "--holder",
                "USA",
                "--form",
                "fgi-banner",
            ],
            "SECRET//FGI JPN//REL TO USA, JPN, KOR",
        ),
        (
            [
                "--originator",
                "JPN",
                "--classification",
                "極秘",
                "--holder",
                "KOR",
                "--form",
                "native",
            ],
            "군사II급비밀 (Provided by the Government of Japan)//REL TO USA, JPN, KOR",
        ),
        (
            [
                "--originator",
                "KOR",
                "--classification",
                "II급",
                "--holder",
                "JPN",
                "--holder-classification",
                "極秘",
                "--form",
                "native",
            ],
            "極秘（大韓民国政府提供）//REL TO USA, JPN, KOR",
        ),
    ],
)
def test_render_prints_the_marking(args: list[str], marking: str) -> None:
    assert ok("render", *args, *TRIANGLE, "--topic", "dprk-missile").strip() == marking


def test_render_json_gives_the_marking_and_the_label() -> None:
    out = ok(
        "render",
        "--originator",
        "JPN",
        "--classification",
        "極秘",
        *TRIANGLE,
        "--topic",
        "dprk-missile",
        "--compartment",
        "ALPHA",
        "--holder",
        "USA",
        "--json",
    )
    data = json.loads(out)
    assert data["form"] == "banner"
    assert data["output"] == "//JPN S//ALPHA//REL TO USA, JPN, KOR"
    assert data["label"] == {
        "originator": "JPN",
        "policy": "USA",
        "classification": "secret",
        "releasable_to": ["JPN", "KOR", "USA"],
        "compartments": ["ALPHA"],
        "topics": ["dprk-missile"],
        "created": None,
        "originator_consent_required": True,
        "original": ["JPN", "gokuhi"],
    }


def test_render_json_form_is_the_label_dict() -> None:
    out = ok(
        "render",
        "--originator",
        "KOR",
        "--classification",
        "군사III급비밀",
        "--rel-to",
        "KOR",
        "--created",
        "2019-11-22T18:00+09:00",
        "--no-consent-required",
        "--form",
        "json",
    )
    label = SecurityLabel.from_dict(json.loads(out))
    assert label.classification == "gunsa-3"
    assert label.created is not None and label.created.utcoffset() is not None
    assert label.originator_consent_required is False


def test_render_xml_reads_back_as_the_same_label(tmp_path: Path) -> None:
    out = ok(
        "render",
        "--originator",
        "KOR",
        "--classification",
        "군사II급비밀",
        *TRIANGLE,
        "--topic",
        "dprk-nuclear",
        "--holder",
        "USA",
        "--form",
        "xml",
    )
    label = from_xml(load_registry(), out)
    assert (label.originator, label.policy, label.classification) == ("KOR", "USA", "secret")
    assert label.original == ("KOR", "gunsa-2")
    path = tmp_path / "label.xml"
    path.write_text(out, encoding="utf-8")
    data = json.loads(ok("parse", "--xml", str(path), "--json"))
    assert data["form"] == "xml"
    assert SecurityLabel.from_dict(data["label"]) == label


def test_render_takes_the_first_equivalent_level_unless_told_otherwise() -> None:
    # Art. 4 pairs 군사II급비밀 with 極秘 and 特定秘密: the table's first, as decisions mark it
    korean = ["--originator", "KOR", "--classification", "II급", "--holder", "JPN"]
    assert ok("render", *korean, "--form", "native").strip() == "極秘（大韓民国政府提供）"
    chosen = ok("render", *korean, "--holder-classification", "特定秘密", "--form", "native")
    assert chosen.strip() == "特定秘密（大韓民国政府提供）"


def test_render_refuses_a_level_without_equivalent() -> None:
    # the JPN-USA table names no US equivalent of 特定秘密
    error = fails(
        "render", "--originator", "JPN", "--classification", "特定秘密", "--holder", "USA"
    )
    assert isinstance(error, InvalidLabelError)
    assert "give no level for JPN:tokutei-himitsu" in error.message


@pytest.mark.parametrize(
    ("args", "error_type"),
    [
        (["--classification", "極秘", "--form", "banner"], InvalidLabelError),
        (["--classification", "機密秘"], UnknownLevelError),
        (["--classification", "極秘", "--topic", "weather"], UnknownTopicError),
        (
            ["--classification", "極秘", "--rel-to", "JPN,ATL", "--form", "native"],
            InvalidLabelError,
        ),
    ],
)
def test_render_errors_are_gsomia_errors(args: list[str], error_type: type[Exception]) -> None:
    assert isinstance(fails("render", "--originator", "JPN", *args), error_type)


def test_parse_shows_the_label() -> None:
    out = ok("parse", "//JPN S//REL TO USA, JPN, KOR")
    assert "JPN (the Government of Japan)" in out
    assert "USA, JPN, KOR" in out


def test_parse_json() -> None:
    data = json.loads(ok("parse", "極秘（大韓民国政府提供）//REL TO USA, JPN, KOR", "--json"))
    assert data["form"] == "native"
    assert data["label"]["originator"] == "KOR"
    assert data["label"]["policy"] == "JPN"
    assert data["label"]["classification"] == "gokuhi"


def test_parse_with_holder() -> None:
    data = json.loads(
        ok("parse", "Gunsa II (Provided by the Government of Japan)", "--holder", "kor", "--json")
    )
    assert data["label"]["classification"] == "gunsa-2"


def test_parse_error_is_an_invalid_marking() -> None:
    error = fails("parse", "SECRET//REL TO USA, JPN, JPN")
    assert isinstance(error, InvalidMarkingError)
    assert "JPN twice" in error.message


def test_parse_needs_a_marking_or_a_file() -> None:
    result = runner.invoke(label_app, ["parse"])
    assert result.exit_code == 2
