"""Items over the API: create, list and search, pages, get, payload, derivations, reclassification,
disposition, consents, dry-run decisions; and the invisibility of what a user may not know exists.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from gsomia.store.repositories import ActBatch, Items

from .conftest import (
    CORPUS,
    NOON,
    VISIBLE,
    Api,
    assert_problem,
    b64,
    corpus_payload,
    item_body,
)


def instant(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    assert at.tzinfo is not None, text
    return at


# -- create ------------------------------------------------------------------------------------


def test_create_answers_201_with_label_level_and_markings(api: Api) -> None:
    data = b"\x00\x01 launch at 06:42 KST \xff"
    response = api.post(
        "officer",
        "/items",
        item_body(
            title="  Hwasong launch report  ",
            classification="極秘",
            topics=["dprk-missile", "dprk-nuclear"],
            rel_to=["KOR"],
            payload=data,
        ),
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    item = response.json()
    assert item["title"] == "Hwasong launch report"
    assert item["label"]["originator"] == "JPN"
    assert item["label"]["policy"] == "JPN"
    assert item["label"]["classification"] == "gokuhi"
    assert item["label"]["releasable_to"] == ["JPN", "KOR"]
    assert item["label"]["topics"] == ["dprk-missile", "dprk-nuclear"]
    assert item["label"]["compartments"] == []
    assert item["level"] == {"id": "gokuhi", "native": "極秘", "english": "SECRET"}
    assert item["markings"]["native"] == "極秘//REL TO JPN, KOR"
    assert item["size"] == len(data)
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert instant(item["created_at"]) == NOON
    assert item["created_by"] == api.users["officer"].id
    assert (item["version"], item["status"], item["derivation"]) == (1, "held", None)

    got = api.get("officer", f"/items/{item['id']}")
    assert got.status_code == 200
    assert {**got.json(), "created_at": None} == {**item, "created_at": None}
    assert instant(got.json()["created_at"]) == NOON
    [create] = api.register(item_id=item["id"], action="create")
    assert create.user_id == api.users["officer"].id
    assert create.at == NOON


def test_the_create_response_is_what_a_get_answers_afterwards(api: Api) -> None:
    created = api.create("officer")
    assert api.get("officer", f"/items/{created['id']}").json() == created


LEVEL_NAMES = [
    ("hi", "hi", "秘"),
    ("秘", "hi", "秘"),
    ("Gokuhi", "gokuhi", "極秘"),
    ("特定秘密", "tokutei-himitsu", "特定秘密"),
    ("tokutei-himitsu", "tokutei-himitsu", "特定秘密"),
    ("機密", "kimitsu", "機密"),
]


def test_create_accepts_a_level_by_id_native_name_or_romanization(api: Api) -> None:
    for given, level_id, native in LEVEL_NAMES:
        item = api.create("ra", classification=given)
        assert item["label"]["classification"] == level_id, given
        assert item["level"]["native"] == native, given


def test_create_with_a_compartment_marks_it_upper_case(api: Api) -> None:
    item = api.create("officer_blue", compartments=["blue"])
    assert item["label"]["compartments"] == ["BLUE"]
    assert api.get("officer_blue", f"/items/{item['id']}").status_code == 200
    assert_problem(api.get("officer", f"/items/{item['id']}"), 404, "item-not-found")


REFUSED_CREATES: list[tuple[str, dict[str, Any], int, str]] = [
    ("auditor", {}, 403, "forbidden"),
    ("admin", {}, 403, "forbidden"),
    ("officer", {"classification": "機密"}, 403, "forbidden"),  # above clearance
    ("officer", {"topics": ["prc-maritime"]}, 403, "forbidden"),  # no need-to-know
    ("officer", {"topics": ["dprk-missile", "prc-maritime"]}, 403, "forbidden"),
    ("officer", {"compartments": ["BLUE"]}, 403, "forbidden"),  # not read in
    ("officer_none", {"classification": "秘"}, 403, "forbidden"),
    ("officer", {"title": "   "}, 400, "invalid-input"),
    ("officer", {"title": "x" * 501}, 400, "invalid-input"),
    ("officer", {"rel_to": ["XXX"]}, 404, "unknown-party"),
]


def test_a_refused_create_writes_nothing(api: Api) -> None:
    api.create("officer")  # something in the register and the store already
    items, rows = api.item_count(), api.register_total()
    for who, body, status, code in REFUSED_CREATES:
        assert_problem(api.post(who, "/items", item_body(**body)), status, code)
        assert (api.item_count(), api.register_total()) == (items, rows), (who, body)


# -- list, search, pages -----------------------------------------------------------------------


def test_each_user_lists_exactly_what_they_may_see(corpus: Api) -> None:
    for who, expected in VISIBLE.items():
        rows, totals = corpus.all_pages(who, "/items", limit=500)
        assert {corpus.key_of(r["id"]) for r in rows} == expected, who
        assert len(rows) == len(expected)
        assert totals == [len(expected)], who


def test_admin_may_not_list_items(corpus: Api) -> None:
    assert_problem(corpus.get("admin", "/items"), 403, "forbidden")


SEARCHES: list[tuple[str, dict[str, str], set[str]]] = [
    ("ra", {"topic": "dprk-nuclear"}, {"gokuhi_nuclear", "gokuhi_both"}),
    ("officer", {"topic": "dprk-nuclear"}, {"gokuhi_nuclear", "gokuhi_both"}),
    ("officer_nuclear", {"topic": "dprk-missile"}, set()),
    (
        "officer",
        {"topic": "dprk-missile"},
        {"hi_missile", "gokuhi_missile", "gokuhi_both", "kor_missile"},
    ),
    ("ra", {"originator": "KOR"}, {"kor_missile"}),
    ("ra", {"originator": "JPN"}, set(CORPUS) - {"kor_missile"}),
    ("ra", {"classification": "tokutei-himitsu"}, {"tokutei_maritime"}),
    ("ra", {"classification": "機密"}, {"kimitsu_missile"}),
    ("officer", {"classification": "機密"}, set()),
    (
        "officer_blue",
        {"classification": "gokuhi"},
        {"gokuhi_missile", "gokuhi_blue", "kor_missile"},
    ),
    (
        "ra",
        {"classification": "極秘", "topic": "dprk-nuclear"},
        {"gokuhi_nuclear", "gokuhi_both"},
    ),
    ("ra", {"status": "held"}, set(CORPUS)),
    ("ra", {"status": "destroyed"}, set()),
    ("ra", {"created_after": "2019-11-22T12:00+09:00"}, set(CORPUS)),
    ("ra", {"created_after": "2019-11-22T12:00:01+09:00"}, set()),
    ("ra", {"created_before": "2019-11-22T12:00+09:00"}, set()),
    ("auditor", {"created_before": "2019-11-23"}, VISIBLE["auditor"]),
]


def test_search_filters_within_what_the_user_may_see(corpus: Api) -> None:
    for who, params, expected in SEARCHES:
        rows, totals = corpus.all_pages(who, "/items", params, limit=500)
        assert {corpus.key_of(r["id"]) for r in rows} == expected, (who, params)
        assert totals == [len(expected)], (who, params)


def test_search_by_creation_time_and_status(corpus: Api) -> None:
    corpus.clock.at = NOON + timedelta(hours=1)
    later = corpus.create("ra", title="later")["id"]
    corpus.clock.at = NOON + timedelta(days=1)
    next_day = corpus.create("ra", title="next day")["id"]
    corpus.clock.at = NOON + timedelta(days=2)
    destroyed = corpus.post(
        "ra", f"/items/{later}/disposition", {"disposition": "destroyed", "note": "shredded"}
    )
    assert destroyed.status_code == 200, destroyed.text

    def ids(**params: str) -> set[str]:
        rows, totals = corpus.all_pages("ra", "/items", params, limit=3)
        assert totals == [len(rows)] * len(totals)
        return {r["id"] for r in rows}

    assert ids(created_after="2019-11-22T12:30+09:00") == {later, next_day}
    # A naive instant is in the node's zone (Asia/Tokyo): 13:00 JST is 04:00 UTC.
    assert ids(created_after="2019-11-22T13:00") == {later, next_day}
    assert ids(created_after="2019-11-22T04:00:00.000001Z") == {next_day}
    assert ids(created_before="2019-11-22T13:00+09:00") == set(corpus.items.values())
    assert ids(created_after="2019-11-22T12:30+09:00", created_before="2019-11-23") == {later}
    assert ids(status="destroyed") == {later}
    assert ids(status="held") == {*corpus.items.values(), next_day}
    assert ids(status="returned") == set()


LIMITS = (1, 2, 3, 7, 500)


def test_pages_concatenate_to_the_visible_set_exactly_once(corpus: Api) -> None:
    # Items at three instants, several at each: order and cursors must break ties by id.
    new: set[str] = set()
    for hours, microseconds in ((3, 0), (1, 0), (2, 0), (1, 0), (3, 0), (1, 1), (1, 999_999)):
        corpus.clock.at = NOON + timedelta(hours=hours, microseconds=microseconds)
        new.add(corpus.create("ra", title=f"+{hours}h", topics=["dprk-missile"])["id"])
    for who, limit in itertools.product(("ra", "officer", "officer_blue", "officer_hi"), LIMITS):
        rows, totals = corpus.all_pages(who, "/items", limit=limit)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), f"{who}, limit {limit}: an item appeared twice"
        expected = {corpus.items[k] for k in VISIBLE[who]}
        if who != "officer_hi":  # the new 極秘 items are above 秘
            expected |= new
        assert set(ids) == expected, (who, limit)
        assert set(totals) == {len(expected)}, (who, limit)
        assert len(totals) == max(1, -(-len(expected) // limit)), (who, limit)  # no empty page
        # In creation order, ties broken by id.
        keys = [(instant(r["created_at"]), r["id"]) for r in rows]
        assert keys == sorted(keys), (who, limit)


def test_pages_with_a_filter(corpus: Api) -> None:
    rows, totals = corpus.all_pages("officer", "/items", {"topic": "dprk-missile"}, limit=1)
    assert {corpus.key_of(r["id"]) for r in rows} == {
        "hi_missile",
        "gokuhi_missile",
        "gokuhi_both",
        "kor_missile",
    }
    assert totals == [4, 4, 4, 4]


# -- get and payload ---------------------------------------------------------------------------


def test_get_records_a_view_for_officers_and_auditors(corpus: Api) -> None:
    item_id = corpus.items["gokuhi_missile"]
    for who in ("officer", "auditor", "ra"):
        response = corpus.get(who, f"/items/{item_id}")
        assert response.status_code == 200, who
        assert response.json()["id"] == item_id
        assert response.json()["level"]["native"] == "極秘"
        assert len(corpus.register(item_id=item_id, user=who, action="view")) == 1


def test_a_received_item_shows_its_provenance(corpus: Api) -> None:
    item = corpus.get("officer", f"/items/{corpus.items['kor_missile']}").json()
    assert item["label"]["originator"] == "KOR"
    assert item["label"]["original"] == ["KOR", "gunsa-2"]
    assert (item["received_from"], item["received_under"]) == ("KOR", "JPN-KOR-GSOMIA")
    assert item["level"]["native"] == "極秘"


def test_payload_is_the_exact_bytes_with_item_headers(api: Api) -> None:
    data = bytes(range(256)) * 3
    item = api.create("officer", payload=data)
    response = api.get("officer", f"/items/{item['id']}/payload")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-gsomia-item"] == item["id"]
    assert response.headers["x-gsomia-sha256"] == hashlib.sha256(data).hexdigest()
    assert int(response.headers["content-length"]) == len(data)
    [read] = api.register(item_id=item["id"], action="read")
    assert read.user_id == api.users["officer"].id
    assert read.detail == f"{len(data)} B"


def test_an_empty_payload_round_trips(api: Api) -> None:
    item = api.create("officer", payload=b"")
    assert item["size"] == 0
    response = api.get("officer", f"/items/{item['id']}/payload")
    assert (response.status_code, response.content) == (200, b"")


def test_auditors_see_metadata_but_never_content(corpus: Api) -> None:
    item_id = corpus.items["hi_missile"]
    assert corpus.get("auditor", f"/items/{item_id}").status_code == 200
    body = assert_problem(corpus.get("auditor", f"/items/{item_id}/payload"), 403, "forbidden")
    assert "content of" not in body["detail"]
    assert corpus.register(item_id=item_id, user="auditor", action="read") == []


def test_the_read_is_registered_before_the_payload_is_returned(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = b"THE-SECRET-CONTENT"
    item = api.create("officer", payload=secret)

    # Reads are written in group-commit batches: the batch's register rows and ledger entries
    # go in together just before its commit. Fail that write for any batch holding a read.
    flush = ActBatch.flush

    def failing_flush(batch: ActBatch) -> None:
        if any(entry.kind == "act.read" for entry in batch._entries):
            raise RuntimeError("the register's disk is full")
        flush(batch)

    monkeypatch.setattr(ActBatch, "flush", failing_flush)
    response = api.get("officer", f"/items/{item['id']}/payload")
    assert_problem(response, 500, "internal-error")
    assert secret not in response.content
    monkeypatch.undo()
    assert api.register(item_id=item["id"], action="read") == []
    ok = api.get("officer", f"/items/{item['id']}/payload")
    assert ok.content == secret
    assert len(api.register(item_id=item["id"], action="read")) == 1


# -- derivations -------------------------------------------------------------------------------


def test_a_derivation_inherits_the_markings_and_records_provenance(corpus: Api) -> None:
    source_id = corpus.items["kor_missile"]
    source = corpus.get("officer", f"/items/{source_id}").json()
    response = corpus.post(
        "officer",
        f"/items/{source_id}/derivations",
        {
            "kind": "translation",
            "title": "訳: launch report",
            "payload": b64("日本語訳".encode()),
            "note": "for the minister",
        },
    )
    assert response.status_code == 201, response.text
    derived = response.json()
    assert derived["id"] != source_id
    assert derived["source_item_id"] == source_id
    assert derived["derivation"] == "translation"
    assert derived["created_by"] == corpus.users["officer"].id
    for key in ("originator", "policy", "classification", "releasable_to", "topics", "original"):
        assert derived["label"][key] == source["label"][key], key
    assert derived["label"]["compartments"] == source["label"]["compartments"]
    assert derived["markings"] == source["markings"]
    assert derived["level"] == source["level"]
    assert (derived["received_from"], derived["received_under"]) == ("KOR", "JPN-KOR-GSOMIA")
    payload = corpus.get("officer", f"/items/{derived['id']}/payload")
    assert payload.content == "日本語訳".encode()

    listed = corpus.get("officer", f"/items/{source_id}/derivations").json()
    assert [d["id"] for d in listed["items"]] == [derived["id"]]
    assert listed["total"] == 1
    [derive] = corpus.register(item_id=source_id, action="derive")
    assert derive.detail.startswith(f"translation {derived['id']}")
    [create] = corpus.register(item_id=derived["id"], action="create")
    assert create.user_id == corpus.users["officer"].id


def test_a_derivation_of_a_compartmented_item_stays_compartmented(corpus: Api) -> None:
    source_id = corpus.items["gokuhi_blue"]
    derived = corpus.post(
        "officer_blue",
        f"/items/{source_id}/derivations",
        {"kind": "extract", "title": "extract", "payload": b64(b"part")},
    ).json()
    assert derived["label"]["compartments"] == ["BLUE"]
    assert_problem(corpus.get("officer", f"/items/{derived['id']}"), 404, "item-not-found")
    assert corpus.get("auditor", f"/items/{source_id}/derivations").status_code == 404


def test_the_derivations_list_shows_only_what_the_user_may_see(corpus: Api) -> None:
    source_id = corpus.items["gokuhi_missile"]
    kept, raised = (
        corpus.post(
            "officer",
            f"/items/{source_id}/derivations",
            {"kind": "copy", "title": title, "payload": b64(b"c")},
        ).json()["id"]
        for title in ("kept", "raised")
    )
    up = corpus.post(
        "ra", f"/items/{raised}/reclassification", {"classification": "機密", "reason": "r"}
    )
    assert up.status_code == 200, up.text
    for who, expected in (("ra", {kept, raised}), ("officer", {kept})):
        listed = corpus.get(who, f"/items/{source_id}/derivations").json()
        assert {d["id"] for d in listed["items"]} == expected, who
        assert listed["total"] == len(expected), who


REFUSED_DERIVATIONS: list[tuple[str, dict[str, Any], int, str]] = [
    ("auditor", {}, 403, "forbidden"),
    ("admin", {}, 403, "forbidden"),
    ("officer", {"kind": "photocopy"}, 422, "invalid-request"),
    ("officer", {"payload": "not base64!"}, 400, "invalid-input"),
    ("officer", {"title": ""}, 400, "invalid-input"),
    ("officer", {"payload": b64(b"x" * 4097)}, 413, "payload-too-large"),
]


def test_a_refused_derivation_writes_nothing(corpus: Api) -> None:
    source = corpus.items["gokuhi_missile"]
    items, rows = corpus.item_count(), corpus.register_total()
    for who, body, status, code in REFUSED_DERIVATIONS:
        full = {"kind": "copy", "title": "copy", "payload": b64(b"copy"), **body}
        assert_problem(corpus.post(who, f"/items/{source}/derivations", full), status, code)
        assert (corpus.item_count(), corpus.register_total()) == (items, rows), (who, body)
    assert corpus.get("ra", f"/items/{source}/derivations").json()["total"] == 0


# -- reclassification --------------------------------------------------------------------------


def test_reclassification_keeps_history_and_moves_visibility(corpus: Api) -> None:
    item_id = corpus.items["gokuhi_missile"]
    before = corpus.get("ra", f"/items/{item_id}").json()
    corpus.clock.at = NOON + timedelta(hours=2)
    response = corpus.post(
        "ra",
        f"/items/{item_id}/reclassification",
        {"classification": "機密", "reason": "source is a human asset"},
    )
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["label"]["classification"] == "kimitsu"
    assert after["level"]["native"] == "機密"
    assert after["version"] == 2
    assert after["markings"]["native"].startswith("機密")
    for key in ("topics", "releasable_to", "compartments", "originator"):
        assert after["label"][key] == before["label"][key]

    history = corpus.get("ra", f"/items/{item_id}/history").json()
    assert history["total"] == 1
    [change] = history["items"]
    assert change["version"] == 2
    assert change["old_label"] == before["label"]
    assert change["new_label"] == after["label"]
    assert change["reason"] == "source is a human asset"
    assert change["changed_by"] == corpus.users["ra"].id
    assert instant(change["changed_at"]) == corpus.clock.at
    [row] = corpus.register(item_id=item_id, action="reclassify")
    assert row.user_id == corpus.users["ra"].id

    # Now above the 極秘 officer: gone from their get and their list.
    assert_problem(corpus.get("officer", f"/items/{item_id}"), 404, "item-not-found")
    rows, totals = corpus.all_pages("officer", "/items", limit=500)
    assert item_id not in {r["id"] for r in rows}
    assert totals == [len(VISIBLE["officer"]) - 1]

    # Down to 秘: now the 秘 officer sees it; a second change is a second history row.
    down = corpus.post(
        "ra", f"/items/{item_id}/reclassification", {"classification": "hi", "reason": "aged"}
    )
    assert down.json()["version"] == 3
    assert corpus.get("officer_hi", f"/items/{item_id}").status_code == 200
    history = corpus.get("officer_hi", f"/items/{item_id}/history").json()
    assert [h["version"] for h in history["items"]] == [2, 3]
    assert history["items"][1]["old_label"]["classification"] == "kimitsu"


REFUSED_RECLASSIFICATIONS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("officer", "gokuhi_missile", {}, 403, "forbidden"),  # not a release authority
    ("auditor", "gokuhi_missile", {}, 403, "forbidden"),
    ("admin", "gokuhi_missile", {}, 403, "forbidden"),
    ("ra", "kor_missile", {}, 403, "forbidden"),  # only the originator (KOR) reclassifies
    ("ra_low", "gokuhi_missile", {}, 403, "forbidden"),  # 機密 is above their clearance
    ("ra", "gokuhi_missile", {"classification": "極秘"}, 409, "conflict"),  # already
    ("ra", "gokuhi_missile", {"reason": "  "}, 400, "invalid-input"),
    ("ra", "gokuhi_missile", {"classification": "zettai-himitsu"}, 404, "unknown-level"),
    ("ra", "gokuhi_missile", {"extra": 1}, 422, "invalid-request"),
]


def test_a_refused_reclassification_changes_nothing(corpus: Api) -> None:
    before = {k: corpus.get("ra", f"/items/{i}").json() for k, i in corpus.items.items()}
    rows = corpus.register_total()
    for who, key, body, status, code in REFUSED_RECLASSIFICATIONS:
        item_id = corpus.items[key]
        full = {"classification": "機密", "reason": "upgrade", **body}
        response = corpus.post(who, f"/items/{item_id}/reclassification", full)
        assert_problem(response, status, code)
        assert corpus.register_total() == rows, (who, key, body)
    with corpus.node.store.read() as s:
        for key, item_id in corpus.items.items():
            item = Items(s).get(item_id, None)
            assert item is not None
            assert (item.label, item.version) == (before[key]["label"], 1), key
            assert Items(s).history(item_id) == [], key


# -- disposition -------------------------------------------------------------------------------


def test_return_is_recorded_and_final(corpus: Api) -> None:
    item_id = corpus.items["kor_missile"]
    corpus.clock.at = NOON + timedelta(days=1)
    response = corpus.post(
        "ra", f"/items/{item_id}/disposition", {"disposition": "returned", "note": "to ROK MND"}
    )
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["status"] == "returned"
    assert instant(item["disposed_at"]) == corpus.clock.at
    assert item["disposed_by"] == corpus.users["ra"].id
    assert item["disposition_note"] == "to ROK MND"
    [row] = corpus.register(item_id=item_id, action="returned")
    assert (row.user_id, row.detail) == (corpus.users["ra"].id, "to ROK MND")
    again = corpus.post(
        "ra", f"/items/{item_id}/disposition", {"disposition": "destroyed", "note": ""}
    )
    assert_problem(again, 409, "conflict")
    assert corpus.get("ra", f"/items/{item_id}").json()["status"] == "returned"


def test_a_destroyed_item_keeps_its_record_but_not_its_content(corpus: Api) -> None:
    item_id = corpus.items["gokuhi_missile"]
    response = corpus.post(
        "ra", f"/items/{item_id}/disposition", {"disposition": "destroyed", "note": "burned"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "destroyed"
    [row] = corpus.register(item_id=item_id, action="destroyed")
    assert row.detail == "burned"

    reads = len(corpus.register(action="read"))
    for who in ("officer", "ra"):
        body = assert_problem(corpus.get(who, f"/items/{item_id}/payload"), 409, "conflict")
        assert "content of" not in body["detail"]
    assert len(corpus.register(action="read")) == reads
    assert corpus.get("officer", f"/items/{item_id}").json()["status"] == "destroyed"
    derive = corpus.post(
        "officer",
        f"/items/{item_id}/derivations",
        {"kind": "copy", "title": "copy", "payload": b64(b"x")},
    )
    assert_problem(derive, 409, "conflict")
    reclassify = corpus.post(
        "ra", f"/items/{item_id}/reclassification", {"classification": "秘", "reason": "r"}
    )
    assert_problem(reclassify, 409, "conflict")
    again = corpus.post(
        "ra", f"/items/{item_id}/disposition", {"disposition": "destroyed", "note": ""}
    )
    assert_problem(again, 409, "conflict")


REFUSED_DISPOSITIONS: list[tuple[str, dict[str, Any], int, str]] = [
    ("officer", {"disposition": "destroyed"}, 403, "forbidden"),
    ("auditor", {"disposition": "destroyed"}, 403, "forbidden"),
    ("ra", {"disposition": "held"}, 400, "invalid-input"),
    ("ra", {"disposition": "burned"}, 422, "invalid-request"),
    ("ra", {}, 422, "invalid-request"),
]


def test_a_refused_disposition_changes_nothing(corpus: Api) -> None:
    item_id = corpus.items["hi_missile"]
    rows = corpus.register_total()
    for who, body, status, code in REFUSED_DISPOSITIONS:
        assert_problem(corpus.post(who, f"/items/{item_id}/disposition", body), status, code)
        assert corpus.register_total() == rows, (who, body)
    assert corpus.get("ra", f"/items/{item_id}").json()["status"] == "held"
    assert corpus.get("ra", f"/items/{item_id}/payload").content == corpus_payload("hi_missile")


# -- consents and dry-run decisions ------------------------------------------------------------


def test_consent_is_recorded_and_listed(corpus: Api) -> None:
    item_id = corpus.items["kor_missile"]
    response = corpus.post(
        "ra", f"/items/{item_id}/consents", {"originator": "KOR", "reference": "MND 2019-117"}
    )
    assert response.status_code == 201, response.text
    consent = response.json()
    assert consent["item_id"] == item_id
    assert consent["originator"] == "KOR"
    assert consent["reference"] == "MND 2019-117"
    assert consent["recorded_by"] == corpus.users["ra"].id
    assert instant(consent["recorded_at"]) == NOON
    listed = corpus.get("officer", f"/items/{item_id}/consents").json()
    assert listed["total"] == 1
    assert [c["id"] for c in listed["items"]] == [consent["id"]]
    [row] = corpus.register(item_id=item_id, action="consent")
    assert row.detail == "MND 2019-117"


REFUSED_CONSENTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("officer", {"originator": "KOR"}, 403, "forbidden"),
    ("auditor", {"originator": "KOR"}, 403, "forbidden"),
    ("ra", {"originator": "JPN"}, 400, "invalid-input"),  # not the originator
    ("ra", {"originator": "ZZZ"}, 404, "unknown-party"),
    ("ra", {}, 422, "invalid-request"),
]


def test_a_refused_consent_records_nothing(corpus: Api) -> None:
    item_id = corpus.items["kor_missile"]
    rows = corpus.register_total()
    for who, body, status, code in REFUSED_CONSENTS:
        assert_problem(corpus.post(who, f"/items/{item_id}/consents", body), status, code)
        assert corpus.register_total() == rows, (who, body)
    assert corpus.get("ra", f"/items/{item_id}/consents").json()["total"] == 0


def test_a_secret_item_may_go_to_korea_on_22_november_2019_as_gunsa_2(corpus: Api) -> None:
    response = corpus.post(
        "officer",
        "/decisions",
        {"item_id": corpus.items["gokuhi_missile"], "recipient": "KOR"},
    )
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["allowed"] is True
    assert instant(decision["at"]) == NOON
    assert decision["route"] == ["JPN", "KOR"]
    assert decision["instruments"] == ["JPN-KOR-GSOMIA"]
    assert decision["recipient_label"]["policy"] == "KOR"
    assert decision["recipient_label"]["classification"] == "gunsa-2"
    assert decision["recipient_label"]["originator"] == "JPN"
    assert all(r["passed"] for r in decision["reasons"])
    assert decision["registry_hash"] == corpus.node.registry.content_hash


def test_a_top_secret_item_is_refused_with_the_failed_rule(corpus: Api) -> None:
    decision = corpus.post(
        "ra", "/decisions", {"item_id": corpus.items["kimitsu_missile"], "recipient": "KOR"}
    ).json()
    assert decision["allowed"] is False
    assert decision["recipient_label"] is None
    failed = {r["rule"]: r for r in decision["reasons"] if not r["passed"]}
    assert "level-excluded" in failed
    assert failed["level-excluded"]["citation"] == "JPN-KOR-GSOMIA Art. 4(1)"
    assert "機密" in failed["level-excluded"]["detail"]


def test_a_decision_at_another_instant_and_for_a_person(corpus: Api) -> None:
    item_id = corpus.items["gokuhi_missile"]
    before = corpus.post(
        "officer", "/decisions", {"item_id": item_id, "recipient": "KOR", "at": "2016-01-01"}
    ).json()
    assert before["allowed"] is False
    assert instant(before["at"]) == datetime.fromisoformat("2016-01-01T00:00:00+09:00")
    assert "instrument-in-force" in {r["rule"] for r in before["reasons"] if not r["passed"]}

    def for_person(clearance: str, topics: list[str]) -> dict[str, Any]:
        body = {
            "item_id": item_id,
            "recipient": "KOR",
            "person": {"clearance": clearance, "need_to_know": topics},
        }
        response = corpus.post("officer", "/decisions", body)
        assert response.status_code == 200, response.text
        decision: dict[str, Any] = response.json()
        return decision

    assert for_person("군사II급비밀", ["dprk-missile"])["allowed"] is True
    low = for_person("gunsa-3", ["dprk-missile"])
    assert low["allowed"] is False
    assert "clearance" in {r["rule"] for r in low["reasons"] if not r["passed"]}
    no_ntk = for_person("gunsa-2", ["dprk-nuclear"])
    assert "need-to-know" in {r["rule"] for r in no_ntk["reasons"] if not r["passed"]}


def test_a_third_party_release_needs_the_originators_consent(corpus: Api) -> None:
    item_id = corpus.items["kor_missile"]

    def decide(**extra: Any) -> dict[str, Any]:
        body = {"item_id": item_id, "recipient": "USA", **extra}
        response = corpus.post("officer", "/decisions", body)
        assert response.status_code == 200, response.text
        decision: dict[str, Any] = response.json()
        return decision

    refused = decide()
    assert refused["allowed"] is False
    assert "third-party" in {r["rule"] for r in refused["reasons"] if not r["passed"]}
    assert decide(consents=["KOR"])["allowed"] is True  # a consent in hand, for the what-if
    assert decide()["allowed"] is False  # ...which was not recorded
    recorded = corpus.post("ra", f"/items/{item_id}/consents", {"originator": "KOR"})
    assert recorded.status_code == 201
    assert decide()["allowed"] is True


REFUSED_DECISIONS: list[tuple[str, dict[str, Any], int, str]] = [
    ("auditor", {}, 403, "forbidden"),
    ("admin", {}, 403, "forbidden"),
    ("officer", {"recipient": "ZZZ"}, 404, "unknown-party"),
    ("officer", {"at": "22 Nov"}, 400, "invalid-instant"),
    ("officer", {"person": {"clearance": "top"}}, 404, "unknown-level"),
    ("officer", {"item_id": None}, 422, "invalid-request"),
]


def test_refused_decision_requests(corpus: Api) -> None:
    for who, body, status, code in REFUSED_DECISIONS:
        full = {"item_id": corpus.items["gokuhi_missile"], "recipient": "KOR", **body}
        assert_problem(corpus.post(who, "/decisions", full), status, code)


# -- invisibility ------------------------------------------------------------------------------

# (user, item) pairs where the item exists but the user may not know it does.
HIDDEN = [
    ("officer_hi", "gokuhi_missile"),  # above clearance (秘 < 極秘)
    ("officer", "kimitsu_missile"),  # above clearance (極秘 < 機密)
    ("officer", "tokutei_maritime"),  # outside need-to-know
    ("officer_blue", "gokuhi_both"),  # need-to-know for one topic of two
    ("officer", "gokuhi_blue"),  # a compartment not read into
    ("officer_none", "hi_missile"),  # no clearance at all
    ("auditor", "gokuhi_nuclear"),  # an auditor outside need-to-know
    ("ra_low", "kimitsu_missile"),  # a release authority above clearance
    ("ra_low", "gokuhi_blue"),  # a release authority, compartment
]


def _requests(item_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/items/{item_id}", None),
        ("GET", f"/items/{item_id}/payload", None),
        ("GET", f"/items/{item_id}/derivations", None),
        ("POST", f"/items/{item_id}/derivations", {"kind": "copy", "title": "c", "payload": ""}),
        ("GET", f"/items/{item_id}/history", None),
        ("GET", f"/items/{item_id}/consents", None),
        ("POST", f"/items/{item_id}/consents", {"originator": "JPN"}),
        ("POST", f"/items/{item_id}/reclassification", {"classification": "秘", "reason": "r"}),
        ("POST", f"/items/{item_id}/disposition", {"disposition": "destroyed"}),
        ("POST", "/decisions", {"item_id": item_id, "recipient": "KOR"}),
    ]


def test_an_item_the_user_may_not_see_does_not_exist_for_them(corpus: Api) -> None:
    for who, key in HIDDEN:
        _assert_hidden(corpus, who, key)


def _assert_hidden(corpus: Api, who: str, key: str) -> None:
    item_id = corpus.items[key]
    unknown = str(uuid.uuid4())
    items, rows = corpus.item_count(), corpus.register_total()
    for (method, path, body), (_, unknown_path, unknown_body) in zip(
        _requests(item_id), _requests(unknown), strict=True
    ):
        hidden = corpus.client.request(
            method, "/api/v1" + path, headers=corpus.headers(who), json=body
        )
        absent = corpus.client.request(
            method, "/api/v1" + unknown_path, headers=corpus.headers(who), json=unknown_body
        )
        if absent.status_code == 403:  # the user's role does not allow this act at all
            assert_problem(hidden, 403, "forbidden")
            assert hidden.json() == absent.json()
            continue
        body_hidden = assert_problem(hidden, 404, "item-not-found")
        body_absent = assert_problem(absent, 404, "item-not-found")
        # The very same answer as for an id that never existed (but for the id itself).
        assert body_hidden["detail"].replace(item_id, "ID") == body_absent["detail"].replace(
            unknown, "ID"
        ), (who, key, path)
        assert set(hidden.headers) == set(absent.headers), (who, key, path)
        assert f"corpus {key}" not in hidden.text
    assert (corpus.item_count(), corpus.register_total()) == (items, rows)
    assert corpus.register(item_id=item_id, user=who) == [], (who, key)

    rows_seen, totals = corpus.all_pages(who, "/items", limit=500)
    assert item_id not in {r["id"] for r in rows_seen}
    assert totals == [len(VISIBLE[who])], (who, key)
    for topic in CORPUS[key].topics:
        rows_seen, totals = corpus.all_pages(who, "/items", {"topic": topic}, limit=500)
        assert item_id not in {r["id"] for r in rows_seen}
        assert totals == [len(rows_seen)]


def test_a_payload_read_by_someone_else_does_not_reveal_the_item(corpus: Api) -> None:
    item_id = corpus.items["kimitsu_missile"]
    assert corpus.get("ra", f"/items/{item_id}/payload").content == corpus_payload(
        "kimitsu_missile"
    )
    assert_problem(corpus.get("officer", f"/items/{item_id}/payload"), 404, "item-not-found")
