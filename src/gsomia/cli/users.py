"""``gsomia users``: the node's users, administered on the node's own machine.

These commands open the node's database directly: they are how the first admin is created. Over
the network, admins use ``/api/v1/users``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from gsomia.cli.common import console, print_json
from gsomia.cli.node import DATA, JSON, open_from_dir
from gsomia.store.records import Role, User
from gsomia.store.repositories import Users

users_app = typer.Typer(help="The node's users: roles, clearance, need-to-know, tokens.")


@users_app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A unique user name."),
    data: Path = DATA,
    role: list[Role] = typer.Option(..., "--role", help="A role (repeatable)."),
    clearance: str | None = typer.Option(
        None, "--clearance", metavar="LEVEL", help="Clearance in the node's own scheme."
    ),
    need_to_know: list[str] = typer.Option(
        [], "--need-to-know", metavar="TOPIC", help="A topic (repeatable)."
    ),
    compartment: list[str] = typer.Option(
        [], "--compartment", metavar="C", help="A compartment the user is read into."
    ),
    json: bool = JSON,
) -> None:
    """Add a user and print their API token (shown once; only a hash is kept)."""
    node = open_from_dir(ctx, data)
    user, token = node.add_user(
        name=name,
        roles=role,
        clearance=clearance,
        need_to_know=need_to_know,
        compartments=compartment,
    )
    if json:
        print_json({"id": user.id, "name": user.name, "token": token})
        return
    console.print(f"added {user.name} ({', '.join(sorted(r.value for r in user.roles))})")
    console.print(f"token (shown once): {token}")


@users_app.command("list")
def list_(ctx: typer.Context, data: Path = DATA, json: bool = JSON) -> None:
    """Every user of the node, revoked ones included."""
    node = open_from_dir(ctx, data)
    rows: list[User] = []
    cursor = None
    with node.store.read() as s:
        while True:
            page = Users(s).list(limit=500, cursor=cursor)
            rows.extend(page.rows)
            cursor = page.next_cursor
            if cursor is None:
                break
    if json:
        print_json(
            [
                {
                    "id": u.id,
                    "name": u.name,
                    "roles": sorted(r.value for r in u.roles),
                    "clearance": u.clearance,
                    "need_to_know": sorted(u.need_to_know),
                    "revoked_at": u.revoked_at.isoformat() if u.revoked_at else None,
                }
                for u in rows
            ]
        )
        return
    table = Table(title=f"Users of the {node.party} node")
    for col in ("name", "roles", "clearance", "need-to-know", "status"):
        table.add_column(col)
    for u in rows:
        level = node.scheme.level(u.clearance).native if u.clearance else "—"
        table.add_row(
            u.name,
            ", ".join(sorted(r.value for r in u.roles)),
            level,
            ", ".join(sorted(u.need_to_know)) or "—",
            "revoked" if u.revoked_at else "active",
        )
    console.print(table)


@users_app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The user's name or id."),
    data: Path = DATA,
) -> None:
    """Revoke a user and every token they hold."""
    node = open_from_dir(ctx, data)
    user = node.revoke_user(name)
    console.print(f"revoked {user.name}")
