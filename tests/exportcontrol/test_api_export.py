"""``/api/v1/export/``: a FastAPI app with only the export router, errors as problem+json."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from gsomia.api.export import MAX_BATCH, export_control, router
from gsomia.core.errors import GsomiaError
from gsomia.exportcontrol.service import ExportControl

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(router)

    # The node's app renders every GsomiaError this way (gsomia.api.app); the same here.
    @app.exception_handler(GsomiaError)
    async def _problem(_request: Request, e: GsomiaError) -> JSONResponse:
        return JSONResponse(
            e.to_problem(), status_code=e.status, media_type="application/problem+json"
        )

    with TestClient(app) as c:
        yield c


def test_check(client: TestClient) -> None:
    r = client.get(
        "/api/v1/export/check",
        params={"item": "hydrogen-fluoride", "to": "KOR", "on": "2023-03-22"},
    )
    assert r.status_code == 200
    data = r.json()
    assert data["license_required"] is True and data["license"] == "individual"
    assert data["group"] == "B"
    r = client.get(
        "/api/v1/export/check",
        params={"item": "hydrogen-fluoride", "to": "KOR", "on": "2023-03-23"},
    )
    assert r.json()["license"] == "special-general-bulk"


def test_check_with_end_user_and_end_use(client: TestClient) -> None:
    params = {
        "item": "steel-bolts",
        "to": "CHN",
        "on": "2024-05-01",
        "end_user": "China Academy of Engineering Physics",
        "end_use": "civil",
    }
    data = client.get("/api/v1/export/check", params=params).json()
    assert data["license_required"] is True
    assert data["screening"]["hits"][0]["no"] == "34"


def test_group(client: TestClient) -> None:
    data = client.get("/api/v1/export/group/KOR", params={"on": "2023-07-20"}).json()
    assert data["group"] == "B" and data["country"]["code"] == "KOR"
    data = client.get("/api/v1/export/group/South Korea", params={"on": "2023-07-21"}).json()
    assert data["group"] == "A"


def test_items(client: TestClient) -> None:
    data = client.get("/api/v1/export/items").json()
    assert data["total"] == len(data["items"]) >= 10


def test_screen_one_and_many(client: TestClient) -> None:
    one = client.get("/api/v1/export/screen", params={"name": "단천상업은행"}).json()
    assert one["status"] == "match" and one["hits"][0]["no"] == "3"
    many = client.post(
        "/api/v1/export/screen", json={"names": ["Tanchon Bank", "Toshiba Corporation"]}
    ).json()
    assert [r["status"] for r in many["items"]] == ["match", "clear"]


CHECK = "/api/v1/export/check"


def params(item: str = "resist", to: str = "KOR", on: str = "2020-01-01") -> dict[str, str]:
    return {"item": item, "to": to, "on": on}


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        (CHECK, params(item="unobtainium"), 404, "unknown-export-item"),
        (CHECK, params(to="XXX"), 404, "unknown-country"),
        (CHECK, params(to="Korea"), 400, "ambiguous-country"),
        (CHECK, params(on="2020-02-30"), 400, "invalid-export-date"),
        ("/api/v1/export/group/KOR", {"on": "2018-06-01"}, 400, "export-date-out-of-range"),
    ],
)
def test_errors_are_problem_json(
    client: TestClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == code and body["type"].endswith(code) and body["detail"]


def test_request_validation(client: TestClient) -> None:
    params = {"item": "resist", "to": "KOR", "on": "2020-01-01", "end_use": "peaceful"}
    r = client.get("/api/v1/export/check", params=params)
    assert r.status_code == 422
    r = client.post("/api/v1/export/screen", json={"names": ["x"] * (MAX_BATCH + 1)})
    assert r.status_code == 422


def test_the_service_can_be_overridden_with_another_list() -> None:
    app = FastAPI()
    app.include_router(router)
    own = ExportControl.load([FIXTURES / "csl-sample.csv"])
    app.dependency_overrides[export_control] = lambda: own
    with TestClient(app) as c:
        data = c.get("/api/v1/export/screen", params={"name": "Rosoboron Export"}).json()
    assert data["sample_list"] is False and data["hits"][0]["list"] == "csl-sample"
