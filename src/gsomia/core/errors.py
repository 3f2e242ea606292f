"""The one exception hierarchy of gsomia.

Every error carries a stable ``code`` (a slug used in problem+json ``type`` URIs and in CLI
messages), an HTTP ``status`` and a CLI ``exit_code``. A user error is one clear line::

    GsomiaError
    ├── InputError                      400, exit 2: the caller's input is wrong
    │   ├── NotFoundError               404: an id that the registry does not know
    │   │   ├── UnknownInstrumentError
    │   │   ├── UnknownPartyError
    │   │   ├── UnknownLevelError
    │   │   ├── UnknownTopicError
    │   │   └── UnknownEventError
    │   ├── InvalidInstantError         a malformed or naive instant
    │   ├── InvalidLabelError           a label that is not well formed
    │   ├── InvalidMarkingError         a banner or portion marking that does not parse
    │   ├── InvalidCursorError          a page cursor that was not handed out by the node
    │   ├── PayloadTooLargeError        413: an item payload over the node's limit
    │   ├── KeyFileError                a private key file missing, malformed or in the way
    │   │   ├── InsecureKeyFileError    readable by group or others
    │   │   └── KeyPassphraseError      wrong, missing or unexpected passphrase
    │   ├── InvalidPublicKeyError       a public key string not <type>:<base64url>
    │   └── NodeConfigError             a node directory or node.toml missing or invalid
    ├── AuthenticationError             401: no token, or a token that is unknown or revoked
    ├── ForbiddenError                  403: the user's roles do not allow the action
    ├── ItemNotFoundError               404: no such item, or none this user may know of
    ├── ConflictError                   409: the act conflicts with the item's state
    ├── StorageError                    503: the database could not be reached
    ├── FederationError                 400: a node-to-node message refused
    │   ├── EnvelopeError               an envelope or receipt that does not verify or open
    │   ├── RequestSignatureError       401: no valid HTTP message signature from a pinned peer
    │   ├── ReplayError                 409: a nonce or envelope seen before, or out of time
    │   ├── UnknownPeerError            403: a party that is not a pinned peer
    │   └── MisaddressedError           421: for another node, or signed by another party
    ├── PeerUnreachableError            502: a peer could not be reached
    ├── IntegrityError                  409: evidence that does not verify (ledger, proofs)
    │   └── InvalidProofError, CheckpointError, LedgerInconsistentError (500)
    ├── LedgerRangeError, InvalidRecordError          (InputError) ledger look-ups and records
    ├── InvalidTrackError                (InputError) a malformed missile-warning track update
    │   └── TrackFieldRefusedError       a sensor or unknown field at the link's boundary
    ├── RegistryError                   422, exit 2: a data file is invalid (names file and field)
    └── ReleaseDeniedError              403, exit 3: a release was refused (carries the decision)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar


class GsomiaError(Exception):
    """Root of every error gsomia raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 problem details body for this error."""
        return {
            "type": f"https://gsomia.invalid/problems/{self.code}",
            "title": self.code.replace("-", " "),
            "status": self.status,
            "detail": self.message,
            "code": self.code,
        }


class InputError(GsomiaError):
    code = "invalid-input"
    status = 400
    exit_code = 2


class NotFoundError(InputError):
    code = "not-found"
    status = 404

    kind: ClassVar[str] = "id"

    def __init__(self, wanted: str, known: Iterable[str] = (), where: str = "") -> None:
        known = sorted(known)
        hint = difflib.get_close_matches(wanted, known, n=3, cutoff=0.5)
        message = f"unknown {self.kind} {wanted!r}" + (f" in {where}" if where else "")
        if hint:
            message += f" (did you mean {', '.join(repr(h) for h in hint)}?)"
        elif known and len(known) <= 12:
            message += f" (known: {', '.join(known)})"
        super().__init__(message)
        self.wanted = wanted


class UnknownInstrumentError(NotFoundError):
    code = "unknown-instrument"
    kind = "instrument"


class UnknownPartyError(NotFoundError):
    code = "unknown-party"
    kind = "party"


class UnknownLevelError(NotFoundError):
    code = "unknown-level"
    kind = "classification level"


class UnknownTopicError(NotFoundError):
    code = "unknown-topic"
    kind = "topic"


class UnknownEventError(NotFoundError):
    code = "unknown-event"
    kind = "event"


class InvalidInstantError(InputError):
    code = "invalid-instant"


class InvalidLabelError(InputError):
    code = "invalid-label"


class InvalidMarkingError(InputError):
    code = "invalid-marking"


class InvalidCursorError(InputError):
    code = "invalid-cursor"


class PayloadTooLargeError(InputError):
    code = "payload-too-large"
    status = 413


class KeyFileError(InputError):
    """A private key file is missing, unreadable, malformed, of the wrong kind, or in the way."""

    code = "invalid-key-file"


class InsecureKeyFileError(KeyFileError):
    """A private key file that group or others may access: refused, as ssh does."""

    code = "insecure-key-file"


class KeyPassphraseError(KeyFileError):
    """A wrong, missing, empty or unexpected passphrase for a private key file."""

    code = "bad-key-passphrase"


class InvalidPublicKeyError(InputError):
    """A public key string that is not exactly ``<type>:<base64url of 32 bytes>``."""

    code = "invalid-public-key"


class NodeConfigError(InputError):
    """A node directory or its ``node.toml`` is missing or invalid (names the file and field)."""

    code = "invalid-node-config"


class AuthenticationError(GsomiaError):
    code = "unauthenticated"
    status = 401
    exit_code = 2


class ForbiddenError(GsomiaError):
    code = "forbidden"
    status = 403
    exit_code = 2


class ItemNotFoundError(GsomiaError):
    """No such item, or one the user may not know exists (the same answer, on purpose)."""

    code = "item-not-found"
    status = 404
    exit_code = 2

    def __init__(self, item_id: str) -> None:
        super().__init__(f"no item {item_id!r}")


class ConflictError(GsomiaError):
    code = "conflict"
    status = 409
    exit_code = 2


class StorageError(GsomiaError):
    """The database could not be reached or refused an operation."""

    code = "storage-unavailable"
    status = 503
    exit_code = 1


class FederationError(GsomiaError):
    """A node-to-node message that this node refuses to act on."""

    code = "federation-refused"
    status = 400
    exit_code = 2


class EnvelopeError(FederationError):
    """An envelope or receipt that does not verify or open (one opaque reason, on purpose)."""

    code = "envelope-invalid"


class RequestSignatureError(FederationError):
    """A node-to-node request without a valid HTTP message signature from a pinned peer."""

    code = "bad-request-signature"
    status = 401


class ReplayError(FederationError):
    """A request nonce or envelope already seen, or a request outside the time window."""

    code = "replayed-request"
    status = 409


class UnknownPeerError(FederationError):
    code = "unknown-peer"
    status = 403


class MisaddressedError(FederationError):
    """An envelope for another node, or from a party other than the one that signed the request."""

    code = "misaddressed"
    status = 421


class NodeRefusedError(InputError):
    """A node answered a command-line request with problem+json; shown as one line."""

    code = "node-refused"


class PeerUnreachableError(GsomiaError):
    code = "peer-unreachable"
    status = 502
    exit_code = 1


class RegistryError(GsomiaError):
    """A registry data file is invalid; the message names the file and the field."""

    code = "invalid-registry"
    status = 422
    exit_code = 2


class ReleaseDeniedError(GsomiaError):
    """A release that was enforced and refused. Carries the whole decision."""

    code = "release-denied"
    status = 403
    exit_code = 3

    def __init__(self, message: str, decision: object) -> None:
        super().__init__(message)
        self.decision = decision


class IntegrityError(GsomiaError):
    """Evidence that does not verify: a Merkle proof, a signed checkpoint, a tampered log."""

    code = "integrity-failure"
    status = 409
    exit_code = 1


class InvalidProofError(IntegrityError):
    """A Merkle inclusion or consistency proof of the wrong length, or giving another root."""

    code = "invalid-proof"


class CheckpointError(IntegrityError):
    """A signed note or checkpoint that is malformed, or lacks a valid signature by a needed key."""

    code = "invalid-checkpoint"


class LedgerInconsistentError(IntegrityError):
    """The stored ledger contradicts itself or a signed checkpoint: tampering, loss or rollback."""

    code = "ledger-inconsistent"
    status = 500


class LedgerRangeError(InputError):
    """An entry index or a tree size that the ledger does not have (yet)."""

    code = "ledger-out-of-range"
    status = 404


class InvalidRecordError(InputError):
    """A ledger record or kind that cannot be canonicalised (not a JSON object, NaN, ...)."""

    code = "invalid-ledger-record"


class InvalidTrackError(InputError):
    """A missile-warning track update that is malformed (a missing field, a bad value)."""

    code = "invalid-track"


class TrackFieldRefusedError(InvalidTrackError):
    """A track update carrying a field the link does not share: sensor metadata or unknown."""

    code = "track-field-refused"


class CotStreamError(InputError):
    """A TAK client's byte stream that cannot be cut into CoT events (one over the size limit)."""

    code = "invalid-cot-stream"
