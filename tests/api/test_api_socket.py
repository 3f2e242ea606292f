"""The node as an operator runs it: ``gsomia node init``, ``gsomia users add``, ``gsomia node
serve`` in a process of its own, and HTTP over a real socket."""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from .conftest import (
    DATABASE_URL,
    NOON,
    PROBLEM,
    add_user_cli,
    b64,
    gsomia,
    postgresql_schema_url,
    serve,
)

pytestmark = pytest.mark.slow


def test_a_served_node_over_a_socket(engine_kind: str, tmp_path: Path) -> None:
    data = tmp_path / "jpn"
    with ExitStack() as stack:
        database: list[str] = []
        if engine_kind == "postgresql":
            url, _schema = stack.enter_context(postgresql_schema_url(DATABASE_URL, "gsomia_api"))
            database = [url]
        init = gsomia(
            "node",
            "init",
            "--party",
            "JPN",
            "--data",
            str(data),
            *(["--database-url", *database] if database else []),
            "--json",
        )
        assert json.loads(init.stdout)["party"] == "JPN"
        officer = add_user_cli(
            data, "officer", "--role", "officer", "--clearance", "極秘",
            "--need-to-know", "dprk-missile",
        )  # fmt: skip
        auditor = add_user_cli(
            data, "auditor", "--role", "auditor", "--clearance", "秘",
            "--need-to-know", "dprk-missile",
        )  # fmt: skip
        # The server is stopped (ExitStack, last in first out) before any schema is dropped.
        served = stack.enter_context(serve(data, *(["--database", *database] if database else [])))
        as_officer = {"Authorization": f"Bearer {officer}"}
        as_auditor = {"Authorization": f"Bearer {auditor}"}
        with httpx.Client(base_url=f"{served.base_url}/api/v1", timeout=60) as client:
            about = client.get("/node", headers=as_officer).json()
            assert about["party"] == "JPN"
            assert datetime.fromisoformat(about["now"]) == NOON  # --clock

            refused = client.get("/items")
            assert refused.status_code == 401
            assert refused.headers["content-type"].startswith(PROBLEM)
            assert refused.headers["www-authenticate"].lower().startswith("bearer")
            assert refused.json()["code"] == "unauthenticated"

            content = bytes(range(256)) + "弾道ミサイル発射".encode()
            created = client.post(
                "/items",
                headers=as_officer,
                json={
                    "title": "launch report",
                    "label": {
                        "classification": "極秘",
                        "topics": ["dprk-missile"],
                        "rel_to": ["KOR"],
                    },
                    "payload": b64(content),
                },
            )
            assert created.status_code == 201, created.text
            item = created.json()
            assert item["level"]["native"] == "極秘"
            assert item["markings"]["native"] == "極秘//REL TO JPN, KOR"
            assert item["sha256"] == hashlib.sha256(content).hexdigest()

            listed = client.get("/items", headers=as_officer, params={"limit": 10}).json()
            assert [i["id"] for i in listed["items"]] == [item["id"]]
            assert (listed["total"], listed["next_cursor"]) == (1, None)
            # The 秘 auditor may not know it exists.
            assert client.get("/items", headers=as_auditor).json()["total"] == 0
            hidden = client.get(f"/items/{item['id']}", headers=as_auditor)
            assert (hidden.status_code, hidden.json()["code"]) == (404, "item-not-found")

            got = client.get(f"/items/{item['id']}", headers=as_officer)
            assert got.status_code == 200
            assert got.json()["label"] == item["label"]

            payload = client.get(f"/items/{item['id']}/payload", headers=as_officer)
            assert payload.status_code == 200
            assert payload.content == content
            assert payload.headers["content-type"] == "application/octet-stream"
            assert payload.headers["x-gsomia-sha256"] == item["sha256"]
            assert payload.headers["x-gsomia-item"] == item["id"]

            decision = client.post(
                "/decisions", headers=as_officer, json={"item_id": item["id"], "recipient": "KOR"}
            ).json()
            assert decision["allowed"] is True
            assert decision["route"] == ["JPN", "KOR"]
            assert decision["recipient_label"]["classification"] == "gunsa-2"

            register = client.get(
                "/access-register", headers=as_auditor, params={"item_id": item["id"]}
            ).json()
            assert [r["action"] for r in register["items"]] == [
                "create",
                "view",
                "read",
                "decision",
            ]  # the dry run is evidence too
        assert served.process.poll() is None, served.log_text()
