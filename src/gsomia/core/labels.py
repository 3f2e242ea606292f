"""Security labels, shaped after NATO ADatP-4774 (confidentiality metadata labels).

A label names its policy (the classification scheme of its level), a classification in that
policy, and three kinds of category: releasable-to parties (PERMISSIVE: a recipient must be one of
them), compartments (RESTRICTIVE: a recipient must hold all of them) and topics (INFORMATIVE:
no access effect by themselves, but scope and need-to-know are decided on them). The originator
and the originator-consent caveat travel with the label; a recipient's equivalent label (4774's
alternative label) is the same label under another policy.

A label travels as JSON through :meth:`SecurityLabel.to_dict` and :meth:`SecurityLabel.from_dict`:
sets become sorted lists, ``created`` an ISO 8601 string with its offset, ``original`` a
``[policy, classification]`` pair. ``from_dict`` checks the shape only; :func:`validate_label`
checks every reference against a registry. Both raise :class:`InvalidLabelError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gsomia.core.errors import InvalidLabelError

if TYPE_CHECKING:  # only for annotations: the registry module imports much more of the core
    from gsomia.core.registry import Registry

__all__ = ["LABEL_FIELDS", "SecurityLabel", "validate_label"]

# The keys of a label's dict form, in the order to_dict writes them.
LABEL_FIELDS = (
    "originator",
    "policy",
    "classification",
    "releasable_to",
    "compartments",
    "topics",
    "created",
    "originator_consent_required",
    "original",
)
_REQUIRED = frozenset({"originator", "policy", "classification"})


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

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: sorted lists for the sets, ISO 8601 for ``created``."""
        return {
            "originator": self.originator,
            "policy": self.policy,
            "classification": self.classification,
            "releasable_to": sorted(self.releasable_to),
            "compartments": sorted(self.compartments),
            "topics": sorted(self.topics),
            "created": self.created.isoformat() if self.created is not None else None,
            "originator_consent_required": self.originator_consent_required,
            "original": list(self.original) if self.original is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SecurityLabel:
        """The label ``data`` describes, in the shape :meth:`to_dict` writes.

        Raises:
            InvalidLabelError: a key is missing or unknown, or a value has the wrong type or
                form (a naive or malformed ``created``, a duplicate in a list, an empty name).
        """
        if not isinstance(data, Mapping):
            raise InvalidLabelError(f"a label must be an object, not {type(data).__name__}")
        # Unknown keys are refused: a field we do not understand could be a restriction.
        unknown = sorted(str(k) for k in data if k not in LABEL_FIELDS)
        if unknown:
            raise InvalidLabelError(f"unknown label field(s): {', '.join(unknown)}")
        missing = sorted(_REQUIRED - data.keys())
        if missing:
            raise InvalidLabelError(f"label field(s) missing: {', '.join(missing)}")
        consent = data.get("originator_consent_required", True)
        if not isinstance(consent, bool):
            raise InvalidLabelError("label field 'originator_consent_required' must be a boolean")
        return cls(
            originator=_name(data, "originator"),
            policy=_name(data, "policy"),
            classification=_name(data, "classification"),
            releasable_to=_names(data, "releasable_to"),
            compartments=_names(data, "compartments"),
            topics=_names(data, "topics"),
            created=_created(data.get("created")),
            originator_consent_required=consent,
            original=_original(data.get("original")),
        )


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidLabelError(f"{what} must be a non-empty string without surrounding spaces")
    return value


def _name(data: Mapping[str, Any], key: str) -> str:
    return _text(data[key], f"label field {key!r}")


def _names(data: Mapping[str, Any], key: str) -> frozenset[str]:
    values = data.get(key, [])
    if not isinstance(values, list | tuple):
        raise InvalidLabelError(f"label field {key!r} must be a list of strings")
    names = [_text(v, f"each value of label field {key!r}") for v in values]
    if len(set(names)) != len(names):
        raise InvalidLabelError(f"label field {key!r} lists a value twice")
    return frozenset(names)


def _created(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidLabelError("label field 'created' must be an ISO 8601 string or null")
    try:
        created = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidLabelError(f"label field 'created' is not ISO 8601: {value!r}") from e
    if created.tzinfo is None:
        raise InvalidLabelError(f"label field 'created' has no UTC offset: {value!r}")
    return created


def _original(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidLabelError("label field 'original' must be [policy, classification] or null")
    return (
        _text(value[0], "the policy in label field 'original'"),
        _text(value[1], "the classification in label field 'original'"),
    )


def validate_label(registry: Registry, label: SecurityLabel) -> None:
    """Check that every name in ``label`` is known to ``registry``; fail closed on the first.

    Raises:
        InvalidLabelError: an unknown party, scheme, level id or topic, naming the field.
    """
    if label.originator not in registry.parties:
        raise InvalidLabelError(f"label originator {label.originator!r} is not a known party")
    _check_level(registry, label.policy, label.classification, "")
    if label.original is not None:
        _check_level(registry, *label.original, "original ")
    strangers = sorted(label.releasable_to - registry.parties.keys())
    if strangers:
        raise InvalidLabelError(f"label releasable to unknown party {strangers[0]!r}")
    unknown_topics = sorted(label.topics - registry.topics.keys())
    if unknown_topics:
        raise InvalidLabelError(f"label topic {unknown_topics[0]!r} is not in the registry")


def _check_level(registry: Registry, policy: str, level_id: str, which: str) -> None:
    scheme = registry.schemes.get(policy)
    if scheme is None:
        raise InvalidLabelError(f"label {which}policy {policy!r} is not a known scheme")
    if level_id not in {lv.id for lv in scheme.levels}:
        raise InvalidLabelError(
            f"label {which}classification {level_id!r} is not a level id of the {policy} scheme"
        )
