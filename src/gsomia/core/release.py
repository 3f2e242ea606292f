"""Release decisions: may this labelled item go from this holder to this recipient, at this instant?

``decide(registry, request, at)`` is pure: it depends on nothing but its arguments. It considers
the direct routes first (each instrument both parties are party to, bilateral agreements before
arrangements) and, when none allows the release, the routes through a hub (TISA: through the US).
Every rule it applies becomes a :class:`Reason` with its outcome, the article it comes from and a
one-line detail; a refusal always names at least one failed rule. Anything unknown or
undeterminable fails closed.

Rules (docs/decisions.md has the table):

=====================  ========================================================================
``request-valid``      parties, level, topics known; holder and recipient differ
``provenance``         a holder that is not the originator names the instrument it received under
``received-under``     that instrument is in force, or (terminated) the item only goes home
``releasable-to``      each hop's recipient is in the label's REL TO list (or is the originator)
``instrument-party``   the instrument covers the hop's two parties (a hub instrument: via the hub)
``instrument-in-force`` the hop's instrument is in force at ``at``
``scope``              every topic of the label is within the instrument's scope
``level-excluded``     the level is not one the instrument excludes
``equivalence``        the recipient's equivalent level exists in a table that governs the hop
``third-party``        a holder that is not the originator has the originator's consent
``hub-forwarding``     a hub forwards only as its instrument allows (originator consent)
``clearance``          the recipient person's clearance covers the recipient level
``need-to-know``       the recipient person has need-to-know for every topic of the label
``compartments``       the recipient person holds every compartment of the label
=====================  ========================================================================
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gsomia.core.agreements import Clause, Instrument, InstrumentKind
from gsomia.core.errors import ReleaseDeniedError
from gsomia.core.labels import SecurityLabel
from gsomia.core.lifecycle import History, State
from gsomia.core.parties import Level
from gsomia.core.provenance import Provenance
from gsomia.core.registry import Registry

__all__ = [
    "RULES",
    "Decision",
    "Hop",
    "Person",
    "Reason",
    "ReleaseRequest",
    "RouteOption",
    "decide",
    "enforce",
    "holds_until",
]

RULES = (
    "request-valid",
    "provenance",
    "received-under",
    "releasable-to",
    "instrument-party",
    "instrument-in-force",
    "scope",
    "level-excluded",
    "equivalence",
    "third-party",
    "hub-forwarding",
    "clearance",
    "need-to-know",
    "compartments",
)


@dataclass(frozen=True, slots=True)
class Person:
    """The recipient person, where one is named: clearance in the recipient's own scheme."""

    clearance: str | None = None  # a level id of the recipient party's scheme
    need_to_know: frozenset[str] = frozenset()
    compartments: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    label: SecurityLabel
    holder: str  # the party that holds the item now
    recipient: str  # the party it would go to
    person: Person | None = None
    consents: frozenset[str] = frozenset()  # parties whose (originator) consent is on record
    received_under: str | None = None  # the instrument the holder received the item under
    # Only routes under this instrument: how a receiving node re-decides the hop it was sent
    # (the sender chose TISA; the hub must forward under TISA, not under another agreement).
    under: str | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str
    passed: bool
    citation: str  # instrument and article, with an evidence tag when not sourced
    detail: str
    hop: int | None = None  # index of the hop the rule was applied to; None for the request

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "citation": self.citation,
            "detail": self.detail,
            "hop": self.hop,
        }


@dataclass(frozen=True, slots=True)
class Hop:
    sender: str
    recipient: str
    instrument: str
    label: SecurityLabel  # the label as the recipient of this hop marks the item


@dataclass(frozen=True, slots=True)
class RouteOption:
    """One route considered: its hops, the rules applied, and whether it allows the release."""

    route: tuple[str, ...]
    instrument: str
    via_hub: bool
    allowed: bool
    reasons: tuple[Reason, ...]
    hops: tuple[Hop, ...]
    obligations: tuple[str, ...]
    caveats: tuple[str, ...]

    @property
    def failed(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if not r.passed)

    def summary(self) -> str:
        path = "→".join(self.route)
        how = f"{path} under {self.instrument}"
        if self.allowed:
            return f"{how}: allowed"
        first = self.failed[0] if self.failed else None
        return f"{how}: refused ({first.rule}: {first.detail})" if first else f"{how}: refused"


@dataclass(frozen=True, slots=True)
class _Verdict:
    """Everything about a decision that does not depend on the exact instant."""

    allowed: bool
    preflight: tuple[Reason, ...]
    chosen: RouteOption | None
    considered: tuple[RouteOption, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    request: ReleaseRequest
    at: datetime
    registry_hash: str
    hypothetical: bool
    _verdict: _Verdict = field(repr=False)

    @property
    def allowed(self) -> bool:
        return self._verdict.allowed

    def __bool__(self) -> bool:
        return self._verdict.allowed

    @property
    def route(self) -> tuple[str, ...]:
        chosen = self._verdict.chosen
        return chosen.route if chosen else (self.request.holder,)

    @property
    def hops(self) -> tuple[Hop, ...]:
        chosen = self._verdict.chosen
        return chosen.hops if chosen and chosen.allowed else ()

    @property
    def instruments(self) -> tuple[str, ...]:
        return tuple(h.instrument for h in self.hops)

    @property
    def recipient_label(self) -> SecurityLabel | None:
        return self.hops[-1].label if self.hops else None

    @property
    def obligations(self) -> tuple[str, ...]:
        chosen = self._verdict.chosen
        return chosen.obligations if chosen and chosen.allowed else ()

    @property
    def caveats(self) -> tuple[str, ...]:
        chosen = self._verdict.chosen
        return chosen.caveats if chosen else ()

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """The rules applied to the route taken (or to the route that came closest)."""
        chosen = self._verdict.chosen
        return self._verdict.preflight + (chosen.reasons if chosen else ())

    @property
    def routes_considered(self) -> tuple[RouteOption, ...]:
        return self._verdict.considered

    @property
    def failed(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if not r.passed)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready data: what ``gsomia decide --json`` prints and the ledger records."""
        label = self.recipient_label
        return {
            "allowed": self.allowed,
            "at": self.at.isoformat(),
            "route": list(self.route),
            "instruments": list(self.instruments),
            "hops": [
                {
                    "from": h.sender,
                    "to": h.recipient,
                    "instrument": h.instrument,
                    "label": h.label.to_dict(),
                }
                for h in self.hops
            ],
            "recipient_label": label.to_dict() if label else None,
            "obligations": list(self.obligations),
            "caveats": list(self.caveats),
            "reasons": [r.to_dict() for r in self.reasons],
            "routes_considered": [
                {
                    "route": list(o.route),
                    "instrument": o.instrument,
                    "via_hub": o.via_hub,
                    "allowed": o.allowed,
                    "summary": o.summary(),
                }
                for o in self.routes_considered
            ],
            "registry_hash": self.registry_hash,
            "hypothetical": self.hypothetical,
        }


def holds_until(registry: Registry, at: datetime) -> float:
    """The POSIX time up to which a decision made at ``at`` stands (``inf`` if for ever).

    Nothing a decision depends on changes before the registry's next change point (an entry
    into force, a notice taking effect, a suspension), so a stream that decides once per track
    re-decides when the clock reaches it.
    """
    points = _tables(registry).change_points
    i = bisect.bisect_right(points, at.timestamp())
    return points[i] if i < len(points) else math.inf


def enforce(registry: Registry, request: ReleaseRequest, at: datetime) -> Decision:
    """Like :func:`decide`, but a refusal raises :class:`ReleaseDeniedError` with the decision."""
    decision = decide(registry, request, at)
    if not decision.allowed:
        first = decision.failed[0]
        raise ReleaseDeniedError(f"release refused: {first.rule}: {first.detail}", decision)
    return decision


# -- tables precomputed once per registry -----------------------------------------------------


@dataclass(frozen=True)
class _Tables:
    registry: Registry
    levels: Mapping[tuple[str, str], Level]  # (scheme, level id) -> level
    party_of_scheme: Mapping[str, str]
    scheme_of_party: Mapping[str, str | None]
    # (instrument, from party, from level id, to party) -> (to level id, table instrument, row)
    equivalents: Mapping[tuple[str, str, str, str], tuple[str, str, Provenance]]
    direct: Mapping[tuple[str, str], tuple[Instrument, ...]]
    hubbed: Mapping[tuple[str, str], tuple[Instrument, ...]]
    histories: Mapping[str, History]
    change_points: tuple[float, ...]  # POSIX times at which any instrument's standing changes
    life_caveats: Mapping[str, str]  # instrument -> caveat when its lifecycle facts are unverified
    cache: dict[tuple[Any, ...], _Verdict] = field(default_factory=dict)

    def state(self, instrument_id: str, at: datetime) -> tuple[State, History]:
        history = self.histories[instrument_id]
        return history.segment_at(at).state, history


def _build_tables(registry: Registry) -> _Tables:
    levels = {(s.id, lv.id): lv for s in registry.schemes.values() for lv in s.levels}
    party_of_scheme: dict[str, str] = {}
    for party in registry.parties.values():
        if party.scheme:
            party_of_scheme.setdefault(party.scheme, party.code)
    equivalents: dict[tuple[str, str, str, str], tuple[str, str, Provenance]] = {}
    for inst in registry.instruments.values():
        # The instrument's own rows first, then those of the instruments it is protected under.
        sources = [inst, *(registry.instruments[i] for i in inst.protected_under)]
        for table in sources:
            if table.equivalence is None:
                continue
            for row in table.equivalence.rows:
                for a, a_levels in row.levels.items():
                    for b, b_levels in row.levels.items():
                        if a == b or not b_levels:
                            continue
                        for level_id in a_levels:
                            key = (inst.id, a, level_id, b)
                            equivalents.setdefault(key, (b_levels[0], table.id, row.provenance))
    codes = sorted(registry.parties)
    direct: dict[tuple[str, str], tuple[Instrument, ...]] = {}
    hubbed: dict[tuple[str, str], tuple[Instrument, ...]] = {}
    for a in codes:
        for b in codes:
            if a == b:
                continue
            between = registry.instruments_between(a, b)
            # Bilateral, binding agreements before arrangements; a hub instrument carries a
            # direct transfer only when one end is the hub itself.
            direct[(a, b)] = tuple(
                sorted(
                    (i for i in between if i.hub is None or i.hub.party in (a, b)),
                    key=lambda i: (not i.binding, i.hub is not None, len(i.parties), i.id),
                )
            )
            hubbed[(a, b)] = tuple(i for i in between if i.hub and i.hub.party not in (a, b))
    histories = {iid: registry.history(iid) for iid in registry.instruments}
    # As POSIX timestamps: bisecting floats is an order of magnitude cheaper than comparing
    # aware datetimes, and this lookup is on every decision.
    points = sorted({p.timestamp() for h in histories.values() for p in h.change_points})
    return _Tables(
        registry=registry,
        levels=levels,
        party_of_scheme=party_of_scheme,
        scheme_of_party={p.code: p.scheme for p in registry.parties.values()},
        equivalents=equivalents,
        direct=direct,
        hubbed=hubbed,
        histories=histories,
        change_points=tuple(points),
        life_caveats=_life_caveats(registry),
    )


def _life_caveats(registry: Registry) -> dict[str, str]:
    caveats = {}
    for inst in registry.instruments.values():
        unverified = [
            name
            for name in ("entry-into-force", "term", "termination")
            if name in inst.unverified()
        ]
        if unverified:
            caveats[inst.id] = f"{inst.id}: {', '.join(unverified)} clause(s) unverified"
    return caveats


def _tables(registry: Registry) -> _Tables:
    tables: _Tables = registry.compiled("release", _build_tables)
    return tables


# -- the decision -----------------------------------------------------------------------------


def decide(registry: Registry, request: ReleaseRequest, at: datetime) -> Decision:
    """Decide a release. Pure: the same registry, request and instant give the same decision."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("decide() needs a timezone-aware instant")
    tables = _tables(registry)
    # Nothing a decision depends on changes between two change points of the registry's
    # instruments, so a verdict is shared by every instant of one such interval.
    epoch = bisect.bisect_right(tables.change_points, at.timestamp())
    key = (request, epoch)
    verdict = tables.cache.get(key)
    if verdict is None:
        verdict = _decide(tables, request, at)
        if len(tables.cache) >= _CACHE_LIMIT:
            tables.cache.clear()
        tables.cache[key] = verdict
    return Decision(request, at, registry.content_hash, registry.hypothetical, verdict)


_CACHE_LIMIT = 65_536


def _decide(t: _Tables, request: ReleaseRequest, at: datetime) -> _Verdict:
    preflight = _preflight(t, request)
    if any(not r.passed for r in preflight):
        return _Verdict(False, preflight, None, ())
    holder, recipient = request.holder, request.recipient
    considered: list[RouteOption] = []
    under = request.under
    for inst in t.direct.get((holder, recipient), ()):
        if not _may_carry(inst, under):
            continue
        option = _route(t, request, at, inst, (holder, recipient))
        considered.append(option)
        if option.allowed:
            return _Verdict(True, preflight, option, tuple(considered))
    for inst in t.hubbed.get((holder, recipient), ()):
        if not _may_carry(inst, under):
            continue
        assert inst.hub is not None
        option = _route(t, request, at, inst, (holder, inst.hub.party, recipient))
        considered.append(option)
        if option.allowed:
            return _Verdict(True, preflight, option, tuple(considered))
    if not considered:
        scope = f"under {under}" if under else "in the registry"
        reason = Reason(
            "instrument-party",
            False,
            "registry",
            f"no instrument {scope} covers {holder} and {recipient}, directly or through a hub",
        )
        return _Verdict(False, (*preflight, reason), None, ())
    return _Verdict(False, preflight, considered[0], tuple(considered))


def _may_carry(inst: Instrument, under: str | None) -> bool:
    """Whether routing may use ``inst``: the one named, or any but a data link.

    A link (the 2023 missile-warning mechanism) carries only its own data elements, launch
    point, trajectory and impact point, so it is never chosen for an item; the link asks for it
    by name.
    """
    if under is not None:
        return inst.id == under
    return inst.kind is not InstrumentKind.LINK


def _preflight(t: _Tables, request: ReleaseRequest) -> tuple[Reason, ...]:
    """The request is well formed against the registry: parties, level and topics are known."""
    label = request.label
    problems: list[str] = []
    parties = t.registry.parties
    for role, code in (
        ("holder", request.holder),
        ("recipient", request.recipient),
        ("originator", label.originator),
    ):
        if code not in parties:
            problems.append(f"unknown {role} party {code!r}")
    for code in sorted(label.releasable_to - parties.keys()):
        problems.append(f"unknown party {code!r} in REL TO")
    if (label.policy, label.classification) not in t.levels:
        problems.append(f"unknown level {label.classification!r} in policy {label.policy!r}")
    for topic in sorted(label.topics - t.registry.topics.keys()):
        problems.append(f"unknown topic {topic!r}")
    if request.holder == request.recipient:
        problems.append("holder and recipient are the same party")
    if request.received_under and request.received_under not in t.registry.instruments:
        problems.append(f"unknown instrument {request.received_under!r}")
    if request.under and request.under not in t.registry.instruments:
        problems.append(f"unknown instrument {request.under!r}")
    if problems:
        return (Reason("request-valid", False, "registry", "; ".join(problems)),)
    return (
        Reason("request-valid", True, "registry", "parties, level and topics are in the registry"),
    )


def _cite(inst: Instrument, clause: Clause | None, fallback: str = "") -> str:
    if clause is None:
        return f"{inst.id} {fallback}".strip()
    tag = clause.provenance.tag()
    return f"{inst.id} {clause.article}" + (f" {tag}" if tag else "")


def _level_name(t: _Tables, policy: str, level_id: str) -> str:
    level = t.levels.get((policy, level_id))
    return f"{level.native} ({level.english})" if level else f"{policy}:{level_id}"


class _RouteBuilder:
    """Applies the rules hop by hop and collects reasons, obligations and caveats."""

    def __init__(self, t: _Tables, request: ReleaseRequest, at: datetime) -> None:
        self.t = t
        self.request = request
        self.at = at
        self.reasons: list[Reason] = []
        self.obligations: list[str] = []
        self.caveats: list[str] = []

    def check(self, rule: str, passed: bool, citation: str, detail: str, hop: int | None) -> bool:
        self.reasons.append(Reason(rule, passed, citation, detail, hop))
        return passed

    def caveat(self, text: str) -> None:
        if text not in self.caveats:
            self.caveats.append(text)


def _route(
    t: _Tables,
    request: ReleaseRequest,
    at: datetime,
    inst: Instrument,
    route: tuple[str, ...],
) -> RouteOption:
    b = _RouteBuilder(t, request, at)
    label = request.label
    ok = _check_provenance(b, inst, route)
    held = _held_label(b, label, request.holder, request.received_under) if ok else None
    ok = ok and held is not None
    hops: list[Hop] = []
    current = held
    received_under = request.received_under
    for index in range(len(route) - 1):
        if not ok or current is None:
            break
        sender, receiver = route[index], route[index + 1]
        via_hub = len(route) > 2
        next_label = _hop(b, index, inst, sender, receiver, current, received_under, via_hub)
        if next_label is None:
            ok = False
            break
        hops.append(Hop(sender, receiver, inst.id, next_label))
        current = next_label
        received_under = inst.id
    if ok and current is not None and request.person is not None:
        ok = _check_person(b, len(route) - 2, route[-1], current, request.person)
    allowed = ok and all(r.passed for r in b.reasons)
    if allowed and inst.survival and inst.survival.survives:
        b.obligations.append(
            f"protection continues after {inst.id} ends ({_cite(inst, inst.survival.clause)})"
        )
    return RouteOption(
        route=route,
        instrument=inst.id,
        via_hub=len(route) > 2,
        allowed=allowed,
        reasons=tuple(b.reasons),
        hops=tuple(hops),
        obligations=tuple(b.obligations),
        caveats=tuple(b.caveats),
    )


def _check_provenance(b: _RouteBuilder, inst: Instrument, route: tuple[str, ...]) -> bool:
    """A holder that is not the originator must say how it got the item; that must still hold."""
    request = b.request
    originator = request.label.originator
    if request.holder == originator:
        return b.check(
            "provenance", True, "registry", f"{originator} is the originator and holds the item", 0
        )
    if request.received_under is None:
        return b.check(
            "provenance",
            False,
            "registry",
            f"{request.holder} is not the originator and the request does not name the "
            "instrument it received the item under",
            0,
        )
    received = b.t.registry.instruments[request.received_under]
    if request.holder not in received.parties:
        return b.check(
            "provenance",
            False,
            received.id,
            f"{request.holder} is not a party to {received.id}",
            0,
        )
    b.check("provenance", True, received.id, f"{request.holder} received it under {received.id}", 0)
    state, history = b.t.state(received.id, b.at)
    if state is State.IN_FORCE:
        return b.check("received-under", True, received.id, f"{received.id} is in force", 0)
    final = route[-1]
    survival = received.survival
    if state is State.TERMINATED and survival and survival.survives:
        ended = history.segment_at(b.at).start
        when = ended.isoformat() if ended else "?"
        if final == originator:
            return b.check(
                "received-under",
                True,
                _cite(received, survival.clause),
                f"{received.id} ended at {when}; its protection survives and the item goes back "
                f"to its originator {originator}",
                0,
            )
        return b.check(
            "received-under",
            False,
            _cite(received, survival.clause),
            f"{received.id} ended at {when}; what was received under it stays protected and may "
            f"only go back to its originator {originator}",
            0,
        )
    return b.check(
        "received-under",
        False,
        received.id,
        f"{received.id} is {state.value} and gives no basis for holding or passing the item on",
        0,
    )


def _held_label(
    b: _RouteBuilder, label: SecurityLabel, holder: str, received_under: str | None
) -> SecurityLabel | None:
    """The label as the holder marks it (Art. 4(2) of a GSOMIA: its own equivalent level)."""
    scheme = b.t.scheme_of_party.get(holder)
    if scheme is None or label.policy == scheme or received_under is None:
        return label
    policy_party = b.t.party_of_scheme.get(label.policy) or ""
    equivalents = b.t.equivalents
    found = equivalents.get((received_under, policy_party, label.classification, holder))
    hub = b.t.registry.instruments[received_under].hub
    if found is None and hub is not None and hub.party not in (policy_party, holder):
        # Received through a hub (TISA): the marking went originator → hub → holder, each step
        # by the tables the hub instrument is protected under.
        at_hub = equivalents.get((received_under, policy_party, label.classification, hub.party))
        if at_hub is not None:
            found = equivalents.get((received_under, hub.party, at_hub[0], holder))
    if found is None:
        b.check(
            "equivalence",
            False,
            received_under,
            f"{received_under} gives no {holder} equivalent of "
            f"{_level_name(b.t, label.policy, label.classification)}",
            0,
        )
        return None
    return label.remarked(scheme, found[0])


def _hop(
    b: _RouteBuilder,
    index: int,
    inst: Instrument,
    sender: str,
    receiver: str,
    label: SecurityLabel,
    received_under: str | None,
    via_hub: bool,
) -> SecurityLabel | None:
    """Apply the per-hop rules; the recipient's label, or None when the hop is refused."""
    t = b.t
    originator = label.originator
    ok = True

    # Releasability (PERMISSIVE): the recipient must be listed, unless the item goes home.
    if receiver == originator:
        ok &= b.check("releasable-to", True, "label", f"{receiver} is the originator", index)
    elif receiver in label.releasable_to:
        listed = ", ".join(sorted(label.releasable_to))
        ok &= b.check("releasable-to", True, "label", f"{receiver} is in REL TO {listed}", index)
    else:
        listed = ", ".join(sorted(label.releasable_to)) or "nobody"
        ok &= b.check(
            "releasable-to", False, "label", f"{receiver} is not in REL TO ({listed})", index
        )

    # The instrument covers the two parties (a hub instrument only through its hub).
    if inst.hub and inst.hub.party not in (sender, receiver):
        ok &= b.check(
            "instrument-party",
            False,
            _cite(inst, inst.hub.clause),
            f"under {inst.id} {sender} and {receiver} exchange only through {inst.hub.party}",
            index,
        )
    else:
        ok &= b.check(
            "instrument-party",
            True,
            inst.id,
            f"{sender} and {receiver} are parties to {inst.id}",
            index,
        )

    # In force at the instant (or terminated, with the item going home under survival).
    segment = t.histories[inst.id].segment_at(b.at)
    state = segment.state
    life = inst.entry_into_force.clause
    life_caveat = t.life_caveats.get(inst.id)
    if life_caveat:
        b.caveat(life_caveat)
    if state is State.IN_FORCE:
        detail = f"{inst.id} is in force"
        if segment.terminable_claim is not None:
            claim = segment.terminable_claim
            detail += (
                f" ({claim.by} claims it may terminate at any time; "
                f"disputed by {', '.join(claim.disputed_by) or 'nobody'})"
            )
        ok &= b.check("instrument-in-force", True, _cite(inst, life), detail, index)
    elif (
        state is State.TERMINATED
        and receiver == originator
        and inst.id == received_under
        and inst.survival is not None
        and inst.survival.survives
    ):
        ok &= b.check(
            "instrument-in-force",
            True,
            _cite(inst, inst.survival.clause),
            f"{inst.id} has ended, but the item goes back to its originator under survival",
            index,
        )
    else:
        when = f" since {segment.start.isoformat()}" if segment.start else ""
        cause = f" ({segment.cause})" if segment.cause else ""
        ok &= b.check(
            "instrument-in-force",
            False,
            _cite(inst, life),
            f"{inst.id} is {state.value}{when}{cause}",
            index,
        )

    # Scope: every topic of the label.
    scope = inst.scope
    if scope is None:
        ok &= b.check(
            "scope",
            False,
            f"{inst.id} [unverified]",
            f"{inst.id}'s scope is not in the registry",
            index,
        )
    elif scope.topics is None:
        ok &= b.check(
            "scope", True, _cite(inst, scope.clause), f"{inst.id} covers every topic", index
        )
    elif not label.topics:
        ok &= b.check(
            "scope",
            False,
            _cite(inst, scope.clause),
            f"the label names no topic, so {inst.id}'s scope ({', '.join(scope.topics)}) "
            "cannot be confirmed",
            index,
        )
    else:
        outside = sorted(label.topics - set(scope.topics))
        if outside:
            ok &= b.check(
                "scope",
                False,
                _cite(inst, scope.clause),
                f"{', '.join(outside)} outside {inst.id}'s scope ({', '.join(scope.topics)})",
                index,
            )
        else:
            ok &= b.check(
                "scope",
                True,
                _cite(inst, scope.clause),
                f"{', '.join(sorted(label.topics))} within {inst.id}'s scope",
                index,
            )

    # Levels the instrument excludes altogether: the item's, then (below) the recipient's.
    eq = inst.equivalence
    excluded = frozenset(eq.excluded) if eq else frozenset()
    excluded_citation = _cite(inst, eq.excluded_clause if eq else None, "level table")
    keys = {label.level_key}
    if label.original:
        keys.add(f"{label.original[0]}:{label.original[1]}")
    hit = sorted(keys & excluded)
    if hit:
        names = ", ".join(_level_name(t, *k.split(":", 1)) for k in hit)
        ok &= b.check(
            "level-excluded", False, excluded_citation, f"{names} is outside {inst.id}", index
        )
    else:
        ok &= b.check(
            "level-excluded",
            True,
            excluded_citation,
            f"{_level_name(t, label.policy, label.classification)} is not excluded",
            index,
        )
    next_label = _equivalent(b, index, inst, receiver, label)
    if next_label is not None and next_label.level_key in excluded:
        ok &= b.check(
            "level-excluded",
            False,
            excluded_citation,
            f"its {receiver} equivalent "
            f"{_level_name(t, next_label.policy, next_label.classification)} is outside {inst.id}",
            index,
        )
    ok &= next_label is not None

    # Third-party release: a holder that is not the originator needs its consent.
    if sender == originator or receiver == originator:
        who = sender if sender == originator else receiver
        ok &= b.check(
            "hub-forwarding" if via_hub and index > 0 else "third-party",
            True,
            "label",
            f"{who} is the originator: no consent needed",
            index,
        )
    else:
        ok &= _check_consent(b, index, inst, sender, received_under, label, via_hub)

    if ok and next_label is not None and receiver != originator:
        government = t.registry.parties[originator].government
        level = _level_name(t, next_label.policy, next_label.classification)
        article = _cite(inst, eq.clause if eq else None, "level table")
        b.obligations.append(
            f"{receiver} marks it {level}, as provided by {government} ({article})"
        )
        if via_hub and index == 0 and inst.hub and inst.hub.consent_to_forward:
            b.obligations.append(
                f"{receiver} forwards it only with the consent of {originator} "
                f"({_cite(inst, inst.hub.clause)})"
            )
    return next_label if ok else None


def _equivalent(
    b: _RouteBuilder, index: int, inst: Instrument, receiver: str, label: SecurityLabel
) -> SecurityLabel | None:
    t = b.t
    target = t.scheme_of_party.get(receiver)
    if target is None:
        b.check(
            "equivalence",
            False,
            f"{inst.id} [unverified]",
            f"{receiver} has no classification scheme in the registry",
            index,
        )
        return None
    if target == label.policy:
        b.check("equivalence", True, inst.id, f"already in {receiver}'s scheme", index)
        return label
    if label.original is not None and label.original[0] == target:
        # Going home: the originator's own marking is restored, not re-derived.
        b.check(
            "equivalence",
            True,
            inst.id,
            f"back to the originator's own marking "
            f"{_level_name(t, label.original[0], label.original[1])}",
            index,
        )
        return label.remarked(*label.original)
    policy_party = t.party_of_scheme.get(label.policy, "")
    found = t.equivalents.get((inst.id, policy_party, label.classification, receiver))
    eq = inst.equivalence
    if found is None:
        b.check(
            "equivalence",
            False,
            _cite(inst, eq.clause if eq else None, "level table"),
            f"no {receiver} equivalent of {_level_name(t, label.policy, label.classification)} "
            f"under {inst.id}",
            index,
        )
        return None
    level_id, table_id, row = found
    table = t.registry.instruments[table_id]
    tag = row.tag()
    citation = _cite(table, table.equivalence.clause if table.equivalence else None)
    if tag and tag not in citation:
        citation += f" {tag}"
    if not row.verified:
        b.caveat(f"{table_id} level table: {row.evidence.value} row ({row.source})")
    b.check(
        "equivalence",
        True,
        citation,
        f"{_level_name(t, label.policy, label.classification)} → "
        f"{_level_name(t, target, level_id)}",
        index,
    )
    return label.remarked(target, level_id)


def _check_consent(
    b: _RouteBuilder,
    index: int,
    inst: Instrument,
    sender: str,
    received_under: str | None,
    label: SecurityLabel,
    via_hub: bool,
) -> bool:
    originator = label.originator
    consented = originator in b.request.consents
    t = b.t
    clause: Clause | None
    if via_hub and index > 0 and inst.hub is not None:
        rule_name, clause = "hub-forwarding", inst.hub.clause
        needed = inst.hub.consent_to_forward or label.originator_consent_required
        governing = inst
        what = f"{sender} forwards under {inst.id} only with {originator}'s consent"
    else:
        rule_name = "third-party"
        governing = t.registry.instruments[received_under] if received_under else inst
        third = governing.third_party
        clause = third.clause if third else None
        # Fail closed: with no known third-party rule, consent is required.
        needed = third is None or third.consent_required or label.originator_consent_required
        form = third.form if third else "the originator's consent"
        what = f"{sender} is not the originator: {form} ({originator}) is required"
    citation = _cite(governing, clause, "third-party rule")
    if not needed:
        return b.check(rule_name, True, citation, "no consent required", index)
    if b.request.holder == originator:
        # The originator itself routes the item to this recipient: that act is its consent.
        final = b.request.recipient
        return b.check(
            rule_name,
            True,
            citation,
            f"{originator}, the originator, sends it on to {final} itself: that is its consent",
            index,
        )
    if consented:
        b.obligations.append(f"keep {originator}'s consent on record ({citation})")
        return b.check(rule_name, True, citation, f"{originator}'s consent is on record", index)
    return b.check(rule_name, False, citation, f"{what}; none is on record", index)


def _check_person(
    b: _RouteBuilder, index: int, receiver: str, label: SecurityLabel, person: Person
) -> bool:
    t = b.t
    ok = True
    scheme = t.scheme_of_party.get(receiver)
    level = t.levels.get((label.policy, label.classification))
    clearance = t.levels.get((scheme or "", person.clearance or ""))
    if level is None or clearance is None:
        ok &= b.check(
            "clearance",
            False,
            "registry",
            f"the recipient person has no clearance in {receiver}'s scheme",
            index,
        )
    elif clearance.rank >= level.rank:
        ok &= b.check(
            "clearance",
            True,
            "personnel clearance",
            f"clearance {clearance.native} covers {level.native}",
            index,
        )
    else:
        ok &= b.check(
            "clearance",
            False,
            "personnel clearance",
            f"clearance {clearance.native} is below {level.native}",
            index,
        )
    missing = sorted(label.topics - person.need_to_know)
    if not label.topics:
        ok &= b.check(
            "need-to-know",
            False,
            "need-to-know",
            "the label names no topic, so need-to-know cannot be established",
            index,
        )
    elif missing:
        ok &= b.check(
            "need-to-know",
            False,
            "need-to-know",
            f"no need-to-know for {', '.join(missing)}",
            index,
        )
    else:
        ok &= b.check(
            "need-to-know",
            True,
            "need-to-know",
            f"need-to-know for {', '.join(sorted(label.topics))}",
            index,
        )
    lacking = sorted(label.compartments - person.compartments)
    if lacking:
        ok &= b.check("compartments", False, "label", f"not read into {', '.join(lacking)}", index)
    elif label.compartments:
        ok &= b.check("compartments", True, "label", "read into every compartment", index)
    if ok:
        b.obligations.append(
            f"access only for persons cleared to {level.native if level else '?'} with need-to-know"
        )
    return ok


def equivalent_label(
    registry: Registry, label: SecurityLabel, instrument_id: str, to_party: str
) -> SecurityLabel | None:
    """``label`` as ``to_party`` marks it under ``instrument_id`` (through its hub if need be);
    None when no table gives an equivalent. Used to apply an originator's reclassification."""
    t = _tables(registry)
    scheme = t.scheme_of_party.get(to_party)
    if scheme is None:
        return None
    if label.policy == scheme:
        return label
    if label.original is not None and label.original[0] == scheme:
        return label.remarked(*label.original)
    source = t.party_of_scheme.get(label.policy, "")
    found = t.equivalents.get((instrument_id, source, label.classification, to_party))
    hub = registry.instruments[instrument_id].hub if instrument_id in registry.instruments else None
    if found is None and hub is not None and hub.party not in (source, to_party):
        at_hub = t.equivalents.get((instrument_id, source, label.classification, hub.party))
        if at_hub is not None:
            found = t.equivalents.get((instrument_id, hub.party, at_hub[0], to_party))
    return label.remarked(scheme, found[0]) if found else None
