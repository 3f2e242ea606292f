"""The ceiling for bench/node.py: a bare FastAPI app that stores and returns the same items.

    .venv/bin/python bench/_ceiling_app.py --database URL --port P

No authentication, no label checks, no access register, no markings: one plain INSERT of the
title, the label JSON and the decoded payload, and one SELECT of the payload by id. It goes
through the same ``gsomia.store.engine`` (``make_engine`` and ``Store``) as the node, so the
database settings are identical (SQLite: WAL, synchronous=FULL, BEGIN IMMEDIATE behind one
writer lock; PostgreSQL: psycopg 3 with the same pool), and it is served the way
``gsomia node serve`` serves the node: ``uvicorn.run`` with one worker, plain ``def`` handlers in
FastAPI's thread pool, warning-level logs and no access log.
"""

from __future__ import annotations

import argparse
import base64
import uuid
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import JSON, Column, LargeBinary, MetaData, String, Table, insert, select

from gsomia.store.engine import Store

metadata = MetaData()
items = Table(
    "bench_ceiling_items",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("label", JSON, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)


class ItemIn(BaseModel):
    title: str
    label: dict[str, Any]
    payload: str  # base64, as the node takes it


def create_app(store: Store) -> FastAPI:
    metadata.create_all(store.engine, checkfirst=True)
    app = FastAPI(title="bench ceiling", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/items", status_code=201)
    def create_item(body: ItemIn) -> dict[str, str]:
        item_id = str(uuid.uuid4())
        payload = base64.b64decode(body.payload)
        with store.write() as s:
            s.execute(
                insert(items).values(
                    id=item_id, title=body.title, label=body.label, payload=payload
                )
            )
        return {"id": item_id}

    @app.get("/items/{item_id}/payload")
    def read_payload(item_id: str) -> Response:
        with store.read() as s:
            data = s.scalar(select(items.c.payload).where(items.c.id == item_id))
        if data is None:
            return Response(status_code=404)
        return Response(bytes(data), media_type="application/octet-stream")

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The bare ceiling app of bench/node.py.")
    parser.add_argument("--database", required=True, metavar="URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = create_app(Store.from_url(args.database))
    # As `gsomia node serve` runs the node: one process, uvicorn's defaults otherwise.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
