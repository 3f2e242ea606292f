"""The store's contract: one suite, run against every engine (see conftest.py).

Whatever the engine, the repositories must behave alike: same visibility, same pages, same
errors, same instants. Expected results are computed here from plain Python models of the rules
(``may_see``, ``matches``), never from the store itself.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from gsomia.core.errors import ConflictError, InputError, InvalidCursorError
from gsomia.store.engine import Store
from gsomia.store.models import ItemRow, TokenRow, UserRow
from gsomia.store.records import Derivation, Disposition, Item, Role, User, Visibility
from gsomia.store.repositories import (
    AccessRegister,
    Consents,
    Items,
    NodeMeta,
    Users,
    token_digest,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SEOUL = timezone(timedelta(hours=9))


def label(
    *topics: str,
    originator: str = "ZZA",
    classification: str = "ZZA-SECRET",
    compartments: Iterable[str] = (),
) -> dict[str, Any]:
    return {
        "originator": originator,
        "policy": originator.lower(),
        "classification": classification,
        "topics": list(topics),
        "compartments": list(compartments),
    }


def vis(rank: int, ntk: Iterable[str] = (), compartments: Iterable[str] = ()) -> Visibility:
    return Visibility(rank, frozenset(ntk), frozenset(compartments))


def cursor_of(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def add_user(store: Store, name: str, token: str | None = None, now: datetime = T0) -> User:
    with store.write() as s:
        return Users(s).add(
            name=name,
            roles=[Role.OFFICER],
            clearance="ZZA-SECRET",
            need_to_know=["missile"],
            compartments=[],
            token=token or f"token-{name}",
            now=now,
        )


# -- users ------------------------------------------------------------------------------------


def test_user_add_then_found_by_token_id_and_name(store: Store) -> None:
    with store.write() as s:
        added = Users(s).add(
            name="kim",
            roles=[Role.OFFICER, Role.AUDITOR],
            clearance="ZZA-SECRET",
            need_to_know=["missile", "naval", "missile"],
            compartments=["ALPHA"],
            token="s3cret",
            now=T0,
        )
    assert added.roles == {Role.OFFICER, Role.AUDITOR}
    assert added.need_to_know == {"missile", "naval"}
    with store.read() as s:
        users = Users(s)
        assert users.by_token("s3cret") == added
        assert users.get(added.id) == added
        assert users.by_name("kim") == added
        assert users.by_token("S3CRET") is None
        assert users.by_token("") is None
        assert users.get("no-such-id") is None
        assert users.by_name("lee") is None
    # the token itself is never stored, only its digest
    with store.read() as s:
        assert "s3cret" not in s.scalars(select(TokenRow.token_hash)).all()


def test_by_token_finds_only_active_tokens_of_active_users(store: Store) -> None:
    user = add_user(store, "kim", token="first")
    other = add_user(store, "lee", token="theirs")
    with store.write() as s:
        Users(s).add_token(user.id, "second", T0)
    with store.read() as s:
        assert Users(s).by_token("first") == user
        assert Users(s).by_token("second") == user
    with store.write() as s:  # one token revoked, the user still active
        s.execute(
            update(TokenRow)
            .where(TokenRow.token_hash == token_digest("first"))
            .values(revoked_at=T0 + timedelta(hours=1))
        )
    with store.read() as s:
        assert Users(s).by_token("first") is None
        assert Users(s).by_token("second") == user
    with store.write() as s:
        Users(s).revoke(user.id, T0 + timedelta(hours=2))
    with store.read() as s:
        assert Users(s).by_token("second") is None  # a token of a revoked user
        assert Users(s).by_token("theirs") == other  # nobody else is affected


def test_revoke_revokes_the_user_and_every_token(store: Store) -> None:
    user = add_user(store, "kim", token="one")
    other = add_user(store, "lee", token="other")
    with store.write() as s:
        Users(s).add_token(user.id, "two", T0)
    at = T0 + timedelta(days=1)
    with store.write() as s:
        revoked = Users(s).revoke(user.id, at)
    assert revoked is not None and revoked.revoked_at == at and not revoked.active
    with store.write() as s:  # revoking again keeps the first instant
        again = Users(s).revoke(user.id, at + timedelta(days=1))
        assert Users(s).revoke("no-such-id", at) is None
    assert again is not None and again.revoked_at == at
    with store.read() as s:
        tokens = s.execute(select(TokenRow.user_id, TokenRow.revoked_at)).all()
        assert Users(s).get(user.id) == revoked
        assert Users(s).by_token("one") is None and Users(s).by_token("two") is None
        assert Users(s).by_token("other") == other
    assert sorted((uid == user.id, when) for uid, when in tokens) == [
        (False, None),
        (True, at),
        (True, at),
    ]


def test_duplicate_user_name_is_a_conflict(store: Store) -> None:
    add_user(store, "kim")
    with pytest.raises(ConflictError, match="kim"), store.write() as s:
        Users(s).add(
            name="kim",
            roles=[],
            clearance=None,
            need_to_know=[],
            compartments=[],
            token="another",
            now=T0,
        )
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(UserRow)) == 1
        assert Users(s).by_token("another") is None


def user_pages(store: Store, limit: int) -> tuple[list[str], list[int], list[int]]:
    """Every page of the user list: names, the total on each page, the length of each page."""
    names: list[str] = []
    totals: list[int] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(50):
        with store.read() as s:  # each page in its own transaction, as an API client reads
            page = Users(s).list(limit=limit, cursor=cursor)
        names += [u.name for u in page.rows]
        totals.append(page.total)
        sizes.append(len(page.rows))
        cursor = page.next_cursor
        if cursor is None:
            return names, totals, sizes
    raise AssertionError(f"pagination with limit {limit} does not end")


def test_user_pages_cover_every_user_exactly_once(store: Store) -> None:
    names = [f"user-{i:02d}" for i in range(7)]
    random.Random(7).shuffle(names)  # inserted out of order
    for name in names:
        add_user(store, name)
    wrong: dict[Any, Any] = {}
    for limit in (1, 2, 3, 6, 7, 8, 500):
        seen, totals, sizes = user_pages(store, limit)
        full_pages = [min(limit, 7 - k) for k in range(0, 7, limit)]
        if (seen, set(totals), sizes) != (sorted(names), {7}, full_pages):
            wrong[limit] = (seen, totals, sizes)
    assert wrong == {}


def test_user_list_refuses_bad_limits_and_cursors(store: Store) -> None:
    add_user(store, "kim")
    with store.read() as s:
        users = Users(s)
        for limit in (0, -1, 501):
            with pytest.raises(InputError, match="limit"):
                users.list(limit=limit)
        with pytest.raises(InvalidCursorError):
            users.list(cursor="!!!")
        with pytest.raises(InvalidCursorError):
            users.list(cursor=cursor_of(b"\xff\xfe"))


def test_user_pages_work_for_names_with_a_bar(store: Store) -> None:
    add_user(store, "ops|night")
    add_user(store, "zed")
    with store.read() as s:
        first = Users(s).list(limit=1)
        assert first.next_cursor is not None
        second = Users(s).list(limit=1, cursor=first.next_cursor)
    assert [u.name for u in first.rows + second.rows] == ["ops|night", "zed"]


def test_count_admins_counts_active_admins(store: Store) -> None:
    with store.write() as s:
        users = Users(s)
        a = users.add(
            name="a",
            roles=[Role.ADMIN],
            clearance=None,
            need_to_know=[],
            compartments=[],
            token="a",
            now=T0,
        )
        users.add(
            name="b",
            roles=[Role.ADMIN, Role.AUDITOR],
            clearance=None,
            need_to_know=[],
            compartments=[],
            token="b",
            now=T0,
        )
        users.add(
            name="c",
            roles=[Role.AUDITOR],
            clearance=None,
            need_to_know=[],
            compartments=[],
            token="c",
            now=T0,
        )
    with store.read() as s:
        assert Users(s).count_admins() == 2
    with store.write() as s:
        Users(s).revoke(a.id, T0)
    with store.read() as s:
        assert Users(s).count_admins() == 1


# -- items: adding and getting ----------------------------------------------------------------


def test_item_needs_a_topic_and_nothing_is_stored_without_one(store: Store) -> None:
    with pytest.raises(InputError, match="topic"), store.write() as s:
        Items(s).add(
            title="no topic", label=label(), level_rank=1, payload=b"x", created_by=None, now=T0
        )
    with store.read() as s:
        assert Items(s).count() == 0


def test_item_add_records_what_it_was_given(store: Store) -> None:
    user = add_user(store, "kim")
    payload = b"launch at 05:42, impact in the sea"
    with store.write() as s:
        item = Items(s).add(
            title="Track 17",
            label=label("missile", compartments=["ALPHA"]),
            level_rank=2,
            payload=payload,
            created_by=user.id,
            now=T0,
            received_from="ZZB",
            received_under="zza-zzb-gsomia",
        )
    assert item.version == 1 and item.status is Disposition.HELD
    assert item.size == len(payload)
    assert item.payload_sha256 == hashlib.sha256(payload).hexdigest()
    with store.read() as s:
        items = Items(s)
        assert items.get(item.id, None) == item
        assert items.payload(item.id) == payload
        assert items.count() == 1
        with pytest.raises(InputError):
            items.payload("no-such-item")


def test_item_get_with_and_without_visibility(store: Store) -> None:
    with store.write() as s:
        item = Items(s).add(
            title="t", label=label("missile"), level_rank=3, payload=b"x", created_by=None, now=T0
        )
    with store.read() as s:
        items = Items(s)
        assert items.get(item.id, None) == item
        assert items.get(item.id, vis(3, {"missile"})) == item
        assert items.get(item.id, vis(2, {"missile"})) is None
        assert items.get("no-such-item", None) is None
        assert items.get("no-such-item", vis(9, {"missile"})) is None


# -- items: visibility ------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    key: str
    rank: int
    topics: frozenset[str]
    compartments: frozenset[str] = frozenset()


SPECS = [
    Spec("r1-missile", 1, frozenset({"missile"})),
    Spec("r2-missile-naval", 2, frozenset({"missile", "naval"})),
    Spec("r2-naval-alpha", 2, frozenset({"naval"}), frozenset({"ALPHA"})),
    Spec("r3-missile-alpha-bravo", 3, frozenset({"missile"}), frozenset({"ALPHA", "BRAVO"})),
    Spec("r4-cyber", 4, frozenset({"cyber"})),
    Spec("r3-all", 3, frozenset({"missile", "naval", "cyber"})),
]


def may_see(v: Visibility, spec: Spec) -> bool:
    """The rule, stated plainly: rank within clearance, every topic needed, every compartment
    held; no clearance means nothing."""
    return (
        v.max_rank > 0
        and spec.rank <= v.max_rank
        and spec.topics <= v.need_to_know
        and spec.compartments <= v.compartments
    )


VISIBILITIES = {
    "everything": vis(9, {"missile", "naval", "cyber"}, {"ALPHA", "BRAVO"}),
    "rank-0-with-everything-else": vis(0, {"missile", "naval", "cyber"}, {"ALPHA", "BRAVO"}),
    "negative-rank": vis(-1, {"missile", "naval", "cyber"}, {"ALPHA", "BRAVO"}),
    "rank-1": vis(1, {"missile", "naval", "cyber"}, {"ALPHA", "BRAVO"}),
    "rank-2-missile-only": vis(2, {"missile"}),
    "rank-3-missile-naval": vis(3, {"missile", "naval"}),
    "rank-3-missile-alpha": vis(3, {"missile"}, {"ALPHA"}),
    "rank-3-missile-alpha-bravo": vis(3, {"missile"}, {"ALPHA", "BRAVO"}),
    "rank-3-naval-alpha": vis(3, {"naval"}, {"ALPHA"}),
    "no-need-to-know": vis(9, (), {"ALPHA", "BRAVO"}),
    "unrelated-topic": vis(9, {"space"}, {"ALPHA", "BRAVO"}),
}


def add_specs(store: Store, specs: Iterable[Spec]) -> dict[str, Item]:
    added: dict[str, Item] = {}
    with store.write() as s:
        for n, spec in enumerate(specs):
            added[spec.key] = Items(s).add(
                title=spec.key,
                label=label(*sorted(spec.topics), compartments=sorted(spec.compartments)),
                level_rank=spec.rank,
                payload=spec.key.encode(),
                created_by=None,
                now=T0 + timedelta(minutes=n),
            )
    return added


def test_visibility_rules_agree_in_get_search_and_total(store: Store) -> None:
    added = add_specs(store, SPECS)
    wrong: dict[Any, Any] = {}
    with store.read() as s:
        items = Items(s)
        for who, v in VISIBILITIES.items():
            expected = {added[spec.key].title for spec in SPECS if may_see(v, spec)}
            page = items.search(v, limit=500)
            by_search = {i.title for i in page.rows}
            by_get = {i.title for i in added.values() if items.get(i.id, v) is not None}
            if not by_search == by_get == expected or page.total != len(expected):
                wrong[who] = {
                    "expected": sorted(expected),
                    "search": sorted(by_search),
                    "get": sorted(by_get),
                    "total": page.total,
                }
    assert wrong == {}


def test_visibility_cases_are_meaningful() -> None:
    """The table above exercises each rule both ways (a guard on the test data itself)."""
    outcomes = {who: {s.key for s in SPECS if may_see(v, s)} for who, v in VISIBILITIES.items()}
    assert outcomes["everything"] == {s.key for s in SPECS}
    assert outcomes["rank-0-with-everything-else"] == set()
    assert outcomes["rank-3-missile-alpha"] == {"r1-missile"}  # BRAVO missing
    assert "r3-missile-alpha-bravo" in outcomes["rank-3-missile-alpha-bravo"]
    assert "r2-missile-naval" not in outcomes["rank-2-missile-only"]  # one topic not covered
    assert outcomes["no-need-to-know"] == set()


# -- items: search filters --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    topics: tuple[str, ...]
    originator: str
    classification: str
    minutes: int
    rank: int = 1


ROWS = [
    Row(("missile",), "ZZA", "ZZA-SECRET", 0),
    Row(("missile", "naval"), "ZZA", "ZZA-CONFIDENTIAL", 10),
    Row(("naval",), "ZZB", "ZZB-II", 20),
    Row(("missile",), "ZZB", "ZZB-II", 30),
    Row(("cyber",), "ZZA", "ZZA-SECRET", 40),
    Row(("missile",), "ZZA", "ZZA-SECRET", 50, rank=5),  # above the searcher's clearance
    Row(("space",), "ZZA", "ZZA-SECRET", 60),  # outside the searcher's need-to-know
]
SEARCHER = vis(3, {"missile", "naval", "cyber"})


@pytest.fixture
def catalogue(store: Store) -> list[tuple[Row, Item]]:
    out: list[tuple[Row, Item]] = []
    with store.write() as s:
        for row in ROWS:
            item = Items(s).add(
                title=str(row),
                label=label(
                    *row.topics, originator=row.originator, classification=row.classification
                ),
                level_rank=row.rank,
                payload=b"x",
                created_by=None,
                now=(T0 + timedelta(minutes=row.minutes)).astimezone(SEOUL),
            )
            out.append((row, item))
    with store.write() as s:  # one returned item, to filter on status
        Items(s).dispose(out[3][1].id, status=Disposition.RETURNED, by=None, note="", now=T0)
    return out


FILTERS: dict[str, dict[str, Any]] = {
    "none": {},
    "topic-missile": {"topic": "missile"},
    "topic-naval": {"topic": "naval"},
    "topic-unknown": {"topic": "nothing"},
    "topic-invisible": {"topic": "space"},
    "originator": {"originator": "ZZB"},
    "classification": {"classification": "ZZA-SECRET"},
    "status-held": {"status": Disposition.HELD},
    "status-returned": {"status": Disposition.RETURNED},
    "after-inclusive": {"created_after": T0 + timedelta(minutes=10)},
    "before-exclusive": {"created_before": T0 + timedelta(minutes=30)},
    "range-other-offset": {
        "created_after": (T0 + timedelta(minutes=10)).astimezone(ZoneInfo("America/New_York")),
        "created_before": (T0 + timedelta(minutes=40)).astimezone(SEOUL),
    },
    "combined": {
        "topic": "missile",
        "originator": "ZZA",
        "status": Disposition.HELD,
        "created_after": T0,
        "created_before": T0 + timedelta(hours=1),
    },
}


def matches(row: Row, status: Disposition, f: dict[str, Any]) -> bool:
    created = T0 + timedelta(minutes=row.minutes)
    return (
        ("topic" not in f or f["topic"] in row.topics)
        and ("originator" not in f or f["originator"] == row.originator)
        and ("classification" not in f or f["classification"] == row.classification)
        and ("status" not in f or f["status"] is status)
        and ("created_after" not in f or created >= f["created_after"])
        and ("created_before" not in f or created < f["created_before"])
    )


def test_search_filters(store: Store, catalogue: list[tuple[Row, Item]]) -> None:
    visible_rows = [
        (row, item)
        for row, item in catalogue
        if row.rank <= SEARCHER.max_rank and set(row.topics) <= SEARCHER.need_to_know
    ]
    statuses = {catalogue[3][1].id: Disposition.RETURNED}
    wrong: dict[Any, Any] = {}
    with store.read() as s:
        for name, f in FILTERS.items():
            expected = [
                item.title
                for row, item in visible_rows
                if matches(row, statuses.get(item.id, Disposition.HELD), f)
            ]
            page = Items(s).search(SEARCHER, limit=100, **f)
            got = [i.title for i in page.rows]
            if (got, page.total, page.next_cursor) != (expected, len(expected), None):
                wrong[name] = {"expected": expected, "got": got, "total": page.total}
    assert wrong == {}


def test_search_filters_are_selective() -> None:
    """Guard on the tables above: every filter but "none" drops some visible row."""
    visible = [r for r in ROWS if r.rank <= 3 and set(r.topics) <= SEARCHER.need_to_know]
    for name, f in FILTERS.items():
        kept = [r for r in visible if matches(r, Disposition.HELD, f)]
        assert (len(kept) == len(visible)) == (name in {"none", "status-held"}), name


# -- items: pagination ------------------------------------------------------------------------


@pytest.fixture
def crowd(store: Store) -> list[Item]:
    """17 visible items (many sharing instants, written under different offsets, inserted out
    of order) and 6 the reader may not see, interleaved."""
    rng = random.Random(4774)
    instants = (
        [T0] * 5
        + [T0 + timedelta(microseconds=1)] * 3
        + [T0 + timedelta(seconds=n) for n in range(1, 10)]
    )
    zones = [UTC, SEOUL, ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")]
    plan: list[tuple[datetime, bool]] = [(at, True) for at in instants] + [
        (T0, False),
        (T0 + timedelta(seconds=3), False),
        (T0 + timedelta(seconds=3), False),
        (T0 - timedelta(days=1), False),
        (T0 + timedelta(days=1), False),
        (T0 + timedelta(microseconds=1), False),
    ]
    rng.shuffle(plan)
    visible_items: list[Item] = []
    with store.write() as s:
        for n, (at, shown) in enumerate(plan):
            item = Items(s).add(
                title=f"item {n}",
                label=label("missile") if shown else label("missile", compartments=["ALPHA"]),
                level_rank=2,
                payload=b"x",
                created_by=None,
                now=at.astimezone(zones[n % len(zones)]),
            )
            if shown:
                visible_items.append(item)
    return sorted(visible_items, key=lambda i: (i.created_at, i.id))


READER = vis(2, {"missile"})


def collect(store: Store, limit: int, **filters: Any) -> tuple[list[str], list[int]]:
    """All pages, each read in its own transaction as an API client would."""
    ids: list[str] = []
    totals: list[int] = []
    cursor: str | None = None
    for _ in range(100):
        with store.read() as s:
            page = Items(s).search(READER, limit=limit, cursor=cursor, **filters)
        assert len(page.rows) <= limit
        ids += [i.id for i in page.rows]
        totals.append(page.total)
        cursor = page.next_cursor
        if cursor is None:
            return ids, totals
        assert len(page.rows) == limit
    raise AssertionError("pagination does not end")


def test_pages_concatenate_to_the_visible_set_in_order(store: Store, crowd: list[Item]) -> None:
    expected = [i.id for i in crowd]
    assert len(set(expected)) == 17
    wrong: dict[Any, Any] = {}
    for limit in (1, 2, 3, 5, 16, 17, 18, 500):
        ids, totals = collect(store, limit)
        if (ids, set(totals), len(totals)) != (expected, {17}, -(-17 // limit)):
            wrong[limit] = (ids, totals)
    assert wrong == {}


def test_pages_with_a_filter(store: Store, crowd: list[Item]) -> None:
    after = T0 + timedelta(microseconds=1)
    ids, totals = collect(store, 2, created_after=after)
    expected = [i.id for i in crowd if i.created_at >= after]
    assert ids == expected and set(totals) == {len(expected)} and len(expected) == 12


def test_pages_in_one_session_match_pages_across_sessions(store: Store, crowd: list[Item]) -> None:
    ids: list[str] = []
    with store.read() as s:
        cursor: str | None = None
        while True:
            page = Items(s).search(READER, limit=4, cursor=cursor)
            ids += [i.id for i in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert ids == [i.id for i in crowd]


def test_a_cursor_still_finds_items_added_after_it_was_handed_out(store: Store) -> None:
    add_specs(store, [Spec(f"s{n}", 1, frozenset({"missile"})) for n in range(3)])
    with store.read() as s:
        first = Items(s).search(READER, limit=2)
    assert first.next_cursor is not None
    with store.write() as s:
        late = Items(s).add(
            title="late",
            label=label("missile"),
            level_rank=1,
            payload=b"",
            created_by=None,
            now=T0 + timedelta(days=1),
        )
    with store.read() as s:
        rest = Items(s).search(READER, limit=2, cursor=first.next_cursor)
    assert [i.title for i in rest.rows] == ["s2", "late"] and rest.rows[1].id == late.id
    assert rest.total == 4


def outcome(store: Store, read: Callable[[Session], object]) -> str:
    """Return "refused" when ``read`` raises InvalidCursorError, else what happened instead."""
    try:
        with store.read() as s:  # a session of its own: a failed statement spoils a transaction
            read(s)
    except InvalidCursorError:
        return "refused"
    except Exception as e:  # reported, so that every case shows in one failure
        return f"{type(e).__name__}: {e}"[:200]
    return "accepted"


MALFORMED_CURSORS = {
    "not-base64": "!!!",
    "junk-after-base64": cursor_of("2026-03-01T09:00:00+00:00|x") + "!",
    "one-field": cursor_of("one-part"),
    "three-fields": cursor_of("a|b|c"),
    "not-an-instant": cursor_of("yesterday|some-id"),
    "not-utf8": cursor_of(b"\xff\xfe|\x80"),
    "naive-instant": cursor_of("2026-03-01T09:00:00|some-id"),
}


def test_malformed_item_cursors_are_refused(store: Store) -> None:
    add_specs(store, SPECS[:1])
    outcomes = {
        name: outcome(store, lambda s, c=cursor: Items(s).search(READER, cursor=c))
        for name, cursor in MALFORMED_CURSORS.items()
    }
    assert outcomes == dict.fromkeys(MALFORMED_CURSORS, "refused")


def test_search_refuses_bad_limits(store: Store) -> None:
    with store.read() as s:
        for limit in (0, 501):
            with pytest.raises(InputError, match="limit"):
                Items(s).search(READER, limit=limit)


# -- items: relabelling and disposition -------------------------------------------------------


def test_relabel_keeps_history_and_moves_visibility(store: Store) -> None:
    officer = add_user(store, "kim")
    with store.write() as s:
        item = Items(s).add(
            title="t",
            label=label("missile"),
            level_rank=2,
            payload=b"x",
            created_by=officer.id,
            now=T0,
        )
    missile, naval = vis(3, {"missile"}), vis(3, {"naval"}, {"ALPHA"})
    second = label("naval", classification="ZZA-TOP-SECRET", compartments=["ALPHA"])
    with store.write() as s:
        relabelled = Items(s).relabel(
            item.id,
            label=second,
            level_rank=3,
            changed_by=officer.id,
            reason="upgrade",
            now=T0 + timedelta(hours=1),
        )
    assert relabelled.version == 2 and relabelled.label == second and relabelled.level_rank == 3
    with store.read() as s:
        items = Items(s)
        assert items.get(item.id, missile) is None
        assert items.get(item.id, naval) == relabelled
        assert items.get(item.id, vis(2, {"naval"}, {"ALPHA"})) is None  # new rank applies
        assert items.get(item.id, vis(3, {"naval"})) is None  # new compartment applies
        assert items.search(naval, topic="naval").total == 1
        assert items.search(naval, topic="missile").total == 0
        assert items.search(naval, classification="ZZA-TOP-SECRET").total == 1
        assert items.search(naval, classification="ZZA-SECRET").total == 0
    third = label("missile", "naval")
    with store.write() as s:
        Items(s).relabel(
            item.id,
            label=third,
            level_rank=1,
            changed_by=None,
            reason="downgrade",
            now=T0 + timedelta(hours=2),
        )
    with store.read() as s:
        items = Items(s)
        history = items.history(item.id)
        current = items.get(item.id, None)
        assert items.get(item.id, missile) is None  # naval is now needed as well
        assert items.get(item.id, vis(1, {"missile", "naval"})) == current
        assert items.history("no-such-item") == []
    assert current is not None and current.version == 3 and current.label == third
    assert [(h.version, h.reason, h.changed_by) for h in history] == [
        (2, "upgrade", officer.id),
        (3, "downgrade", None),
    ]
    assert history[0].old_label == label("missile") and history[0].new_label == second
    assert history[1].old_label == second and history[1].new_label == third
    assert [h.changed_at for h in history] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]


def test_relabel_of_an_unknown_item_is_refused(store: Store) -> None:
    with pytest.raises(InputError), store.write() as s:
        Items(s).relabel(
            "no-such-item",
            label=label("missile"),
            level_rank=1,
            changed_by=None,
            reason="r",
            now=T0,
        )


def test_relabel_without_topics_is_refused(store: Store) -> None:
    added = add_specs(store, SPECS[:1])
    item_id = added[SPECS[0].key].id
    with pytest.raises(InputError, match="topic"), store.write() as s:
        Items(s).relabel(item_id, label=label(), level_rank=1, changed_by=None, reason="r", now=T0)
    with store.read() as s:
        assert Items(s).get(item_id, vis(9)) is None


def test_relabel_with_a_repeated_topic_is_like_add(store: Store) -> None:
    added = add_specs(store, SPECS[:1])
    item_id = added[SPECS[0].key].id
    with store.write() as s:
        Items(s).relabel(
            item_id,
            label=label("naval", "naval"),
            level_rank=1,
            changed_by=None,
            reason="r",
            now=T0,
        )
    with store.read() as s:
        assert Items(s).get(item_id, vis(1, {"naval"})) is not None


@pytest.mark.parametrize("status", [Disposition.RETURNED, Disposition.DESTROYED])
def test_dispose_once_only(store: Store, status: Disposition) -> None:
    officer = add_user(store, "kim")
    added = add_specs(store, SPECS[:1])
    item = added[SPECS[0].key]
    payload = SPECS[0].key.encode()
    at = T0 + timedelta(days=3)
    with store.write() as s:
        disposed = Items(s).dispose(item.id, status=status, by=officer.id, note="Art. 13", now=at)
    assert disposed.status is status
    assert (disposed.disposed_at, disposed.disposed_by, disposed.disposition_note) == (
        at,
        officer.id,
        "Art. 13",
    )
    with pytest.raises(ConflictError), store.write() as s:
        Items(s).dispose(item.id, status=Disposition.DESTROYED, by=None, note="again", now=at)
    with store.read() as s:
        items = Items(s)
        stored = items.get(item.id, None)
        kept = items.payload(item.id)
        by_status = items.search(vis(1, {"missile"}), status=status)
    assert stored == disposed  # the record stays, the second act changed nothing
    assert by_status.total == 1
    if status is Disposition.DESTROYED:
        assert kept == b""
        assert stored.payload_sha256 == item.payload_sha256  # the record of what was destroyed
    else:
        assert kept == payload


def test_dispose_of_an_unknown_item_is_refused(store: Store) -> None:
    with pytest.raises(InputError), store.write() as s:
        Items(s).dispose("nope", status=Disposition.RETURNED, by=None, note="", now=T0)


def test_derived_items_respect_visibility(store: Store) -> None:
    added = add_specs(store, SPECS[:1])
    source = added[SPECS[0].key]
    with store.write() as s:
        open_copy = Items(s).add(
            title="copy",
            label=label("missile"),
            level_rank=1,
            payload=b"c",
            created_by=None,
            now=T0,
            source_item_id=source.id,
            derivation=Derivation.COPY,
        )
        Items(s).add(
            title="extract",
            label=label("missile", compartments=["ALPHA"]),
            level_rank=1,
            payload=b"e",
            created_by=None,
            now=T0,
            source_item_id=source.id,
            derivation=Derivation.EXTRACT,
        )
    with store.read() as s:
        assert Items(s).derived_from(source.id, vis(1, {"missile"})) == [open_copy]
        assert len(Items(s).derived_from(source.id, vis(1, {"missile"}, {"ALPHA"}))) == 2
    assert open_copy.derivation is Derivation.COPY and open_copy.source_item_id == source.id


# -- the access register ----------------------------------------------------------------------


def test_access_register_records_lists_filters_and_pages(store: Store) -> None:
    kim, lee = add_user(store, "kim"), add_user(store, "lee")
    added = add_specs(store, SPECS[:2])
    one, two = (added[s.key].id for s in SPECS[:2])
    plan = [
        (one, kim.id, "read"),
        (one, lee.id, "read"),
        (two, kim.id, "relabel"),
        (None, kim.id, "login"),
        (two, None, "receive"),
        (one, kim.id, "read"),
        (two, lee.id, "read"),
    ]
    with store.write() as s:
        for n, (item_id, user_id, action) in enumerate(plan):
            AccessRegister(s).record(
                item_id=item_id,
                user_id=user_id,
                action=action,
                at=(T0 + timedelta(seconds=n)).astimezone(SEOUL),
                detail=f"#{n}",
            )
    with store.read() as s:
        register = AccessRegister(s)
        everything = register.list()
        assert [(r.item_id, r.user_id, r.action) for r in everything.rows] == plan
        assert [r.detail for r in everything.rows] == [f"#{n}" for n in range(len(plan))]
        assert [r.at for r in everything.rows] == [
            T0 + timedelta(seconds=n) for n in range(len(plan))
        ]
        assert everything.total == len(plan) and everything.next_cursor is None
        ids = [r.id for r in everything.rows]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        def details(**f: Any) -> list[str]:
            return [r.detail for r in register.list(**f).rows]

        assert details(item_id=one) == ["#0", "#1", "#5"]
        assert details(user_id=kim.id) == ["#0", "#2", "#3", "#5"]
        assert details(action="read") == ["#0", "#1", "#5", "#6"]
        assert details(item_id=one, user_id=kim.id, action="read") == ["#0", "#5"]
        assert details(action="nothing") == []

        for limit in (1, 2, 3, 7):
            seen: list[str] = []
            cursor: str | None = None
            while True:
                page = register.list(action="read", limit=limit, cursor=cursor)
                assert page.total == 4
                seen += [r.detail for r in page.rows]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == ["#0", "#1", "#5", "#6"], limit


ACCESS_CURSORS = {
    "not-base64": "!!!",
    "not-a-number": cursor_of("abc"),
    "two-fields": cursor_of("1|2"),
    "negative": cursor_of("-1"),
    "superscript-digit": cursor_of("²"),
    "junk-after-base64": cursor_of("1") + "!",
}


def test_malformed_access_cursors_are_refused(store: Store) -> None:
    with store.write() as s:
        AccessRegister(s).record(item_id=None, user_id=None, action="login", at=T0, detail="")
    outcomes = {
        name: outcome(store, lambda s, c=cursor: AccessRegister(s).list(cursor=c))
        for name, cursor in ACCESS_CURSORS.items()
    }
    assert outcomes == dict.fromkeys(ACCESS_CURSORS, "refused")


def test_access_cursor_with_a_huge_number_is_refused(store: Store) -> None:
    with store.read() as s, pytest.raises(InvalidCursorError):
        AccessRegister(s).list(cursor=cursor_of("9" * 30))


# -- consents and node metadata ---------------------------------------------------------------


def test_consents_are_kept_per_item_in_recorded_order(store: Store) -> None:
    kim = add_user(store, "kim")
    added = add_specs(store, SPECS[:2])
    one, two = (added[s.key].id for s in SPECS[:2])
    with store.write() as s:
        consents = Consents(s)
        later = consents.add(
            item_id=one,
            originator="ZZB",
            recorded_by=kim.id,
            reference="letter 2",
            now=T0 + timedelta(days=2),
        )
        earlier = consents.add(
            item_id=one,
            originator="ZZB",
            recorded_by=None,
            reference="letter 1",
            now=(T0 + timedelta(days=1)).astimezone(SEOUL),
        )
        general = consents.add(
            item_id=None, originator="ZZC", recorded_by=None, reference="standing", now=T0
        )
    assert len({later.id, earlier.id, general.id}) == 3
    with store.read() as s:
        assert Consents(s).for_item(one) == [earlier, later]
        assert Consents(s).for_item(two) == []
    with store.read() as s:
        stored = Consents(s).for_item(one)
    assert [c.recorded_at.utcoffset() for c in stored] == [timedelta(0)] * 2
    assert (stored[1].originator, stored[1].recorded_by, stored[1].reference) == (
        "ZZB",
        kim.id,
        "letter 2",
    )


def test_node_meta_get_set_overwrite(store: Store) -> None:
    with store.read() as s:
        assert NodeMeta(s).get("party") is None
    with store.write() as s:
        NodeMeta(s).set("party", "ZZA")
        NodeMeta(s).set("scheme", "zza")
    with store.write() as s:
        assert NodeMeta(s).get("party") == "ZZA"
        NodeMeta(s).set("party", "ZZB")
    with store.read() as s:
        assert (NodeMeta(s).get("party"), NodeMeta(s).get("scheme")) == ("ZZB", "zza")


# -- transactions and instants ----------------------------------------------------------------


class BoomError(Exception):
    pass


def test_a_failed_write_leaves_nothing_behind(store: Store) -> None:
    def write_then_fail() -> None:
        with store.write() as s:
            user = Users(s).add(
                name="kim",
                roles=[Role.ADMIN],
                clearance=None,
                need_to_know=["missile"],
                compartments=[],
                token="t",
                now=T0,
            )
            item = Items(s).add(
                title="t",
                label=label("missile"),
                level_rank=1,
                payload=b"x",
                created_by=user.id,
                now=T0,
            )
            AccessRegister(s).record(
                item_id=item.id, user_id=user.id, action="create", at=T0, detail=""
            )
            Consents(s).add(
                item_id=item.id, originator="ZZB", recorded_by=None, reference="", now=T0
            )
            NodeMeta(s).set("party", "ZZA")
            s.flush()  # the rows really reached the database before the failure
            assert s.scalar(select(func.count()).select_from(ItemRow)) == 1
            raise BoomError

    with pytest.raises(BoomError):
        write_then_fail()
    with store.read() as s:
        assert Users(s).list().total == 0
        assert Users(s).by_token("t") is None
        assert Items(s).count() == 0
        assert AccessRegister(s).list().total == 0
        assert NodeMeta(s).get("party") is None
        assert s.scalar(select(func.count()).select_from(TokenRow)) == 0
    # and the store is still usable afterwards
    add_user(store, "kim")
    with store.read() as s:
        assert Users(s).list().total == 1


def test_a_conflict_midway_rolls_back_the_earlier_writes(store: Store) -> None:
    add_user(store, "kim")

    def add_two() -> None:
        with store.write() as s:
            for name in ("lee", "kim"):
                Users(s).add(
                    name=name,
                    roles=[],
                    clearance=None,
                    need_to_know=[],
                    compartments=[],
                    token=f"{name}-2",
                    now=T0,
                )

    with pytest.raises(ConflictError):
        add_two()
    with store.read() as s:
        assert [u.name for u in Users(s).list().rows] == ["kim"]
        assert Users(s).by_token("lee-2") is None


INSTANTS = {
    "fixed-offset": datetime(2019, 11, 23, 0, 0, tzinfo=SEOUL),
    "zoneinfo-microseconds": datetime(2019, 11, 22, 23, 59, 59, 999999, ZoneInfo("Asia/Seoul")),
    "dst": datetime(2026, 7, 4, 12, 0, tzinfo=ZoneInfo("America/New_York")),
    "utc": datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    "odd-offset": datetime(2026, 1, 1, tzinfo=timezone(-timedelta(hours=9, minutes=30))),
}


def test_aware_instants_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    with store.write() as s:
        for name, at in INSTANTS.items():
            user = Users(s).add(
                name=name,
                roles=[],
                clearance=None,
                need_to_know=[],
                compartments=[],
                token=name,
                now=at,
            )
            AccessRegister(s).record(item_id=None, user_id=user.id, action="a", at=at, detail=name)
            Items(s).add(
                title=name,
                label=label("missile"),
                level_rank=1,
                payload=b"",
                created_by=None,
                now=at,
            )
    wrong: dict[Any, Any] = {}
    with store.read() as s:
        users = {u.name: u.created_at for u in Users(s).list().rows}
        records = {r.detail: r.at for r in AccessRegister(s).list().rows}
        items = {i.title: i.created_at for i in Items(s).search(READER).rows}
        for name, at in INSTANTS.items():
            got = [users[name], records[name], items[name]]
            if any(g != at or g.tzinfo is None or g.utcoffset() != timedelta(0) for g in got):
                wrong[name] = got
            # the same instant selects the same rows, whatever the offset it is given in
            exact = Items(s).search(
                READER, created_after=at, created_before=at + timedelta.resolution
            )
            if [i.title for i in exact.rows] != [name]:
                wrong[f"{name} (search)"] = [i.title for i in exact.rows]
    assert wrong == {}


NAIVE = datetime(2026, 3, 1, 9, 0)


def test_naive_instants_are_refused_and_nothing_is_written(store: Store) -> None:
    with pytest.raises((ValueError, StatementError), match="naive datetime"), store.write() as s:
        Users(s).add(
            name="kim",
            roles=[],
            clearance=None,
            need_to_know=[],
            compartments=[],
            token="t",
            now=NAIVE,
        )
    with pytest.raises((ValueError, StatementError), match="naive datetime"), store.write() as s:
        AccessRegister(s).record(item_id=None, user_id=None, action="a", at=NAIVE, detail="")
    with pytest.raises((ValueError, StatementError), match="naive datetime"), store.read() as s:
        Items(s).search(READER, created_after=NAIVE)
    with store.read() as s:
        assert Users(s).list().total == 0
        assert AccessRegister(s).list().total == 0
