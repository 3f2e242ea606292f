"""Users, the access register, the node and its agreements, over the API."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gsomia.api.app import create_app
from gsomia.core.registry import Registry

from .conftest import (
    NOON,
    USERS,
    Api,
    Clock,
    TestClient,
    assert_problem,
    corpus_payload,
    node_database,
    open_jpn_node,
    seed_users,
)

# -- the node ----------------------------------------------------------------------------------


def test_health_needs_no_token(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "party": "JPN"}


def test_node_describes_itself_to_any_user(api: Api) -> None:
    for who in USERS:
        response = api.get(who, "/node")
        assert response.status_code == 200, who
        about = response.json()
        assert about["party"] == "JPN"
        assert about["scheme"] == "JPN"
        assert about["registry_hash"] == api.node.registry.content_hash
        assert datetime.fromisoformat(about["now"]) == NOON
        assert about["max_payload_bytes"] == 4096


def test_an_application_of_its_own_serves_its_node(
    engine_kind: str, tmp_path: Path, registry: Registry
) -> None:
    # The other tests share one application (see conftest.NodeSlot); this one builds its own.
    with node_database(engine_kind, tmp_path) as url:
        node = open_jpn_node(registry, url, Clock(NOON + timedelta(days=1)))
        try:
            _, tokens = seed_users(node)
            with TestClient(create_app(node), raise_server_exceptions=False) as client:
                headers = {"Authorization": f"Bearer {tokens['ra']}"}
                assert client.get("/health").json()["party"] == "JPN"
                assert_problem(client.get("/api/v1/node"), 401, "unauthenticated")
                about = client.get("/api/v1/node", headers=headers).json()
                assert datetime.fromisoformat(about["now"]) == NOON + timedelta(days=1)
                created = client.post(
                    "/api/v1/items",
                    headers=headers,
                    json={
                        "title": "t",
                        "label": {"classification": "hi", "topics": ["other"]},
                        "payload": "aGk=",
                    },
                )
                assert created.status_code == 201, created.text
                payload = client.get(
                    f"/api/v1/items/{created.json()['id']}/payload", headers=headers
                )
                assert payload.content == b"hi"
                assert client.get("/openapi.json").status_code == 200
        finally:
            node.store.dispose()


# -- agreements --------------------------------------------------------------------------------


def test_agreements_and_their_state_at_an_instant(api: Api) -> None:
    listed = api.get("officer", "/agreements").json()
    ids = {row["agreement"] for row in listed["items"]}
    assert ids == set(api.node.registry.instruments)
    assert listed["total"] == len(ids)
    by_id = {row["agreement"]: row for row in listed["items"]}
    assert by_id["JPN-KOR-GSOMIA"]["state"] == "in-force"
    assert datetime.fromisoformat(by_id["JPN-KOR-GSOMIA"]["at"]) == NOON

    before = api.get("auditor", "/agreements", {"at": "2016-01-01"}).json()
    states = {row["agreement"]: row["state"] for row in before["items"]}
    assert states["JPN-KOR-GSOMIA"] == "not-yet-in-force"

    one = api.get("admin", "/agreements/JPN-KOR-GSOMIA")
    assert one.status_code == 200
    assert one.json()["id"] == "JPN-KOR-GSOMIA"
    assert sorted(one.json()["parties"]) == ["JPN", "KOR"]

    status = api.get("ra", "/agreements/JPN-KOR-GSOMIA/status").json()
    assert status["state"] == "in-force"
    assert status["agreement"] == "JPN-KOR-GSOMIA"
    # A date alone is midnight in the instrument's zone (Asia/Seoul): in force from 23 Nov 2016.
    eve = api.get("ra", "/agreements/JPN-KOR-GSOMIA/status", {"at": "2016-11-22"}).json()
    day = api.get("ra", "/agreements/JPN-KOR-GSOMIA/status", {"at": "2016-11-23"}).json()
    assert (eve["state"], day["state"]) == ("not-yet-in-force", "in-force")


# -- users -------------------------------------------------------------------------------------


def test_each_user_sees_themselves(api: Api) -> None:
    for who, spec in USERS.items():
        me = api.get(who, "/users/me").json()
        assert me["id"] == api.users[who].id
        assert me["name"] == who
        assert me["roles"] == sorted(spec.roles)
        assert me["need_to_know"] == sorted(spec.need_to_know)
        assert me["compartments"] == sorted(spec.compartments)
        assert me["revoked_at"] is None
        expected = api.node.level(spec.clearance).id if spec.clearance else None
        assert me["clearance"] == expected


def test_an_admin_adds_a_user_whose_token_works(corpus: Api) -> None:
    response = corpus.post(
        "admin",
        "/users",
        {
            "name": "analyst",
            "roles": ["officer"],
            "clearance": "秘",
            "need_to_know": ["dprk-missile"],
            "compartments": ["blue"],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "token"}
    user = body["user"]
    assert (user["name"], user["roles"], user["clearance"]) == ("analyst", ["officer"], "hi")
    assert user["need_to_know"] == ["dprk-missile"]
    assert user["compartments"] == ["BLUE"]
    headers = {"Authorization": f"Bearer {body['token']}"}
    me = corpus.client.get("/api/v1/users/me", headers=headers)
    assert me.json()["id"] == user["id"]
    # The new officer sees what a 秘 officer with that need-to-know sees, and nothing more.
    listed = corpus.client.get("/api/v1/items", headers=headers).json()
    assert {corpus.key_of(i["id"]) for i in listed["items"]} == {"hi_missile"}
    [row] = corpus.register(action="user-add")
    assert row.user_id == corpus.users["admin"].id
    assert row.item_id is None
    assert "analyst" in row.detail


def test_only_an_admin_adds_users(api: Api) -> None:
    before = api.get("admin", "/users").json()["total"]
    for who in USERS:
        if who == "admin":
            continue
        response = api.post(who, "/users", {"name": f"by-{who}", "roles": ["admin"]})
        assert_problem(response, 403, "forbidden")
    assert api.get("admin", "/users").json()["total"] == before
    assert api.register(action="user-add") == []


def test_admins_and_auditors_list_users_a_page_at_a_time(api: Api) -> None:
    for who in ("admin", "auditor"):
        for limit in (1, 2, 4, 500):
            rows, totals = api.all_pages(who, "/users", limit=limit)
            names = [r["name"] for r in rows]
            assert sorted(names) == sorted(USERS), (who, limit)
            assert len(names) == len(set(names))
            assert set(totals) == {len(USERS)}
    for who in ("officer", "ra"):
        assert_problem(api.get(who, "/users"), 403, "forbidden")


def test_a_revoked_token_is_refused_everywhere(corpus: Api) -> None:
    officer = corpus.users["officer"]
    corpus.clock.at = NOON + timedelta(hours=3)
    response = corpus.delete("admin", f"/users/{officer.id}")
    assert response.status_code == 200, response.text
    revoked = response.json()
    assert revoked["id"] == officer.id
    assert datetime.fromisoformat(revoked["revoked_at"]) == corpus.clock.at
    for path in ("/users/me", "/items", f"/items/{corpus.items['hi_missile']}", "/node"):
        assert_problem(corpus.get("officer", path), 401, "unauthenticated")
    payload = corpus.get("officer", f"/items/{corpus.items['hi_missile']}/payload")
    assert_problem(payload, 401, "unauthenticated")
    assert corpus.register(user="officer") == []
    # The record stays, marked revoked; the act is in the register.
    users = {u["name"]: u for u in corpus.all_pages("auditor", "/users", limit=500)[0]}
    assert users["officer"]["revoked_at"] is not None
    [row] = corpus.register(action="user-revoke")
    assert (row.user_id, row.detail) == (corpus.users["admin"].id, "officer")
    # Others are unaffected.
    other = corpus.get("officer_hi", f"/items/{corpus.items['hi_missile']}/payload")
    assert other.content == corpus_payload("hi_missile")


def test_a_user_is_revoked_by_name_too(api: Api) -> None:
    response = api.delete("admin", "/users/auditor")
    assert response.status_code == 200
    assert response.json()["name"] == "auditor"
    assert_problem(api.get("auditor", "/users/me"), 401, "unauthenticated")


def test_the_last_admin_cannot_be_revoked(api: Api) -> None:
    admin = api.users["admin"]
    assert_problem(api.delete("admin", f"/users/{admin.id}"), 409, "conflict")
    assert api.get("admin", "/users/me").status_code == 200
    # With a second admin, the first may go; then the second is the last.
    added = api.post("admin", "/users", {"name": "admin2", "roles": ["admin", "auditor"]})
    assert added.status_code == 201
    api.tokens["admin2"] = added.json()["token"]
    assert api.delete("admin2", f"/users/{admin.id}").status_code == 200
    assert_problem(api.get("admin", "/users/me"), 401, "unauthenticated")
    assert_problem(api.delete("admin2", "/users/admin2"), 409, "conflict")
    assert api.get("admin2", "/users/me").json()["revoked_at"] is None
    assert len(api.register(action="user-revoke")) == 1


# -- the access register -----------------------------------------------------------------------


def _register(api: Api, who: str, **params: Any) -> list[dict[str, Any]]:
    rows, totals = api.all_pages(who, "/access-register", params, limit=3)
    assert set(totals) <= {len(rows)}
    return rows


def test_the_register_records_every_act_on_an_item_in_order(api: Api) -> None:
    steps: list[tuple[str, str]] = []

    def at(minutes: int) -> datetime:
        api.clock.at = NOON + timedelta(minutes=minutes)
        return api.clock.at

    at(1)
    item = api.create("ra", title="report", rel_to=["KOR"])
    item_id = item["id"]
    steps.append(("ra", "create"))
    at(2)
    assert api.get("officer", f"/items/{item_id}").status_code == 200
    steps.append(("officer", "view"))
    at(3)
    assert api.get("officer", f"/items/{item_id}/payload").status_code == 200
    steps.append(("officer", "read"))
    at(4)
    derived = api.post(
        "officer",
        f"/items/{item_id}/derivations",
        {"kind": "copy", "title": "copy", "payload": "eA=="},
    ).json()
    steps.append(("officer", "derive"))
    at(5)
    consent = api.post("ra", f"/items/{item_id}/consents", {"originator": "JPN"})
    assert consent.status_code == 201, consent.text
    steps.append(("ra", "consent"))
    at(6)
    reclassified = api.post(
        "ra", f"/items/{item_id}/reclassification", {"classification": "秘", "reason": "aged"}
    )
    assert reclassified.status_code == 200
    steps.append(("ra", "reclassify"))
    at(7)
    assert api.get("auditor", f"/items/{item_id}").status_code == 200
    steps.append(("auditor", "view"))
    at(8)
    destroyed = api.post("ra", f"/items/{item_id}/disposition", {"disposition": "destroyed"})
    assert destroyed.status_code == 200
    steps.append(("ra", "destroyed"))
    # Reads that were refused are not reads.
    assert api.get("officer", f"/items/{item_id}/payload").status_code == 409

    for who in ("auditor", "admin"):
        rows = _register(api, who, item_id=item_id)
        assert [(r["user_id"], r["action"]) for r in rows] == [
            (api.users[u].id, action) for u, action in steps
        ], who
        assert [datetime.fromisoformat(r["at"]) for r in rows] == [
            NOON + timedelta(minutes=m) for m in range(1, 9)
        ]
        ids = [r["id"] for r in rows]
        assert ids == sorted(ids)
    derived_rows = _register(api, "auditor", item_id=derived["id"])
    assert [r["action"] for r in derived_rows] == ["create"]


def test_the_register_filters_and_pages(corpus: Api) -> None:
    ids = corpus.items
    for key in ("hi_missile", "gokuhi_missile"):
        for who in ("officer", "officer_blue"):
            assert corpus.get(who, f"/items/{ids[key]}/payload").status_code == 200
    assert corpus.get("officer", f"/items/{ids['gokuhi_nuclear']}").status_code == 200

    everything = _register(corpus, "auditor")
    assert len(everything) == corpus.register_total()
    assert len({r["id"] for r in everything}) == len(everything)
    reads = _register(corpus, "admin", action="read")
    assert len(reads) == 4
    assert {r["action"] for r in reads} == {"read"}
    officer = corpus.users["officer"].id
    by_officer = _register(corpus, "auditor", user_id=officer)
    assert [r["action"] for r in by_officer] == ["read", "read", "view"]
    both = _register(corpus, "auditor", user_id=officer, item_id=ids["hi_missile"])
    assert [r["action"] for r in both] == ["read"]
    none = corpus.get("auditor", "/access-register", {"action": "no-such-act"}).json()
    assert none == {"items": [], "total": 0, "next_cursor": None}


def test_only_auditors_and_admins_read_the_register(api: Api) -> None:
    for who in USERS:
        response = api.get(who, "/access-register")
        if who in ("auditor", "admin"):
            assert response.status_code == 200, who
        else:
            assert_problem(response, 403, "forbidden")
