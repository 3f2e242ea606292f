"""A node's key pairs: Ed25519 to sign, X25519 to receive encrypted payloads.

Each purpose has its own types, so a signing key can never be passed where an encryption key is
expected (mypy refuses it, and the constructors check at run time):

    SigningPrivateKey     Ed25519 private   sign()
    SigningPublicKey      Ed25519 public    is_valid_signature(), to_text() -> "ed25519:..."
    EncryptionPrivateKey  X25519 private    exchange()
    EncryptionPublicKey   X25519 public     to_text() -> "x25519:..."

Private keys live in PKCS#8 PEM files, encrypted when a passphrase is given, created with mode
0600 and never overwritten. Public keys travel as text: a type prefix and the base64url (no
padding) of the raw 32 bytes, parsed back strictly. A key id is the first 16 hex digits of the
SHA-256 of the raw public key: short enough to read aloud when two nations compare pinned keys.

All cryptography is the ``cryptography`` library's; nothing here is home-made.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from gsomia.core.errors import (
    InsecureKeyFileError,
    InvalidPublicKeyError,
    KeyFileError,
    KeyPassphraseError,
)

__all__ = [
    "EncryptionPrivateKey",
    "EncryptionPublicKey",
    "InsecureKeyFileError",
    "InvalidPublicKeyError",
    "KeyFileError",
    "KeyPassphraseError",
    "SigningPrivateKey",
    "SigningPublicKey",
    "key_id",
    "read_encryption_key",
    "read_signing_key",
    "write_private_key",
]

RAW_KEY_BYTES = 32
PRIVATE_KEY_MODE = 0o600


# -- public keys ------------------------------------------------------------------------------

# 32 bytes are 43 base64url characters without padding; the alphabet is checked here because
# the standard library's decoder silently skips characters outside it.
_B64URL_32 = re.compile(r"[A-Za-z0-9_-]{43}")


def key_id(raw: bytes) -> str:
    """First 16 hex digits of SHA-256 over a raw public key."""
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _parse_text(text: str, prefix: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidPublicKeyError(f"{what}: expected a string, got {type(text).__name__}")
    kind, sep, body = text.partition(":")
    if not sep:
        raise InvalidPublicKeyError(f"{what}: {_shown(text)} has no type prefix (want {prefix}:…)")
    if kind != prefix:
        raise InvalidPublicKeyError(f"{what}: want a {prefix}: key, got a {_shown(kind)}: key")
    if not _B64URL_32.fullmatch(body):
        raise InvalidPublicKeyError(
            f"{what}: {_shown(text)} is not {prefix}: followed by 43 base64url characters "
            f"(the raw {RAW_KEY_BYTES} bytes, no padding)"
        )
    raw = base64.urlsafe_b64decode(body + "=")
    # 43 characters carry 258 bits; the last two must be zero, or two strings would name one
    # key and a pinned key could be written in a form that compares unequal to itself.
    if _b64url(raw) != body:
        raise InvalidPublicKeyError(f"{what}: {_shown(text)} is not canonical base64url")
    return raw


def _shown(text: str) -> str:
    """A bounded repr for error messages: a pasted key may be anything, of any length."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


@dataclass(frozen=True, slots=True)
class _PublicKey:
    """What the two public key types share. They stay unrelated to each other, so a signing key
    can never stand in for an encryption key (and equal bytes of the two never compare equal)."""

    raw: bytes
    PREFIX: ClassVar[str] = ""
    ALGORITHM: ClassVar[str] = ""
    PURPOSE: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != RAW_KEY_BYTES:
            raise InvalidPublicKeyError(
                f"an {self.ALGORITHM} public key is {RAW_KEY_BYTES} raw bytes"
            )

    @classmethod
    def from_text(cls, text: str) -> Self:
        return cls(_parse_text(text, cls.PREFIX, cls.PURPOSE))

    def to_text(self) -> str:
        return f"{self.PREFIX}:{_b64url(self.raw)}"

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True, slots=True)
class SigningPublicKey(_PublicKey):
    """An Ed25519 public key: verifies a node's signatures."""

    PREFIX: ClassVar[str] = "ed25519"
    ALGORITHM: ClassVar[str] = "Ed25519"
    PURPOSE: ClassVar[str] = "signing key"

    @property
    def key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def is_valid_signature(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature over ``data``."""
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class EncryptionPublicKey(_PublicKey):
    """An X25519 public key: what a sender wraps payload keys for."""

    PREFIX: ClassVar[str] = "x25519"
    ALGORITHM: ClassVar[str] = "X25519"
    PURPOSE: ClassVar[str] = "encryption key"

    @property
    def key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)


# -- private keys -----------------------------------------------------------------------------


def _raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# eq=False: two private keys are the same object or different secrets; repr never shows the key.
@dataclass(frozen=True, slots=True, eq=False)
class SigningPrivateKey:
    """An Ed25519 private key: signs envelopes, receipts, checkpoints and requests."""

    key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, Ed25519PrivateKey):
            raise TypeError(f"SigningPrivateKey wants an Ed25519 key, not {type(self.key)}")

    @classmethod
    def generate(cls) -> Self:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> SigningPublicKey:
        return SigningPublicKey(_raw_public(self.key.public_key()))

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def __repr__(self) -> str:
        return f"SigningPrivateKey(key_id={self.key_id!r})"


@dataclass(frozen=True, slots=True, eq=False)
class EncryptionPrivateKey:
    """An X25519 private key: unwraps payload keys that senders wrapped for this node."""

    key: X25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, X25519PrivateKey):
            raise TypeError(f"EncryptionPrivateKey wants an X25519 key, not {type(self.key)}")

    @classmethod
    def generate(cls) -> Self:
        return cls(X25519PrivateKey.generate())

    @property
    def public_key(self) -> EncryptionPublicKey:
        return EncryptionPublicKey(_raw_public(self.key.public_key()))

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def exchange(self, peer: EncryptionPublicKey) -> bytes:
        """The raw X25519 shared secret with ``peer``: feed it to a KDF, never use it as a key."""
        if not isinstance(peer, EncryptionPublicKey):
            raise TypeError(f"exchange wants an EncryptionPublicKey, not {type(peer).__name__}")
        return self.key.exchange(peer.key)

    def __repr__(self) -> str:
        return f"EncryptionPrivateKey(key_id={self.key_id!r})"


# -- key files --------------------------------------------------------------------------------


def _passphrase_bytes(passphrase: str | None, path: Path) -> bytes | None:
    if passphrase is None:
        return None
    if passphrase == "":
        # An empty passphrase would look like protection and be none.
        raise KeyPassphraseError(f"{path}: the passphrase is empty")
    return passphrase.encode("utf-8")


def write_private_key(
    path: Path | str, key: SigningPrivateKey | EncryptionPrivateKey, passphrase: str | None
) -> None:
    """Write ``key`` as PKCS#8 PEM to a new file of mode 0600; encrypted if a passphrase is given.

    The file is created with its final mode in the same call that creates it (O_CREAT|O_EXCL),
    so there is no instant at which another user could open it, and an existing file is never
    replaced. A file that could not be written completely is removed.
    """
    path = Path(path)
    if not isinstance(key, SigningPrivateKey | EncryptionPrivateKey):
        raise TypeError(f"not a gsomia private key: {type(key).__name__}")
    secret = _passphrase_bytes(passphrase, path)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret)
        if secret is not None
        else serialization.NoEncryption()
    )
    pem = key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, PRIVATE_KEY_MODE)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key file") from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot create: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(e, OSError):
            raise KeyFileError(f"{path}: cannot write: {e.strerror or e}") from e
        raise


def _read_key_file(path: Path) -> bytes:
    try:
        # Open first and check the mode of what was opened, so the file checked is the file read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot open: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
            raise InsecureKeyFileError(
                f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets group or others access a "
                f"private key; run `chmod 600 {path}`"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read: {e.strerror or e}") from e
    finally:
        os.close(fd)


def _load_private(path: Path, passphrase: str | None) -> PrivateKeyTypes:
    pem = _read_key_file(path)
    secret = _passphrase_bytes(passphrase, path)
    encrypted = pem.lstrip().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # The three passphrase mistakes are told apart before cryptography is asked, so each gets
    # its own sentence instead of a library exception.
    if encrypted and secret is None:
        raise KeyPassphraseError(f"{path}: the key is encrypted and no passphrase was given")
    if not encrypted and secret is not None:
        # Refused rather than ignored: whoever gave a passphrase believes the key is protected.
        raise KeyPassphraseError(f"{path}: a passphrase was given but the key is not encrypted")
    try:
        return serialization.load_pem_private_key(pem, password=secret)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        if encrypted:
            raise KeyPassphraseError(
                f"{path}: wrong passphrase (or the key file is damaged)"
            ) from None
        raise KeyFileError(f"{path}: not a PKCS#8 PEM private key") from e


def _wrong_kind(path: Path, loaded: PrivateKeyTypes, want: str) -> KeyFileError:
    return KeyFileError(f"{path}: holds a {type(loaded).__name__}, not {want}")


def read_signing_key(path: Path | str, passphrase: str | None) -> SigningPrivateKey:
    """Load an Ed25519 signing key written by :func:`write_private_key`.

    Raises :class:`InsecureKeyFileError` if group or others may access the file,
    :class:`KeyPassphraseError` for a wrong, missing or unexpected passphrase, and
    :class:`KeyFileError` for anything else wrong with the file.
    """
    path = Path(path)
    loaded = _load_private(path, passphrase)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise _wrong_kind(path, loaded, "an Ed25519 signing key")
    return SigningPrivateKey(loaded)


def read_encryption_key(path: Path | str, passphrase: str | None) -> EncryptionPrivateKey:
    """Load an X25519 encryption key written by :func:`write_private_key` (errors as above)."""
    path = Path(path)
    loaded = _load_private(path, passphrase)
    if not isinstance(loaded, X25519PrivateKey):
        raise _wrong_kind(path, loaded, "an X25519 encryption key")
    return EncryptionPrivateKey(loaded)
