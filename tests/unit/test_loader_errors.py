"""Invalid registry files: every error is a RegistryError that names the file and the field.

Each case starts from a small valid registry directory (the fictional parties and topics, one
instrument) and breaks one thing in one file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gsomia.core.errors import RegistryError
from gsomia.loader import load_events, load_registry, whatif_from

FICTIONAL = Path(__file__).resolve().parents[1] / "fixtures" / "registry-fictional"

INSTRUMENT = """\
id = "ZZ-TEST"
title = "Test instrument"
kind = "agreement"
binding = true
parties = ["ZZA", "ZZB"]
timezone = "Europe/Paris"
source = "test"

[entry_into_force]
on = 2020-01-15
article = "Art. 1"
source = "test"

[term]
initial = "P1Y"
renewal = "P1Y"
article = "Art. 2"
source = "test"

[termination]
mode = "at-term-end"
notice = "P90D"
form = "written notice"
article = "Art. 3"
source = "test"

[scope]
topics = ["zz-fisheries"]
article = "Art. 4"
source = "test"

[equivalence]
article = "Art. 5"
source = "test"

[[equivalence.rows]]
english = "SECRET"
levels = { ZZA = ["sealed"], ZZB = ["b-secret"] }
source = "test"

[[events]]
id = "ev-one"
kind = "termination-notice"
at = 2021-01-01
by = "ZZA"
summary = "a notice"
source = "test"

[[events]]
id = "ev-two"
kind = "notice-withdrawal"
at = 2021-02-01
by = "ZZB"
summary = "a withdrawal"
source = "test"
"""

EVENTS = """\
[[events]]
id = "hypothetical-notice"
kind = "termination-notice"
at = 2022-06-01
by = "ZZB"
summary = "a hypothetical notice"
source = "test"
"""

FILES = {
    "instrument": "instruments/zz-test.toml",
    "parties": "parties.toml",
    "topics": "topics.toml",
}


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # a key of FILES
    edits: tuple[tuple[str, str], ...]  # (old, new): each old text must occur in the valid file
    fields: tuple[str, ...]  # the message starts "<file>: <fields[0]>" and names the others

    def apply(self, text: str) -> str:
        for old, new in self.edits:
            assert old in text, f"case {self.name}: {old!r} is not in the valid file"
            text = text.replace(old, new, 1)
        return text


CASES = [
    Case(
        "not-toml",
        "instrument",
        (('"Test instrument"', '"Test instrument'),),
        ("not valid TOML", "line 2"),
    ),
    Case(
        "missing-title",
        "instrument",
        (('title = "Test instrument"\n', ""),),
        ("title", "Field required"),
    ),
    Case(
        "missing-notice",
        "instrument",
        (('notice = "P90D"\n', ""),),
        ("termination.notice", "Field required"),
    ),
    Case(
        "missing-event-summary",
        "instrument",
        (('summary = "a notice"\n', ""),),
        ("events.0.summary",),
    ),
    Case(
        "wrong-type-binding",
        "instrument",
        (("binding = true", "binding = 3"),),
        ("binding", "boolean"),
    ),
    Case(
        "wrong-type-parties",
        "instrument",
        (('parties = ["ZZA", "ZZB"]', 'parties = "ZZA"'),),
        ("parties", "list"),
    ),
    Case(
        "wrong-type-event-at", "instrument", (("at = 2021-02-01", 'at = "soon"'),), ("events.1.at",)
    ),
    Case(
        "wrong-type-term-initial",
        "instrument",
        (('initial = "P1Y"', "initial = true"),),
        ("term.initial",),
    ),
    Case(
        "bad-instrument-id",
        "instrument",
        (('id = "ZZ-TEST"', 'id = "zz test"'),),
        ("id", "pattern"),
    ),
    Case(
        "unknown-field",
        "instrument",
        (("binding = true\n", 'binding = true\ncolour = "blue"\n'),),
        ("colour",),
    ),
    Case(
        "unknown-event-kind",
        "instrument",
        (('kind = "notice-withdrawal"', 'kind = "denunciation"'),),
        ("events.1.kind",),
    ),
    Case(
        "unknown-party",
        "instrument",
        (('parties = ["ZZA", "ZZB"]', 'parties = ["ZZA", "ZZB", "ZZQ"]'),),
        ("parties[2]", "'ZZQ'"),
    ),
    Case(
        "unknown-level",
        "instrument",
        (('ZZA = ["sealed"]', 'ZZA = ["top-sealed"]'),),
        ("equivalence.rows[0].levels.ZZA", "'top-sealed'"),
    ),
    Case(
        "level-of-a-non-party",
        "instrument",
        (('ZZB = ["b-secret"]', 'JPN = ["hi"]'),),
        ("equivalence.rows[0].levels", "JPN"),
    ),
    Case(
        "unknown-excluded-level",
        "instrument",
        (
            (
                "[equivalence]\n",
                '[equivalence]\nexcluded = ["ZZA:nope"]\n'
                'excluded_article = "Art. 5"\nexcluded_source = "test"\n',
            ),
        ),
        ("equivalence.excluded[0]", "nope"),
    ),
    Case(
        "unknown-topic",
        "instrument",
        (('topics = ["zz-fisheries"]', 'topics = ["zz-whaling"]'),),
        ("scope.topics[0]", "'zz-whaling'"),
    ),
    Case(
        "scope-topics-and-all",
        "instrument",
        (('topics = ["zz-fisheries"]', 'topics = ["zz-fisheries"]\nall_topics = true'),),
        ("scope", "all_topics"),
    ),
    Case(
        "event-by-not-a-party",
        "instrument",
        (('by = "ZZB"', 'by = "JPN"'),),
        ("events[1].by", "'JPN'"),
    ),
    Case(
        "event-disputed-by-not-a-party",
        "instrument",
        (('by = "ZZA"\n', 'by = "ZZA"\ndisputed_by = ["KOR"]\n'),),
        ("events[0].disputed_by", "'KOR'"),
    ),
    Case(
        "bad-period-initial",
        "instrument",
        (('initial = "P1Y"', 'initial = "one year"'),),
        ("term.initial", "one year"),
    ),
    Case(
        "bad-period-notice",
        "instrument",
        (('notice = "P90D"', 'notice = "90 days"'),),
        ("termination.notice", "90 days"),
    ),
    Case(
        "unknown-timezone",
        "instrument",
        (('"Europe/Paris"', '"Mars/Olympus_Mons"'),),
        ("timezone", "Mars/Olympus_Mons"),
    ),
    Case(
        "duplicate-event-id",
        "instrument",
        (('id = "ev-two"', 'id = "ev-one"'),),
        ("events", "'ev-one'", "used twice"),
    ),
    Case(
        "unknown-protected-under",
        "instrument",
        (("binding = true\n", 'binding = true\nprotected_under = ["NOPE"]\n'),),
        ("protected_under[0]", "'NOPE'"),
    ),
    Case(
        "at-term-end-needs-initial",
        "instrument",
        (('initial = "P1Y"\n', ""), ('renewal = "P1Y"\n', "")),
        ("termination.mode", "term.initial"),
    ),
    Case("party-bad-code", "parties", (('code = "ZZA"', 'code = "Zz1"'),), ("parties.0.code",)),
    Case(
        "level-missing-rank",
        "parties",
        (("rank = 1\n", ""),),
        ("schemes.0.levels.0.rank", "Field required"),
    ),
    Case(
        "levels-out-of-order", "parties", (("rank = 1\n", "rank = 5\n"),), ("schemes.ZZA", "rank")
    ),
    Case(
        "topic-bad-id",
        "topics",
        (('id = "zz-fisheries"', 'id = "ZZ Fisheries"'),),
        ("topics.0.id",),
    ),
    pytest.param(  # type: ignore[list-item]
        Case(
            "party-unknown-scheme",
            "parties",
            (('scheme = "ZZB"', 'scheme = "ZZX"'),),
            ("parties", "scheme", "'ZZX'"),
        ),
        id="party-unknown-scheme",
    ),
]


def write_registry(root: Path, case: Case | None = None) -> Path:
    """A valid registry directory under ``root``, with ``case`` applied to its file."""
    (root / "instruments").mkdir(parents=True)
    texts = {
        "instrument": INSTRUMENT,
        "parties": (FICTIONAL / "parties.toml").read_text(encoding="utf-8"),
        "topics": (FICTIONAL / "topics.toml").read_text(encoding="utf-8"),
    }
    for key, text in texts.items():
        if case is not None and case.file == key:
            text = case.apply(text)
        (root / FILES[key]).write_text(text, encoding="utf-8")
    return root


def test_the_valid_registry_loads(tmp_path: Path) -> None:
    registry = load_registry([write_registry(tmp_path)])
    inst = registry.instrument("ZZ-TEST")
    assert [e.id for e in inst.events] == ["ev-one", "ev-two"]
    assert inst.source_file == str(tmp_path / FILES["instrument"])


@pytest.mark.parametrize(
    "case", [c if not isinstance(c, Case) else pytest.param(c, id=c.name) for c in CASES]
)
def test_an_invalid_file_names_the_file_and_the_field(tmp_path: Path, case: Case) -> None:
    directory = write_registry(tmp_path, case)
    with pytest.raises(RegistryError) as raised:
        load_registry([directory])
    message = raised.value.message
    assert f"{directory / FILES[case.file]}: {case.fields[0]}" in message, message
    for field in case.fields[1:]:
        assert field in message, f"{field!r} not in {message!r}"
    assert raised.value.code == "invalid-registry"


def test_a_missing_registry_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(RegistryError, match="registry directory not found") as raised:
        load_registry([missing])
    assert str(missing) in raised.value.message


# -- events files for what-ifs ----------------------------------------------------------------

EVENT_CASES = [
    pytest.param(
        'summary = "a hypothetical notice"',
        'summary = "unterminated',
        ("not valid TOML",),
        id="not-toml",
    ),
    pytest.param(
        'summary = "a hypothetical notice"\n',
        "",
        ("events.0.summary", "Field required"),
        id="missing-summary",
    ),
    pytest.param(
        'kind = "termination-notice"', 'kind = "ultimatum"', ("events.0.kind",), id="unknown-kind"
    ),
    pytest.param("at = 2022-06-01", 'at = "next spring"', ("events.0.at",), id="wrong-type-at"),
    pytest.param(
        'id = "hypothetical-notice"', 'id = "Hypothetical Notice"', ("events.0.id",), id="bad-id"
    ),
    pytest.param(EVENTS, "events = []\n", ("events", "at least 1"), id="no-events"),
]


@pytest.mark.parametrize(("old", "new", "fields"), EVENT_CASES)
def test_an_invalid_events_file_names_the_file_and_the_field(
    tmp_path: Path, old: str, new: str, fields: tuple[str, ...]
) -> None:
    assert old in EVENTS
    path = tmp_path / "whatif.toml"
    path.write_text(EVENTS.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RegistryError) as raised:
        load_events(path, "Europe/Paris")
    message = raised.value.message
    assert f"{path}: {fields[0]}" in message, message
    for field in fields[1:]:
        assert field in message, message


def test_a_missing_events_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="event file not found"):
        load_events(tmp_path / "nope.toml", "Europe/Paris")


def test_a_whatif_event_by_a_non_party_is_refused(tmp_path: Path) -> None:
    registry = load_registry([write_registry(tmp_path / "registry")])
    path = tmp_path / "whatif.toml"
    path.write_text(EVENTS.replace('by = "ZZB"', 'by = "JPN"'), encoding="utf-8")
    with pytest.raises(RegistryError) as raised:
        whatif_from(registry, "ZZ-TEST", [], [str(path)])
    assert str(path) in raised.value.message
    assert "by" in raised.value.message


def test_a_valid_events_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "whatif.toml"
    path.write_text(EVENTS, encoding="utf-8")
    (event,) = load_events(path, "Europe/Paris")
    assert (event.id, event.by, event.hypothetical) == ("hypothetical-notice", "ZZB", True)
    assert event.at.isoformat() == "2022-06-01T00:00:00+02:00"
