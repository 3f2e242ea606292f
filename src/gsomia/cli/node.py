"""``gsomia node``: create a national node's identity, and show the public keys peers pin."""

from __future__ import annotations

import gc
import os
import shlex
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from gsomia.cli.common import console, err_console, now, print_json, settings
from gsomia.core.errors import InputError
from gsomia.core.time import parse_instant, zone
from gsomia.node.config import (
    PASSPHRASE_ENV,
    NodeConfig,
    init_node,
    load_config,
    node_party,
)
from gsomia.node.federation import Federation
from gsomia.node.service import Node, open_node

node_app = typer.Typer(
    help="A national node: its identity (party, keys, configuration).", no_args_is_help=True
)


DATA = typer.Option(
    ..., "--data", metavar="DIR", file_okay=False, help="The node's directory.", show_default=False
)
JSON = typer.Option(False, "--json", help="Print one JSON document.")
PASSPHRASE_ENV_OPTION = typer.Option(
    None,
    "--passphrase-env",
    metavar="VAR",
    help=f"Encrypt the private keys with the passphrase in environment variable VAR. "
    f"Default: {PASSPHRASE_ENV}, if it is set.",
)
PASSPHRASE_PROMPT_OPTION = typer.Option(
    False, "--passphrase-prompt", help="Ask for the passphrase (typed twice, not echoed)."
)


def passphrase_from(
    env_var: str | None,
    prompt: bool,
    *,
    confirm: bool,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str]:
    """The key passphrase the user chose, and where it came from (for messages).

    ``--passphrase-env VAR`` reads VAR; ``--passphrase-prompt`` asks (twice if ``confirm``);
    with neither, ``GSOMIA_KEY_PASSPHRASE`` is used if set, else there is no passphrase. A named
    variable that is unset, or any passphrase that is empty, is an error rather than a silent
    fallback to unencrypted keys.
    """
    env = os.environ if environ is None else environ
    if env_var is not None and prompt:
        raise InputError("give --passphrase-env or --passphrase-prompt, not both")
    if prompt:
        value: str = typer.prompt(
            "Key passphrase", hide_input=True, confirmation_prompt=confirm, err=True
        )
        source = "the prompt"
    else:
        name = env_var if env_var is not None else PASSPHRASE_ENV
        found = env.get(name)
        if found is None:
            if env_var is not None:
                raise InputError(f"environment variable {name} is not set")
            return None, "none"
        value, source = found, f"${name}"
    if value == "":
        raise InputError(f"the passphrase from {source} is empty")
    return value, source


def peer_command(config: NodeConfig, url: str | None = None) -> str:
    """The command a peer runs to pin this node (``URL`` stands for an address not given)."""
    return shlex.join(
        [
            "gsomia",
            "peers",
            "add",
            config.party,
            url if url is not None else "URL",
            "--signing-key",
            config.signing_public_key.to_text(),
            "--encryption-key",
            config.encryption_public_key.to_text(),
        ]
    )


def _public(config: NodeConfig, url: str | None) -> dict[str, Any]:
    return {
        "party": config.party,
        "signing_key": {
            "public": config.signing_public_key.to_text(),
            "key_id": config.signing_key_id,
        },
        "encryption_key": {
            "public": config.encryption_public_key.to_text(),
            "key_id": config.encryption_key_id,
        },
        "peer_command": peer_command(config, url),
    }


def _say(text: str = "") -> None:
    # soft_wrap: keys and the peer command must stay on one line to be copied whole.
    console.print(text, soft_wrap=True)


def _show_public(config: NodeConfig, url: str | None) -> None:
    _say("Public keys:")
    _say(f"  signing     {config.signing_public_key}  (key id {config.signing_key_id})")
    _say(f"  encryption  {config.encryption_public_key}  (key id {config.encryption_key_id})")
    _say()
    _say("On each peer node, pin this node with:")
    _say(f"  {peer_command(config, url)}")


@node_app.command("init")
def init_cmd(
    ctx: typer.Context,
    party: str = typer.Option(..., "--party", help="Party code of the nation this node serves."),
    data: Path = DATA,
    passphrase_env: str | None = PASSPHRASE_ENV_OPTION,
    passphrase_prompt: bool = PASSPHRASE_PROMPT_OPTION,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the node's database. Default: sqlite:///DIR/node.db.",
    ),
    json: bool = JSON,
) -> None:
    """Create a node: an Ed25519 signing key, an X25519 encryption key and node.toml in DIR."""
    registry = settings(ctx).registry
    # Checked before a passphrase is asked for: a typo in --party should not cost a prompt.
    node_party(registry, party)
    passphrase, source = passphrase_from(passphrase_env, passphrase_prompt, confirm=True)
    config = init_node(data, party, registry, passphrase, now=now(), database_url=database_url)
    encrypted = passphrase is not None
    if json:
        print_json(
            {
                **_public(config, None),
                "data_dir": str(config.data_dir),
                "config_file": str(config.config_file),
                "signing_key_file": str(config.signing_key_file),
                "encryption_key_file": str(config.encryption_key_file),
                "keys_encrypted": encrypted,
                "database_url": config.database_url,
                "max_payload_bytes": config.max_payload_bytes,
                "created_at": config.created_at,
            }
        )
    else:
        protection = f"encrypted, passphrase from {source}" if encrypted else "NOT encrypted"
        _say(f"Created node {config.party} in {config.data_dir}")
        _say(f"  config          {config.config_file}")
        _say(f"  signing key     {config.signing_key_file}  (mode 0600, {protection})")
        _say(f"  encryption key  {config.encryption_key_file}  (mode 0600, {protection})")
        _say(f"  database        {config.database_url}  (not created yet)")
        _say()
        _show_public(config, None)
    if not encrypted:
        err_console.print(
            "gsomia: warning: the private keys are stored unencrypted; use --passphrase-env "
            f"or --passphrase-prompt (or set {PASSPHRASE_ENV}) to protect them",
            soft_wrap=True,
        )


@node_app.command("keys")
def keys_cmd(
    data: Path = DATA,
    url: str | None = typer.Option(
        None, "--url", help="This node's base URL, to fill into the peer command."
    ),
    json: bool = JSON,
) -> None:
    """Print the node's public keys, and the command a peer runs to pin them."""
    config = load_config(data)
    if json:
        print_json({**_public(config, url), "data_dir": str(config.data_dir)})
        return
    _say(f"Node {config.party} in {config.data_dir}")
    _show_public(config, url)


def open_from_dir(
    ctx: typer.Context,
    data: Path,
    database: str | None = None,
    clock: str | None = None,
    without: list[str] | None = None,
) -> Node:
    """The node in ``data``: its config, its (migrated) database, its clock and its law."""
    config = load_config(data)
    registry = settings(ctx).registry
    if without:
        registry = registry.what_if(without=without)
    fixed: datetime | None = None
    if clock is not None:
        fixed = parse_instant(clock, zone(registry.party(config.party).timezone))
    return open_node(
        party=config.party,
        registry=registry,
        database_url=database or config.database_url,
        clock=(lambda: fixed) if fixed is not None else None,
        max_payload_bytes=config.max_payload_bytes,
    )


@node_app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    data: Path = DATA,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8400, "--port", min=0, max=65535, help="Port to listen on."),
    database: str | None = typer.Option(
        None,
        "--database",
        metavar="URL",
        help="Database URL (default: the node's SQLite file; or postgresql+psycopg://...).",
    ),
    clock: str | None = typer.Option(
        None,
        "--clock",
        metavar="INSTANT",
        help="Fix the node's notion of now (simulation); without an offset, in the party's zone.",
    ),
    without: list[str] = typer.Option(
        [],
        "--without",
        metavar="EVENT_ID",
        help="Simulation: serve under a what-if history without this recorded event.",
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level."),
    link_under: list[str] = typer.Option(
        [],
        "--link-under",
        metavar="INSTRUMENT",
        help="Route missile-warning tracks under this instrument (repeat, in order of "
        "preference; default: every link instrument naming this party).",
    ),
    tak_port: int | None = typer.Option(
        None, "--tak-port", min=0, max=65535, help="Serve TAK clients (CoT over TCP) here."
    ),
    tak_user: str | None = typer.Option(
        None, "--tak-user", help="The user TAK clients act as (their clearance filters)."
    ),
    tak_classification: str | None = typer.Option(
        None, "--tak-classification", help="Level of the tracks TAK clients feed."
    ),
) -> None:
    """Serve the node's HTTP API (uvicorn) until interrupted."""
    import uvicorn

    from gsomia.api.app import create_app
    from gsomia.node.link import LinkOptions

    node = open_from_dir(ctx, data, database, clock, without)
    config = load_config(data)
    federation = Federation.keyed_by(node, config, os.environ.get(PASSPHRASE_ENV) or None)
    err_console.print(
        f"gsomia node {node.party} serving http://{host}:{port} "
        f"(registry {node.registry.content_hash[:12]}, "
        f"clock {'fixed at ' + node.now().isoformat() if clock else 'real'}"
        + (f", what-if without {', '.join(without)}" if without else "")
        + ")"
    )
    under = tuple(node.registry.instrument(i).id for i in link_under)
    if tak_port is not None and not (tak_user and tak_classification):
        raise InputError("--tak-port needs --tak-user and --tak-classification")
    if tak_classification is not None:
        node.level(tak_classification)  # an unknown level is one clear error, before serving
    options = LinkOptions(
        under=under,
        tak_port=tak_port,
        tak_user=tak_user,
        tak_classification=tak_classification,
    )
    app = create_app(node, federation, link=options)
    app.state.witness_interval = config.witness_interval
    # A serving node keeps many live objects (the link's windows and streams): full garbage
    # collections are what stalls a stream, so what exists at start-up is frozen out of them
    # and young collections run less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    # Open streams (SSE consoles, peers' WebSockets) never end by themselves: on SIGTERM they
    # get a moment, then the app shuts down (the link writes what it accepted).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=3,
    )


peers_app = typer.Typer(help="The node's peers: partner nodes with their keys pinned.")


@peers_app.command("add")
def peers_add(
    ctx: typer.Context,
    party: str = typer.Argument(..., help="The peer's party code."),
    url: str = typer.Argument(..., help="The peer's base URL."),
    data: Path = DATA,
    signing_key: str = typer.Option(..., "--signing-key", help="ed25519:... from its node keys"),
    encryption_key: str = typer.Option(
        ..., "--encryption-key", help="x25519:... from its node keys"
    ),
) -> None:
    """Pin a peer's keys (as printed by ``gsomia node keys`` on the peer)."""
    node = open_from_dir(ctx, data)
    federation = Federation.keyed_by(
        node, load_config(data), os.environ.get(PASSPHRASE_ENV) or None
    )
    peer = federation.add_peer(
        party, url, signing_key=signing_key, encryption_key=encryption_key, actor=None
    )
    console.print(f"peer {peer.party} at {peer.url} pinned")


@peers_app.command("list")
def peers_list(ctx: typer.Context, data: Path = DATA, json: bool = JSON) -> None:
    """The node's peers."""
    from gsomia.store.federation import Peers

    node = open_from_dir(ctx, data)
    with node.store.read() as s:
        peers = Peers(s).list()
    if json:
        print_json(
            [
                {
                    "party": p.party,
                    "url": p.url,
                    "signing_key": p.signing_key,
                    "encryption_key": p.encryption_key,
                    "removed": p.removed_at is not None,
                }
                for p in peers
            ]
        )
        return
    for p in peers:
        state = "removed" if p.removed_at else "active"
        console.print(f"{p.party}  {p.url}  {p.signing_key}  {state}")


@peers_app.command("remove")
def peers_remove(ctx: typer.Context, party: str = typer.Argument(...), data: Path = DATA) -> None:
    """Unpin a peer: nothing more is sent to it or accepted from it."""
    from gsomia.store.federation import Peers

    node = open_from_dir(ctx, data)
    with node.store.write() as s:
        Peers(s).remove(party.upper(), node.now())
    console.print(f"peer {party.upper()} removed")
