"""Where a fact comes from, and how sure we are of it.

Every fact in a registry file carries its source. The evidence grades follow the domain
reference (shared/domain/gsomia.md): a fact marked ``unverified`` stays visibly unverified in
everything a user sees that rests on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Evidence", "Provenance"]


class Evidence(StrEnum):
    SOURCE = "source"  # a cited public source says it
    SUMMARY = "summary"  # only an official or press summary says it
    UNVERIFIED = "unverified"  # no source found: an assumption to confirm
    DESIGN_NOTE = "design-note"  # a choice of this software, not a fact


@dataclass(frozen=True, slots=True)
class Provenance:
    source: str
    evidence: Evidence = Evidence.SOURCE
    note: str = ""

    @property
    def verified(self) -> bool:
        return self.evidence in (Evidence.SOURCE, Evidence.SUMMARY)

    def tag(self) -> str:
        """Short tag for display: empty for sourced facts, ``[unverified]`` and so on otherwise."""
        return "" if self.evidence is Evidence.SOURCE else f"[{self.evidence.value}]"
