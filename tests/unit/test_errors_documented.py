"""Every error code in the hierarchy is documented in docs/errors.md, with its status and exit."""

from __future__ import annotations

from pathlib import Path

from gsomia.core import errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def all_error_classes() -> list[type[errors.GsomiaError]]:
    found: list[type[errors.GsomiaError]] = []
    pending: list[type[errors.GsomiaError]] = [errors.GsomiaError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_error_code_is_documented_with_its_status_and_exit_code() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for cls in all_error_classes():
        row = f"| `{cls.code}` | `{cls.__name__}` | {cls.status} | {cls.exit_code} |"
        assert row in doc, f"docs/errors.md lacks the row for {cls.__name__}: {row}"


def test_error_codes_are_unique() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))


def test_problem_details_shape() -> None:
    problem = errors.UnknownPartyError("XYZ", ["JPN", "KOR"]).to_problem()
    assert problem == {
        "type": "https://gsomia.invalid/problems/unknown-party",
        "title": "unknown party",
        "status": 404,
        "detail": "unknown party 'XYZ' (known: JPN, KOR)",
        "code": "unknown-party",
    }
