"""Commands that act on a running node through its API: ``gsomia share``, ``gsomia consents``.

They take the node's URL and a user's token (``--node``/``--token``, or ``GSOMIA_NODE`` and
``GSOMIA_TOKEN``); a problem+json answer becomes one line and exit code 2.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import typer
from rich.table import Table

from gsomia.cli.common import console, print_json
from gsomia.core.errors import InputError, NodeRefusedError, PeerUnreachableError

NODE = typer.Option(None, "--node", metavar="URL", help="The node's base URL ($GSOMIA_NODE).")
TOKEN = typer.Option(None, "--token", metavar="TOKEN", help="Your API token ($GSOMIA_TOKEN).")
JSON = typer.Option(False, "--json", help="Print one JSON document.")

consents_app = typer.Typer(help="Requests for this originator's consent: list, grant, refuse.")


def _call(method: str, path: str, node: str | None, token: str | None, body: Any = None) -> Any:
    url = node or os.environ.get("GSOMIA_NODE")
    secret = token or os.environ.get("GSOMIA_TOKEN")
    if not url or not secret:
        raise InputError("give --node URL and --token TOKEN (or GSOMIA_NODE and GSOMIA_TOKEN)")
    try:
        response = httpx.request(
            method,
            url.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
    except httpx.HTTPError as e:
        raise PeerUnreachableError(f"cannot reach {url}: {e}") from e
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = f"{problem.get('detail')} [{problem.get('code')}]"
        except ValueError:
            detail = response.text[:200]
        raise NodeRefusedError(f"{response.status_code}: {detail}")
    return response.json()


def share(
    items: list[str] = typer.Argument(..., metavar="ITEM...", help="The items' ids."),
    to: str = typer.Option(..., "--to", metavar="PARTY", help="The recipient party."),
    node: str | None = NODE,
    token: str | None = TOKEN,
    json: bool = JSON,
) -> None:
    """Share items with another party's node: decide, seal, send (or ask for consent).

    Several items go in one request, a result for each; an item that cannot be shared (not
    found, no longer held) is named and the others are shared all the same (exit code 2).
    """
    if len(items) == 1:
        result = _call("POST", f"/api/v1/items/{items[0]}/shares", node, token, {"recipient": to})
        if json:
            print_json(result)
            return
        _print_share(result)
        return
    answer = _call("POST", "/api/v1/shares", node, token, {"recipient": to, "items": items})
    if json:
        print_json(answer)
    else:
        for row in answer["results"]:
            if "share" in row:
                _print_share(row["share"])
    problems = [row for row in answer["results"] if "problem" in row]
    if problems:
        named = "; ".join(
            f"{row['item_id']}: {row['problem']['detail']} [{row['problem']['code']}]"
            for row in problems
        )
        raise NodeRefusedError(f"{len(problems)} of {len(items)} items not shared: {named}")


def _print_share(result: dict[str, Any]) -> None:
    route = " → ".join(result["route"])
    console.print(  # ids whole on one line, whatever the terminal's width
        f"share {result['id']} of item {result['item_id']}: {result['status']} ({route})",
        soft_wrap=True,
    )
    for reason in result.get("reasons") or ():
        console.print(f"  {reason}")


@consents_app.command("list")
def consents_list(
    status: str | None = typer.Option(None, "--status", help="pending, granted or refused"),
    node: str | None = NODE,
    token: str | None = TOKEN,
    json: bool = JSON,
) -> None:
    """Requests for consent this node has received (and asked)."""
    path = "/api/v1/consent-requests" + (f"?status={status}" if status else "")
    rows = _call("GET", path, node, token)["items"]
    if json:
        print_json(rows)
        return
    table = Table(title="Consent requests")
    for col in ("id", "direction", "requester", "to", "item", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"], r["direction"], r["requester"], r["recipient"], r["title"], r["status"]
        )
    console.print(table)


def _answer(verb: str, request_id: str, reason: str, node: str | None, token: str | None) -> None:
    result = _call(
        "POST", f"/api/v1/consent-requests/{request_id}/{verb}", node, token, {"reason": reason}
    )
    console.print(f"consent request {result['id']}: {result['status']}")


@consents_app.command("grant")
def consents_grant(
    request_id: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason", help="Recorded with the answer."),
    node: str | None = NODE,
    token: str | None = TOKEN,
) -> None:
    """Grant a request for this originator's consent (signed answer to the requester)."""
    _answer("grant", request_id, reason, node, token)


@consents_app.command("refuse")
def consents_refuse(
    request_id: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason", help="Recorded with the answer."),
    node: str | None = NODE,
    token: str | None = TOKEN,
) -> None:
    """Refuse a request for this originator's consent."""
    _answer("refuse", request_id, reason, node, token)
