"""Security labels, shaped after NATO ADatP-4774 (confidentiality metadata labels).

A label names its policy (the classification scheme of its level), a classification in that
policy, and three kinds of category: releasable-to parties (PERMISSIVE: a recipient must be one of
them), compartments (RESTRICTIVE: a recipient must hold all of them) and topics (INFORMATIVE:
no access effect by themselves, but scope and need-to-know are decided on them). The originator
and the originator-consent caveat travel with the label; a recipient's equivalent label (4774's
alternative label) is the same label under another policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

__all__ = ["SecurityLabel"]


@dataclass(frozen=True, slots=True)
class SecurityLabel:
    originator: str  # party code of the originating government
    policy: str  # the scheme ``classification`` belongs to (the originator's, or a holder's)
    classification: str  # level id in ``policy`` (for example "gokuhi")
    releasable_to: frozenset[str] = frozenset()  # PERMISSIVE "Releasable To"
    compartments: frozenset[str] = frozenset()  # RESTRICTIVE
    topics: frozenset[str] = frozenset()  # INFORMATIVE, registry vocabulary
    created: datetime | None = None
    originator_consent_required: bool = True  # third-party release needs the originator's consent
    # The equivalent-label chain: (policy, classification) of the originator's own label when
    # this label is an alternative label under another policy.
    original: tuple[str, str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.created is not None and self.created.tzinfo is None:
            raise ValueError("a label's creation time must be timezone-aware")

    @property
    def level_key(self) -> str:
        return f"{self.policy}:{self.classification}"

    @property
    def is_alternative(self) -> bool:
        return self.original is not None

    def remarked(self, policy: str, classification: str) -> SecurityLabel:
        """This label as a recipient marks it under its own ``policy`` (the alternative label)."""
        original = self.original or (self.policy, self.classification)
        if (policy, classification) == original:
            return replace(self, policy=policy, classification=classification, original=None)
        return replace(self, policy=policy, classification=classification, original=original)
