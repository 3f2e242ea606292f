"""The ``gsomia`` command: global options, command groups, and the one place errors are shown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from gsomia import __version__
from gsomia.cli.agreements import agreements_app
from gsomia.cli.audit import audit_app
from gsomia.cli.client import consents_app, share
from gsomia.cli.common import Settings
from gsomia.cli.decide import decide_command
from gsomia.cli.demo import demo
from gsomia.cli.export import export_app
from gsomia.cli.label import label_app
from gsomia.cli.link import link_app
from gsomia.cli.node import node_app, peers_app
from gsomia.cli.tour import tour
from gsomia.cli.users import users_app
from gsomia.core.errors import GsomiaError


class _ErrorsAsOneLine(TyperGroup):
    """Every GsomiaError becomes one line on stderr and its exit code, never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # Typer vendors its own click Context
        try:
            return super().invoke(ctx)
        except GsomiaError as e:
            sys.stderr.write(f"gsomia: error: {e.message} [{e.code}]\n")
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(
    name="gsomia",
    cls=_ErrorsAsOneLine,
    help="Agreements as time-aware law, and release decisions under them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"gsomia {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    registry: list[Path] = typer.Option(
        [],
        "--registry",
        help="A directory of registry files that adds to or overrides the shipped ones "
        "(repeatable; later ones win).",
        metavar="DIR",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    ctx.obj = Settings(registry_dirs=tuple(str(p) for p in registry))


app.add_typer(agreements_app, name="agreements")
app.add_typer(label_app, name="label")
app.add_typer(node_app, name="node")
app.add_typer(peers_app, name="peers")
app.add_typer(users_app, name="users")
app.add_typer(export_app, name="export")
app.add_typer(link_app, name="link")
app.add_typer(audit_app, name="audit")
app.command("decide")(decide_command)
app.command("demo")(demo)
app.command("share")(share)
app.add_typer(consents_app, name="consents")
app.command("tour")(tour)


def run() -> None:
    """Console-script entry point."""
    app()
