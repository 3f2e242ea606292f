"""Canonical JSON: the one byte form of a record that is signed, hashed or bound.

For the values gsomia signs (objects, arrays, strings, integers, booleans, null) this is RFC 8785
(JCS): keys sorted by code point, no insignificant white space, UTF-8. Floats are refused rather
than canonicalised: none of our records needs one, and JCS's number form is the one part of the
RFC that ``json.dumps`` does not reproduce.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_bytes", "digest"]


def _check(value: Any, path: str = "$") -> None:
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not canonicalised; use an integer or a string")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings")
            _check(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")


def canonical_bytes(value: Any) -> bytes:
    """The canonical UTF-8 bytes of ``value``."""
    _check(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(value: Any) -> str:
    """``sha256:`` and the hex SHA-256 of the canonical bytes."""
    return "sha256:" + hashlib.sha256(canonical_bytes(value)).hexdigest()
