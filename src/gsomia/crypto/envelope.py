"""Sealed envelopes and signed receipts between national nodes.

An envelope binds a header (ids, sender, recipient, route, label, decision digest, created-at,
nonce, ...) to an encrypted payload, after the idea of STANAG 4778:

- the payload is encrypted with AES-256-GCM under a fresh content key, with the canonical header
  as associated data, so neither the label nor any other header field can be changed without the
  decryption failing;
- the content key is wrapped for the recipient: an ephemeral X25519 key agreement with the
  recipient's pinned encryption key, HKDF-SHA256 over the shared secret (salted with both public
  keys), and AES-256-GCM;
- the sender signs the canonical bytes of header, wrapped key and ciphertext with Ed25519.

Every primitive is the ``cryptography`` library's; this module only composes them. Any failure to
verify or open is one opaque ``EnvelopeError`` (the reason goes to the debug log, not the caller).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gsomia.core.canonical import b64, canonical_bytes
from gsomia.core.errors import EnvelopeError
from gsomia.crypto.keys import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    InvalidPublicKeyError,
    SigningPrivateKey,
    SigningPublicKey,
)

log = logging.getLogger(__name__)

VERSION = 1
_WRAP_INFO = b"gsomia envelope key wrap v1"


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a base64 string")
    return base64.b64decode(text, validate=True)


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified and decrypted envelope."""

    header: dict[str, Any]
    payload: bytes
    digest: str  # sha256 of the envelope's signed bytes: what a receipt acknowledges


def _wrapping_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_WRAP_INFO
    ).derive(shared)


def _signed_part(envelope: dict[str, Any], header: bytes | None = None) -> bytes:
    """The canonical bytes of ``{"ciphertext", "header", "key"}``, the part the sender signs.

    Composed from the canonical bytes of the three members: RFC 8785 writes an object as its
    members in name order (``ciphertext`` < ``header`` < ``key``), each as ``"name":`` and the
    value's canonical form, so this is byte for byte ``canonical_bytes`` of that object, without
    walking the header twice when its bytes (the AEAD's associated data) are at hand.
    """
    return b"".join(
        (
            b'{"ciphertext":',
            canonical_bytes(envelope["ciphertext"]),
            b',"header":',
            canonical_bytes(envelope["header"]) if header is None else header,
            b',"key":',
            canonical_bytes(envelope["key"]),
            b"}",
        )
    )


def envelope_digest(envelope: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_signed_part(envelope)).hexdigest()


def seal(
    header: dict[str, Any],
    payload: bytes,
    *,
    sender_key: SigningPrivateKey,
    recipient_key: EncryptionPublicKey,
) -> dict[str, Any]:
    """The envelope carrying ``payload`` under ``header`` to the holder of ``recipient_key``."""
    return seal_bytes(header, payload, sender_key=sender_key, recipient_key=recipient_key)[0]


def seal_bytes(
    header: dict[str, Any],
    payload: bytes,
    *,
    sender_key: SigningPrivateKey,
    recipient_key: EncryptionPublicKey,
) -> tuple[dict[str, Any], bytes]:
    """Like :func:`seal`, and the envelope's canonical bytes (what goes on the wire)."""
    header = {**header, "v": VERSION}
    aad = canonical_bytes(header)
    content_key = AESGCM.generate_key(bit_length=256)
    data_nonce = os.urandom(12)
    ciphertext = AESGCM(content_key).encrypt(data_nonce, payload, aad)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(recipient_key.key)
    wrap_key = _wrapping_key(shared, ephemeral_public, recipient_key.raw)
    wrap_nonce = os.urandom(12)
    wrapped = AESGCM(wrap_key).encrypt(wrap_nonce, content_key, aad)
    envelope: dict[str, Any] = {
        "header": header,
        "key": {
            "alg": "X25519-HKDF-SHA256-A256GCM",
            "ephemeral": EncryptionPublicKey(ephemeral_public).to_text(),
            "recipient": recipient_key.key_id,
            "nonce": b64(wrap_nonce),
            "wrapped": b64(wrapped),
        },
        "ciphertext": {"alg": "A256GCM", "nonce": b64(data_nonce), "data": b64(ciphertext)},
    }
    signed = _signed_part(envelope, aad)
    signature = {
        "alg": "ed25519",
        "keyid": sender_key.key_id,
        "value": b64(sender_key.sign(signed)),
    }
    envelope["signature"] = signature
    # The whole envelope in canonical form: the signed object with "signature" (last by name).
    return envelope, b"".join((signed[:-1], b',"signature":', canonical_bytes(signature), b"}"))


def verify_envelope(envelope: Any, sender_key: SigningPublicKey) -> str:
    """Check the sender's signature; the envelope's digest. Raises EnvelopeError."""
    return _verified(envelope, sender_key)[0]


def _verified(envelope: Any, sender_key: SigningPublicKey) -> tuple[str, bytes]:
    """The envelope's digest and its header's canonical bytes, once the signature verifies."""
    try:
        signature = _unb64(envelope["signature"]["value"])
        header = canonical_bytes(envelope["header"])
        signed = _signed_part(envelope, header)
    except (KeyError, TypeError, ValueError) as e:
        log.debug("malformed envelope: %s", e)
        raise EnvelopeError("malformed envelope") from None
    if not sender_key.is_valid_signature(signature, signed):
        raise EnvelopeError("the envelope's signature does not verify")
    return "sha256:" + hashlib.sha256(signed).hexdigest(), header


def open_envelope(
    envelope: Any, *, sender_key: SigningPublicKey, recipient_key: EncryptionPrivateKey
) -> Opened:
    """Verify, unwrap and decrypt. Every failure is one ``EnvelopeError``."""
    digest, aad = _verified(envelope, sender_key)
    try:
        header = envelope["header"]
        key = envelope["key"]
        body = envelope["ciphertext"]
        if header.get("v") != VERSION:
            raise ValueError(f"unsupported envelope version {header.get('v')!r}")
        if key.get("recipient") != recipient_key.public_key.key_id:
            raise ValueError("wrapped for another key")
        ephemeral = EncryptionPublicKey.from_text(key["ephemeral"])
        shared = recipient_key.exchange(ephemeral)
        wrap_key = _wrapping_key(shared, ephemeral.raw, recipient_key.public_key.raw)
        content_key = AESGCM(wrap_key).decrypt(_unb64(key["nonce"]), _unb64(key["wrapped"]), aad)
        payload = AESGCM(content_key).decrypt(_unb64(body["nonce"]), _unb64(body["data"]), aad)
    except (KeyError, TypeError, ValueError, InvalidTag, InvalidPublicKeyError) as e:
        log.debug("envelope does not open: %r", e)
        raise EnvelopeError("the envelope does not open for this node") from None
    return Opened(dict(header), payload, digest)


def sign_receipt(body: dict[str, Any], key: SigningPrivateKey) -> dict[str, Any]:
    """A receipt: the recipient's signature over what it acknowledges."""
    return {
        "receipt": body,
        "signature": {
            "alg": "ed25519",
            "keyid": key.key_id,
            "value": b64(key.sign(canonical_bytes(body))),
        },
    }


def verify_receipt(signed: Any, key: SigningPublicKey) -> dict[str, Any]:
    try:
        body = signed["receipt"]
        value = _unb64(signed["signature"]["value"])
        ok = key.is_valid_signature(value, canonical_bytes(body))
    except (KeyError, TypeError, ValueError) as e:
        log.debug("malformed receipt: %s", e)
        raise EnvelopeError("malformed receipt") from None
    if not ok:
        raise EnvelopeError("the receipt's signature does not verify")
    return dict(body)
