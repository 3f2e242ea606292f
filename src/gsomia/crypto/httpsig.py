"""HTTP Message Signatures (RFC 9421) between nodes, Ed25519, by ``http-message-signatures``.

Every node-to-node request is signed over its method, authority, target URI, body digest and the
``gsomia-sender`` header, with a fresh nonce and a creation time. The receiver verifies against
the sender's pinned key, refuses anything older than the window, and records the nonce so that a
replay is refused (the library leaves replay detection to the caller, as RFC 9421 does).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from gsomia.core.errors import RequestSignatureError
from gsomia.crypto.keys import SigningPrivateKey, SigningPublicKey

SENDER_HEADER = "gsomia-sender"
COVERED = ("@method", "@authority", "@target-uri", "content-digest", SENDER_HEADER)
TAG = "gsomia-federation"
WINDOW = dt.timedelta(minutes=5)


class _Message(Protocol):
    method: str
    url: Any
    headers: Any


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    party: str
    key_id: str
    nonce: str
    created: dt.datetime


def sign_request(message: _Message, body: bytes, *, party: str, key: SigningPrivateKey) -> None:
    """Sign an outgoing request in place (an ``httpx.Request`` will do)."""
    message.headers[SENDER_HEADER] = party
    key_id = f"{party}/{key.key_id}"
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: key.key}),
    )
    signer.sign(
        message,
        key_id=key_id,
        nonce=secrets.token_hex(16),
        tag=TAG,
        label="gsomia",
        covered_component_ids=COVERED,
        body=body,
    )


class _PinnedKeys(HTTPSignatureKeyResolver):
    def __init__(self, lookup: Any) -> None:
        self.lookup = lookup

    def resolve_public_key(self, key_id: str) -> Any:
        party, _, fingerprint = key_id.partition("/")
        pinned: SigningPublicKey | None = self.lookup(party)
        if pinned is None or pinned.key_id != fingerprint:
            return None
        return pinned.key

    def resolve_private_key(self, key_id: str) -> Any:  # pragma: no cover - verifier only
        raise KeyError(key_id)


def verify_request(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    pinned: Any,
    window: dt.timedelta = WINDOW,
) -> VerifiedRequest:
    """The verified signer of a request, or RequestSignatureError.

    ``pinned(party) -> SigningPublicKey | None`` gives the key pinned for a party.
    """
    message = SimpleNamespace(method=method, url=url, headers=headers)
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519, key_resolver=_PinnedKeys(pinned)
    )
    try:
        results = verifier.verify(
            message, max_age=window, expect_tag=TAG, require_components=COVERED, body=body
        )
    except (InvalidSignature, HTTPMessageSignaturesException, ValueError) as e:
        raise RequestSignatureError(f"request signature refused: {e}") from None
    result = results[0]
    key_id = str(result.parameters.get("keyid", ""))
    party = key_id.partition("/")[0]
    if headers.get(SENDER_HEADER) != party:
        raise RequestSignatureError("the signed sender is not the key's party")
    if not result.nonce:
        raise RequestSignatureError("the request signature carries no nonce")
    created = dt.datetime.fromtimestamp(int(result.parameters["created"]), tz=dt.UTC)
    return VerifiedRequest(party=party, key_id=key_id, nonce=result.nonce, created=created)
