"""The ceiling for bench/exchange.py: a bare HTTP POST from one server to another.

    .venv/bin/python bench/_bare_post.py --port P                                   # a sink
    .venv/bin/python bench/_bare_post.py --port P --forward URL --bytes N --reply-bytes M

Two of these run side by side, each in its own process on 127.0.0.1, served the way
``gsomia node serve`` serves a node (``uvicorn.run``, one worker, warning-level logs, no access
log). They stand in for "the same two servers": the nodes expose no raw relay, so the ceiling is
the same host, the same uvicorn and FastAPI, the same loopback, the same bytes on the wire between
the servers, and nothing else.

- ``POST /relay`` (on the forwarding server, A): sends a pre-generated body of ``--bytes`` bytes
  (the size of a sealed share envelope) to ``URL/sink`` with one keep-alive ``httpx.Client``, from
  a plain ``def`` handler in FastAPI's thread pool (the node's delivery worker also sends with a
  synchronous httpx client), and answers 200 with the sink's reply when the sink answered 200.
- ``POST /sink`` (on the sink, B): an ``async def`` handler, as the node's envelope intake is,
  that reads the whole body and answers 200 with ``--reply-bytes`` bytes of JSON (the size of a
  signed receipt). No signature, no crypto, no database, no checks.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response


def reply_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least the bare object)."""
    base = {"status": "accepted", "pad": ""}
    overhead = len(json.dumps(base, separators=(",", ":")))
    base["pad"] = "x" * max(0, size - overhead)
    return json.dumps(base, separators=(",", ":")).encode()


def create_app(forward: str | None, body_bytes: int, reply_bytes: int) -> FastAPI:
    app = FastAPI(title="bench bare post", openapi_url=None, docs_url=None, redoc_url=None)
    reply = reply_body(reply_bytes)
    # Random bytes, hex-encoded: incompressible, as ciphertext is; built once, before any request.
    body = os.urandom(body_bytes // 2 + 1).hex().encode()[:body_bytes]
    client = httpx.Client(timeout=30.0) if forward else None

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/sink")
    async def sink(request: Request) -> Response:
        data = await request.body()
        if not data:
            return Response(status_code=400)
        return Response(reply, media_type="application/json")

    @app.post("/relay")
    def relay() -> Response:
        if client is None:
            return Response(status_code=404)
        answer = client.post(
            f"{forward}/sink", content=body, headers={"content-type": "application/json"}
        )
        if answer.status_code != 200:
            return Response(status_code=502)
        return Response(answer.content, media_type="application/json")

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The bare ceiling server of bench/exchange.py.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--forward", metavar="URL", help="the sink that /relay posts to")
    parser.add_argument("--bytes", type=int, default=2048, help="body size /relay sends")
    parser.add_argument("--reply-bytes", type=int, default=512, help="body size /sink answers")
    args = parser.parse_args(argv)
    app = create_app(args.forward, args.bytes, args.reply_bytes)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
