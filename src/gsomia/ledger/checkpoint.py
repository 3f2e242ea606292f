"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed-note envelopes, Ed25519.

A checkpoint says "the log named ORIGIN had SIZE entries and this root hash", signed::

    gsomia.invalid/JPN/ledger                 origin (by convention also the key name)
    1024                                      tree size, decimal, no leading zeros
    HRZ0dSbV2uBc8b3ZYrY1qUXs0a1kvmF1cQbdJ3DRDvs=   root hash, standard base64
                                              blank line: the note text ends here
    — gsomia.invalid/JPN/ledger Az3grl…==     one line per signature

Formats: https://c2sp.org/tlog-checkpoint and https://c2sp.org/signed-note. A signature line is
an em dash, a space, the key name, a space, and the base64 of a 4-byte key id followed by the
signature. For Ed25519 the key id is the first four bytes of SHA-256(name || 0x0A || 0x01 ||
public key), so a verifier finds the right key by name and id, never by trying every key. The
signature covers the note text (everything before the blank line, with its final newline).

Several signatures may follow: the log's own, then cosignatures (a witness signs the same text
with its own key). A verifier ignores signatures from keys it does not know (so a note can gain
cosignatures without breaking older verifiers) but refuses the note when a key it knows signed
badly. Parsing refuses anything not in the exact form (one space, canonical base64, no leading
zeros, no control characters, no duplicate signature), so that one note has one spelling and any
change to it fails: the tests mutate every byte.

Errors are :class:`~gsomia.core.errors.CheckpointError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gsomia.core.canonical import b64
from gsomia.core.errors import CheckpointError
from gsomia.crypto.keys import InvalidPublicKeyError, SigningPrivateKey, SigningPublicKey

__all__ = [
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "NoteVerifier",
    "SignedNote",
    "VerifiedCheckpoint",
    "ledger_origin",
    "open_checkpoint",
    "sign_note",
]

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
ALG_ED25519 = 0x01
KEY_ID_SIZE = 4
MAX_SIGNATURES = 100  # as golang.org/x/mod/sumdb/note: a note is small, checking it is cheap
MAX_NOTE_BYTES = 1 << 20
HASH_SIZE = 32

# A key name: no white space, no "+" (the separator of verifier keys), printable.
_NAME = re.compile(r"[^\s+\x00-\x1f\x7f]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_SIZE = 2**64 - 1


def ledger_origin(party: str) -> str:
    """The checkpoint origin (and key name) of a party's ledger."""
    return f"gsomia.invalid/{party}/ledger"


def _b64decode(text: str, what: str) -> bytes:
    """Standard base64, padded, and canonical: one byte string has exactly one spelling."""
    if not _B64.fullmatch(text) or len(text) % 4:
        raise CheckpointError(f"{what} is not standard base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise CheckpointError(f"{what} is not standard base64") from None
    if b64(raw) != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CheckpointError(f"{name!r} is not a key name (printable, no spaces, no '+')")
    return name


def _check_text(text: str) -> None:
    """A note text: non-empty lines of printable UTF-8, each ending in a newline."""
    if not text.endswith("\n"):
        raise CheckpointError("a note text ends with a newline")
    for ch in text:
        if (ch < " " and ch != "\n") or ch == "\x7f" or "\ud800" <= ch <= "\udfff":
            raise CheckpointError(f"a note text holds a control character {ch!r}")


def _as_text(note: str | bytes) -> str:
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise CheckpointError(f"a note is at most {MAX_NOTE_BYTES} bytes")
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("a note is not UTF-8") from None
    if not isinstance(note, str):
        raise CheckpointError(f"a note is text, not {type(note).__name__}")
    if len(note) > MAX_NOTE_BYTES:
        raise CheckpointError(f"a note is at most {MAX_NOTE_BYTES} bytes")
    return note


# -- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A named Ed25519 key that may sign notes: a log's key, or a witness's."""

    name: str
    public_key: SigningPublicKey

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.public_key, SigningPublicKey):
            raise TypeError("a note verifier holds a SigningPublicKey")

    @property
    def key_id(self) -> bytes:
        """SHA-256(name || 0x0A || 0x01 || public key)[:4] (C2SP signed-note, Ed25519)."""
        material = self.name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + self.public_key.raw
        return hashlib.sha256(material).digest()[:KEY_ID_SIZE]

    def to_vkey(self) -> str:
        """The verifier key text of golang.org/x/mod/sumdb/note: ``name+hash+base64(alg||key)``."""
        raw = bytes([ALG_ED25519]) + self.public_key.raw
        return f"{self.name}+{self.key_id.hex()}+{b64(raw)}"

    @classmethod
    def from_vkey(cls, text: str) -> NoteVerifier:
        name, sep1, rest = text.partition("+")
        key_hash, sep2, key_b64 = rest.partition("+")
        if not (sep1 and sep2) or not re.fullmatch(r"[0-9a-f]{8}", key_hash):
            raise CheckpointError(f"{text!r} is not a verifier key (name+hash+key)")
        raw = _b64decode(key_b64, "a verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError(f"{text!r} is not an Ed25519 verifier key")
        try:
            verifier = cls(_check_name(name), SigningPublicKey(raw[1:]))
        except InvalidPublicKeyError as e:
            raise CheckpointError(f"{text!r}: {e.message}") from None
        if verifier.key_id.hex() != key_hash:
            raise CheckpointError(f"{text!r}: the key hash does not match the name and key")
        return verifier

    def is_valid(self, text: str, signature: NoteSignature) -> bool:
        return (
            signature.name == self.name
            and signature.key_id == self.key_id
            and self.public_key.is_valid_signature(signature.signature, text.encode("utf-8"))
        )


# -- notes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: who (name and 4-byte key id) and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key_id) != KEY_ID_SIZE or not self.signature:
            raise CheckpointError("a note signature is a 4-byte key id and a signature")

    def to_line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {b64(self.key_id + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError(f"a signature line starts with an em dash: {line[:40]!r}")
        name, sep, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep:
            raise CheckpointError(f"a signature line is '— name signature': {line[:40]!r}")
        raw = _b64decode(blob, f"the signature of {name!r}")
        if len(raw) <= KEY_ID_SIZE:
            raise CheckpointError(f"the signature of {name!r} is too short")
        return cls(_check_name(name), raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A note text and its signatures, in order (C2SP signed-note)."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not self.signatures:
            raise CheckpointError("a signed note has at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise CheckpointError(f"a note has at most {MAX_SIGNATURES} signatures")
        seen = {(s.name, s.key_id) for s in self.signatures}
        if len(seen) != len(self.signatures):
            raise CheckpointError("a note is signed twice by the same key")

    def to_text(self) -> str:
        return self.text + "\n" + "".join(s.to_line() for s in self.signatures)

    @classmethod
    def parse(cls, note: str | bytes) -> SignedNote:
        """The note's parts, checked for form only (no signature is verified here)."""
        raw = _as_text(note)
        split = raw.rfind("\n\n")
        if split < 0:
            raise CheckpointError("a signed note has a blank line before its signatures")
        text, block = raw[: split + 1], raw[split + 2 :]
        if not block.endswith("\n"):
            raise CheckpointError("a signed note ends with a signature line and a newline")
        lines = block[:-1].split("\n")
        return cls(text, tuple(NoteSignature.from_line(line) for line in lines))

    def signed_by(self, verifiers: Iterable[NoteVerifier]) -> frozenset[str]:
        """The names of the ``verifiers`` that signed this note.

        A signature whose name and key id match a verifier must verify, or the whole note is
        refused: a known key's bad signature is a forgery or a corruption, not an absence.
        Signatures by keys not given are ignored.
        """
        by_id = {(v.name, v.key_id): v for v in verifiers}
        names: set[str] = set()
        for signature in self.signatures:
            verifier = by_id.get((signature.name, signature.key_id))
            if verifier is None:
                continue
            if not verifier.is_valid(self.text, signature):
                raise CheckpointError(f"the signature of {signature.name} does not verify")
            names.add(signature.name)
        return frozenset(names)

    def cosign(self, name: str, key: SigningPrivateKey) -> SignedNote:
        """This note with one more signature (a witness's cosignature)."""
        return SignedNote(self.text, (*self.signatures, _signature(self.text, name, key)))


def _signature(text: str, name: str, key: SigningPrivateKey) -> NoteSignature:
    verifier = NoteVerifier(_check_name(name), key.public_key)
    return NoteSignature(name, verifier.key_id, key.sign(text.encode("utf-8")))


def sign_note(text: str, name: str, key: SigningPrivateKey) -> SignedNote:
    """Sign ``text`` (which ends with a newline) as ``name``."""
    _check_text(text)
    return SignedNote(text, (_signature(text, name, key),))


# -- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's state: its origin, its size and its RFC 9162 root hash (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or not self.origin.isprintable() or self.origin != self.origin.strip():
            raise CheckpointError(f"{self.origin!r} is not a checkpoint origin")
        if not 0 <= self.size <= _MAX_SIZE:
            raise CheckpointError(f"{self.size} is not a tree size")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError("a checkpoint's root hash is 32 bytes")
        for line in self.extensions:
            if not line or "\n" in line or not line.isprintable():
                raise CheckpointError(f"{line!r} is not a checkpoint extension line")

    def body(self) -> str:
        lines = [self.origin, str(self.size), b64(self.root_hash), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        _check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has an origin, a size and a root hash")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size) or int(size) > _MAX_SIZE:
            raise CheckpointError(f"{size[:24]!r} is not a tree size (decimal, no leading zeros)")
        return cls(origin, int(size), _b64decode(root, "the root hash"), tuple(extensions))

    def sign(self, name: str, key: SigningPrivateKey) -> SignedNote:
        return sign_note(self.body(), name, key)


@dataclass(frozen=True, slots=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature verified, and the cosigners whose signatures did."""

    checkpoint: Checkpoint
    note: SignedNote
    cosigners: frozenset[str] = field(default_factory=frozenset)

    @property
    def text(self) -> str:
        return self.note.to_text()


def open_checkpoint(
    note: str | bytes,
    log_key: NoteVerifier,
    *,
    cosigners: Sequence[NoteVerifier] = (),
    min_cosigners: int = 0,
    origin: str | None = None,
) -> VerifiedCheckpoint:
    """Parse and verify a signed checkpoint.

    ``log_key`` must have signed it; of ``cosigners`` (witnesses, by name and key), at least
    ``min_cosigners`` must have; a bad signature by any of them refuses the note. With
    ``origin``, the checkpoint must name that log.
    """
    signed = SignedNote.parse(note)
    checkpoint = Checkpoint.from_body(signed.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"a checkpoint of {checkpoint.origin!r}, not of {origin!r}")
    names = signed.signed_by([log_key, *cosigners])
    if log_key.name not in names:
        raise CheckpointError(f"the checkpoint has no signature by {log_key.name}")
    witnessed = frozenset(n for n in names if n != log_key.name)
    if len(witnessed) < min_cosigners:
        raise CheckpointError(
            f"the checkpoint has {len(witnessed)} valid cosignatures; {min_cosigners} needed"
        )
    return VerifiedCheckpoint(checkpoint, signed, witnessed)
