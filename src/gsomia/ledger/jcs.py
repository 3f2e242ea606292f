"""Moved to :mod:`gsomia.core.jcs`, the one canonical JSON of gsomia."""

from gsomia.core.jcs import MAX_DEPTH, MAX_SAFE_INTEGER, canonical_json, canonical_pair

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "canonical_json", "canonical_pair"]
