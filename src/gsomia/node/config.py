"""A national node's identity: its party, its directory, its keys, its configuration file.

A node directory holds ``node.toml`` and the two private key files it names::

    DIR/node.toml             party, creation time, limits, key files and pinned public keys
    DIR/signing-key.pem       Ed25519, PKCS#8 PEM, mode 0600, encrypted if a passphrase was given
    DIR/encryption-key.pem    X25519, likewise

``node.toml`` is the last file :func:`init_node` writes, so its presence means the node was
initialised completely. The database (by default ``sqlite:///DIR/node.db``) is created by the
store, not here. Nothing in this module reads the environment or the clock: the passphrase and
the instant are passed in by the edge.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from gsomia.core.errors import InputError, InvalidInstantError, NodeConfigError
from gsomia.core.parties import Party
from gsomia.core.registry import Registry
from gsomia.crypto.keys import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    InvalidPublicKeyError,
    KeyFileError,
    KeyPassphraseError,
    SigningPrivateKey,
    SigningPublicKey,
    read_encryption_key,
    read_signing_key,
    write_private_key,
)

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "ENCRYPTION_KEY_FILE",
    "SIGNING_KEY_FILE",
    "NodeConfig",
    "NodeConfigError",
    "init_node",
    "load_config",
    "load_encryption_key",
    "load_signing_key",
    "node_party",
]

CONFIG_FILE = "node.toml"
SIGNING_KEY_FILE = "signing-key.pem"
ENCRYPTION_KEY_FILE = "encryption-key.pem"
DATABASE_FILE = "node.db"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_WITNESS_INTERVAL = 60.0  # seconds between witnessing runs ([ledger] witness_interval)
PASSPHRASE_ENV = "GSOMIA_KEY_PASSPHRASE"  # read by the CLI only, never by the library
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node knows about itself before it opens its database.

    Paths are absolute; key files named relatively in ``node.toml`` are relative to ``data_dir``.
    """

    party: str
    data_dir: Path
    database_url: str
    signing_key_file: Path
    encryption_key_file: Path
    signing_public_key: SigningPublicKey
    encryption_public_key: EncryptionPublicKey
    created_at: datetime
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    witness_interval: float = DEFAULT_WITNESS_INTERVAL  # seconds; 0: peers are not witnessed

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def signing_key_id(self) -> str:
        return self.signing_public_key.key_id

    @property
    def encryption_key_id(self) -> str:
        return self.encryption_public_key.key_id


def default_database_url(data_dir: Path) -> str:
    """``sqlite:///`` followed by the absolute path: four slashes in all, as SQLAlchemy wants."""
    return f"sqlite:///{(data_dir / DATABASE_FILE).as_posix()}"


# -- the file boundary: pydantic models of node.toml ------------------------------------------


def _public_key_check(parse: Callable[[str], object]) -> Callable[[str], str]:
    def check(text: str) -> str:
        try:
            parse(text)
        except InvalidPublicKeyError as e:
            raise ValueError(e.message) from None
        return text

    return check


class _Section(BaseModel):
    # strict: a TOML true is not 1, and a quoted date is not a date.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _NodeSection(_Section):
    party: str = Field(pattern=r"^[A-Z]{3,4}$")
    created_at: AwareDatetime
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, gt=0)


class _DatabaseSection(_Section):
    url: str | None = Field(default=None, min_length=1)


class _LedgerSection(_Section):
    # seconds between the node's witnessing runs of its peers' ledgers; 0 disables them
    witness_interval: float = Field(default=DEFAULT_WITNESS_INTERVAL, ge=0)


class _KeysSection(_Section):
    signing_file: str = Field(min_length=1)
    signing_public: Annotated[str, AfterValidator(_public_key_check(SigningPublicKey.from_text))]
    encryption_file: str = Field(min_length=1)
    encryption_public: Annotated[
        str, AfterValidator(_public_key_check(EncryptionPublicKey.from_text))
    ]


class _NodeFile(_Section):
    format: Literal[1]
    node: _NodeSection
    database: _DatabaseSection = _DatabaseSection()
    keys: _KeysSection
    ledger: _LedgerSection = _LedgerSection()


def _validation_message(path: Path, e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(file)"
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{path}: {where}: {msg}{more}"


# -- writing node.toml by hand: a handful of scalars needs no TOML writer dependency ----------

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_TOML_ESCAPES["\r"] = "\\r"


def _toml_string(value: str) -> str:
    """A TOML basic string; control characters (which TOML forbids raw) are escaped."""
    out = []
    for ch in value:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _render(
    *,
    party: str,
    created_at: datetime,
    max_payload_bytes: int,
    database_url: str | None,
    signing: SigningPublicKey,
    encryption: EncryptionPublicKey,
) -> str:
    database = (
        f"url = {_toml_string(database_url)}"
        if database_url is not None
        else f"# url = ...  (unset: sqlite:///<this directory>/{DATABASE_FILE})"
    )
    return f"""\
# A gsomia national node, written by `gsomia node init`.
# Key files are relative to this directory unless absolute. The public keys are pinned here:
# loading a private key that does not match them is refused.
format = {FORMAT_VERSION}

[node]
party = {_toml_string(party)}
created_at = {created_at.isoformat()}
max_payload_bytes = {max_payload_bytes}

[database]
{database}

[keys]
signing_file = {_toml_string(SIGNING_KEY_FILE)}
signing_public = {_toml_string(signing.to_text())}  # key id {signing.key_id}
encryption_file = {_toml_string(ENCRYPTION_KEY_FILE)}
encryption_public = {_toml_string(encryption.to_text())}  # key id {encryption.key_id}
"""


def _write_config_file(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, and never over an existing file.

    The text goes to a temporary file first, is synced, then hard-linked into place: the link
    fails if ``path`` exists, and a crash leaves either no node.toml or a complete one.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        # 0644: node.toml holds public keys and file names, nothing secret.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        raise NodeConfigError(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as e:
        raise NodeConfigError(f"{path}: cannot write: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _sync_dir(directory: Path) -> None:
    """Make the new directory entries durable (POSIX; elsewhere a no-op)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the API ----------------------------------------------------------------------------------


def node_party(registry: Registry, party: str) -> Party:
    """The registry's party ``party``, if a node can serve it: it must have a scheme to mark with.

    Raises :class:`UnknownPartyError` (with suggestions) or :class:`InputError`.
    """
    found = registry.party(party)
    if found.scheme is None or found.scheme not in registry.schemes:
        raise InputError(
            f"party {found.code} has no classification scheme in the registry; "
            "a node must be able to mark what it holds"
        )
    return found


def init_node(
    data_dir: Path | str,
    party: str,
    registry: Registry,
    passphrase: str | None = None,
    *,
    now: datetime,
    database_url: str | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> NodeConfig:
    """Create a node for ``party`` in ``data_dir``: two key pairs and ``node.toml``.

    ``data_dir`` is created (mode 0700) if missing; one that already holds ``node.toml`` is
    refused. The party must be in ``registry`` with a classification scheme there, since a node
    must be able to mark what it holds. Private keys are encrypted when ``passphrase`` is given.
    On failure, every file and directory this call created is removed again.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInstantError(f"node creation time {now.isoformat()} has no UTC offset")
    found = node_party(registry, party)
    if max_payload_bytes <= 0:
        raise NodeConfigError(f"max_payload_bytes: must be positive, not {max_payload_bytes}")
    if database_url is not None and not database_url.strip():
        raise NodeConfigError("database url: must not be empty")
    if passphrase == "":
        # Checked before anything exists on disk; write_private_key would refuse it too.
        raise KeyPassphraseError("the passphrase is empty")

    directory = Path(data_dir).absolute()
    config_path = directory / CONFIG_FILE
    if directory.exists() and not directory.is_dir():
        raise NodeConfigError(f"{directory}: exists and is not a directory")
    if config_path.exists():
        raise NodeConfigError(f"{config_path}: already exists; {directory} is already a node")

    created: list[Path] = []
    made_dir = not directory.exists()
    try:
        if made_dir:
            try:
                directory.mkdir(mode=0o700, parents=True)
            except OSError as e:
                raise NodeConfigError(f"{directory}: cannot create: {e.strerror or e}") from e
        directory = directory.resolve()
        config_path = directory / CONFIG_FILE

        signing = SigningPrivateKey.generate()
        encryption = EncryptionPrivateKey.generate()
        for name, key in ((SIGNING_KEY_FILE, signing), (ENCRYPTION_KEY_FILE, encryption)):
            write_private_key(directory / name, key, passphrase)
            created.append(directory / name)

        created_at = now.astimezone(UTC)
        text = _render(
            party=found.code,
            created_at=created_at,
            max_payload_bytes=max_payload_bytes,
            database_url=database_url,
            signing=signing.public_key,
            encryption=encryption.public_key,
        )
        _write_config_file(config_path, text)
        created.append(config_path)
        _sync_dir(directory)
    except BaseException:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.unlink()
        if made_dir:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise

    return NodeConfig(
        party=found.code,
        data_dir=directory,
        database_url=database_url or default_database_url(directory),
        signing_key_file=directory / SIGNING_KEY_FILE,
        encryption_key_file=directory / ENCRYPTION_KEY_FILE,
        signing_public_key=signing.public_key,
        encryption_public_key=encryption.public_key,
        created_at=created_at,
        max_payload_bytes=max_payload_bytes,
    )


def load_config(data_dir: Path | str) -> NodeConfig:
    """Read and validate ``data_dir/node.toml``; errors name the file and the field."""
    directory = Path(data_dir).absolute()
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise NodeConfigError(f"{directory}: no such node directory")
    try:
        with path.open("rb") as f:
            raw: dict[str, Any] = tomllib.load(f)
    except FileNotFoundError:
        raise NodeConfigError(
            f"{directory}: not a gsomia node (no {CONFIG_FILE}; run `gsomia node init`)"
        ) from None
    except OSError as e:
        raise NodeConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise NodeConfigError(f"{path}: not valid TOML: {e}") from e
    try:
        model = _NodeFile.model_validate(raw)
    except ValidationError as e:
        raise NodeConfigError(_validation_message(path, e)) from e

    directory = directory.resolve()
    return NodeConfig(
        party=model.node.party,
        data_dir=directory,
        database_url=model.database.url or default_database_url(directory),
        signing_key_file=directory / model.keys.signing_file,  # an absolute name stays absolute
        encryption_key_file=directory / model.keys.encryption_file,
        signing_public_key=SigningPublicKey.from_text(model.keys.signing_public),
        encryption_public_key=EncryptionPublicKey.from_text(model.keys.encryption_public),
        created_at=model.node.created_at,
        max_payload_bytes=model.node.max_payload_bytes,
        witness_interval=model.ledger.witness_interval,
    )


def load_signing_key(config: NodeConfig, passphrase: str | None) -> SigningPrivateKey:
    """The node's Ed25519 key, checked against the public key pinned in ``node.toml``."""
    key = read_signing_key(config.signing_key_file, passphrase)
    _check_pinned(config.signing_key_file, key.public_key, config.signing_public_key)
    return key


def load_encryption_key(config: NodeConfig, passphrase: str | None) -> EncryptionPrivateKey:
    """The node's X25519 key, checked against the public key pinned in ``node.toml``."""
    key = read_encryption_key(config.encryption_key_file, passphrase)
    _check_pinned(config.encryption_key_file, key.public_key, config.encryption_public_key)
    return key


def _check_pinned(
    path: Path,
    actual: SigningPublicKey | EncryptionPublicKey,
    pinned: SigningPublicKey | EncryptionPublicKey,
) -> None:
    # A swapped key file would make the node sign or decrypt as someone its peers do not know.
    if actual != pinned:
        raise KeyFileError(
            f"{path}: holds key id {actual.key_id}, but {CONFIG_FILE} pins {pinned.key_id}"
        )
