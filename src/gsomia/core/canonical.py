"""Canonical JSON: the one byte form of a record that is signed, hashed or bound.

RFC 8785 (JCS), implemented once in :mod:`gsomia.core.jcs`; these are the two shapes the rest
of gsomia asks for.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from gsomia.core.jcs import canonical_pair

__all__ = ["b64", "canonical_bytes", "digest"]


def canonical_bytes(value: Any) -> bytes:
    """The canonical UTF-8 bytes of ``value``."""
    return canonical_pair(value)[1]


def digest(value: Any) -> str:
    """``sha256:`` and the hex SHA-256 of the canonical bytes."""
    return "sha256:" + hashlib.sha256(canonical_bytes(value)).hexdigest()


def b64(raw: bytes) -> str:
    """Standard, padded base64 of ``raw``: how records, envelopes and notes spell bytes."""
    return base64.b64encode(raw).decode("ascii")
