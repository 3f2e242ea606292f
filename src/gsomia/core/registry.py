"""The immutable registry: parties, schemes, topics and instruments, with a content hash.

A Registry is built from validated records (see :mod:`gsomia.loader` for the files) and checks
every cross-reference once, so that nothing downstream meets a dangling id. Its content hash is
SHA-256 over the canonical JSON of the records it was built from, so a decision recorded with the
hash can be replayed against exactly the same law.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gsomia.core.agreements import Event, Instrument
from gsomia.core.errors import (
    RegistryError,
    UnknownEventError,
    UnknownInstrumentError,
    UnknownPartyError,
    UnknownTopicError,
)
from gsomia.core.lifecycle import History, WhatIf, resolve
from gsomia.core.parties import ClassificationScheme, Level, Party
from gsomia.core.provenance import Provenance

__all__ = ["Registry", "Topic", "canonical_hash"]


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    name: str
    provenance: Provenance


def canonical_hash(records: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 of the canonical JSON of ``records`` (sorted keys, no spaces, UTF-8)."""
    blob = json.dumps(
        sorted(
            (json.dumps(r, sort_keys=True, ensure_ascii=False, default=str) for r in records),
        ),
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True, repr=False)
class Registry:
    parties: Mapping[str, Party]
    schemes: Mapping[str, ClassificationScheme]
    topics: Mapping[str, Topic]
    instruments: Mapping[str, Instrument]
    content_hash: str
    # A what-if scenario: per instrument, the events removed and added. Empty for the record.
    scenario: Mapping[str, WhatIf] = field(default_factory=lambda: MappingProxyType({}))
    _histories: dict[str, History] = field(default_factory=dict, repr=False, compare=False)
    _compiled: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        *,
        parties: Iterable[Party],
        schemes: Iterable[ClassificationScheme],
        topics: Iterable[Topic],
        instruments: Iterable[Instrument],
        content_hash: str,
    ) -> Registry:
        registry = cls(
            parties=MappingProxyType({p.code: p for p in parties}),
            schemes=MappingProxyType({s.id: s for s in schemes}),
            topics=MappingProxyType({t.id: t for t in topics}),
            instruments=MappingProxyType(
                {i.id: i for i in sorted(instruments, key=lambda i: i.id)}
            ),
            content_hash=content_hash,
        )
        registry._check_references()
        return registry

    def __repr__(self) -> str:
        scenario = f", what-if on {', '.join(self.scenario)}" if self.scenario else ""
        return (
            f"<Registry {self.content_hash[:12]}: {len(self.instruments)} instruments, "
            f"{len(self.parties)} parties{scenario}>"
        )

    # -- lookups ----------------------------------------------------------------------------

    def party(self, code: str) -> Party:
        found = self.parties.get(code.upper())
        if found is None:
            raise UnknownPartyError(code, self.parties)
        return found

    def instrument(self, instrument_id: str) -> Instrument:
        found = self.instruments.get(instrument_id) or self.instruments.get(instrument_id.upper())
        if found is None:
            raise UnknownInstrumentError(instrument_id, self.instruments)
        return found

    def topic(self, topic_id: str) -> Topic:
        found = self.topics.get(topic_id)
        if found is None:
            raise UnknownTopicError(topic_id, self.topics)
        return found

    def scheme_of(self, party_code: str) -> ClassificationScheme | None:
        party = self.party(party_code)
        return self.schemes.get(party.scheme) if party.scheme else None

    def level(self, party_code: str, name: str) -> Level:
        """The level ``name`` of the scheme ``party_code`` marks with."""
        scheme = self.scheme_of(party_code)
        if scheme is None:
            raise RegistryError(f"party {party_code} has no classification scheme in the registry")
        return scheme.level(name)

    def level_by_key(self, key: str) -> Level:
        scheme_id, _, level_id = key.partition(":")
        scheme = self.schemes.get(scheme_id)
        if scheme is None:
            raise RegistryError(f"unknown classification scheme {scheme_id!r} in {key!r}")
        return scheme.level(level_id)

    def history(self, instrument_id: str, whatif: WhatIf | None = None) -> History:
        """The resolved history of an instrument under this registry's scenario (or ``whatif``).

        The scenario's history is computed once and kept: decisions ask for it constantly.
        """
        instrument = self.instrument(instrument_id)
        if whatif is not None and not whatif.is_empty:
            return resolve(instrument, whatif)
        cached = self._histories.get(instrument.id)
        if cached is None:
            cached = resolve(instrument, self.scenario.get(instrument.id))
            self._histories[instrument.id] = cached
        return cached

    def what_if(
        self,
        without: Iterable[str] = (),
        added: Mapping[str, Iterable[Event]] | None = None,
    ) -> Registry:
        """This registry under a hypothetical history.

        ``without`` names recorded events to leave out, in whichever instrument records them;
        ``added`` maps instrument ids to hypothetical events. The result has its own content hash
        (the base hash and the scenario), so a decision made under it is never mistaken for one
        made under the record.
        """
        removed = frozenset(without)
        by_instrument: dict[str, set[str]] = {}
        for event_id in sorted(removed):
            holders = [i.id for i in self.instruments.values() if i.event(event_id) is not None]
            if not holders:
                known = {e.id for i in self.instruments.values() for e in i.events}
                raise UnknownEventError(event_id, known)
            for holder in holders:
                by_instrument.setdefault(holder, set()).add(event_id)
        additions = {self.instrument(k).id: tuple(v) for k, v in (added or {}).items()}
        scenario = {
            iid: WhatIf(frozenset(by_instrument.get(iid, ())), additions.get(iid, ()))
            for iid in sorted(set(by_instrument) | set(additions))
        }
        if not scenario:
            return self
        description = canonical_hash(
            [{"base": self.content_hash}]
            + [
                {
                    "instrument": iid,
                    "without": sorted(w.without),
                    "added": [e.to_dict() for e in w.added],
                }
                for iid, w in scenario.items()
            ]
        )
        return Registry(
            parties=self.parties,
            schemes=self.schemes,
            topics=self.topics,
            instruments=self.instruments,
            content_hash=description,
            scenario=MappingProxyType(scenario),
        )

    @property
    def hypothetical(self) -> bool:
        return bool(self.scenario)

    def compiled(self, key: str, build: Callable[[Registry], Any]) -> Any:
        """A precomputation over this registry, built once (decision tables live here)."""
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = build(self)
        return found

    def instruments_between(self, a: str, b: str) -> list[Instrument]:
        """The instruments to which both parties are party, in id order."""
        return [i for i in self.instruments.values() if a in i.parties and b in i.parties]

    # -- validation -------------------------------------------------------------------------

    def _check_references(self) -> None:
        for party in self.parties.values():
            if party.scheme and party.scheme not in self.schemes:
                raise RegistryError(f"party {party.code}: unknown scheme {party.scheme!r}")
        for inst in self.instruments.values():
            self._check_instrument(inst)

    def _check_instrument(self, inst: Instrument) -> None:
        where = inst.source_file or inst.id

        def fail(path: str, message: str) -> RegistryError:
            return RegistryError(f"{where}: {path}: {message}")

        for i, code in enumerate(inst.parties):
            if code not in self.parties:
                raise fail(f"parties[{i}]", f"unknown party {code!r}")
        if inst.hub and inst.hub.party not in inst.parties:
            raise fail("hub.party", f"{inst.hub.party!r} is not a party to the instrument")
        for i, other in enumerate(inst.protected_under):
            if other not in self.instruments:
                raise fail(f"protected_under[{i}]", f"unknown instrument {other!r}")
        if inst.scope and inst.scope.topics is not None:
            for i, topic in enumerate(inst.scope.topics):
                if topic not in self.topics:
                    raise fail(f"scope.topics[{i}]", f"unknown topic {topic!r}")
        if inst.equivalence:
            for r, row in enumerate(inst.equivalence.rows):
                for code, level_ids in row.levels.items():
                    if code not in inst.parties:
                        raise fail(f"equivalence.rows[{r}].levels", f"{code} is not a party")
                    scheme = self.scheme_of(code)
                    if scheme is None:
                        raise fail(f"equivalence.rows[{r}].levels.{code}", "party has no scheme")
                    for level_id in level_ids:
                        if scheme.find(level_id) is None:
                            raise fail(
                                f"equivalence.rows[{r}].levels.{code}",
                                f"unknown level {level_id!r} in the {scheme.id} scheme",
                            )
            for i, key in enumerate(inst.equivalence.excluded):
                try:
                    self.level_by_key(key)
                except Exception as e:  # the one message should name the field
                    raise fail(f"equivalence.excluded[{i}]", str(e)) from e
        for i, event in enumerate(inst.events):
            if event.by is not None and event.by not in inst.parties:
                raise fail(f"events[{i}].by", f"{event.by!r} is not a party")
            for code in event.disputed_by:
                if code not in inst.parties:
                    raise fail(f"events[{i}].disputed_by", f"{code!r} is not a party")
        ids = [e.id for e in inst.events]
        if len(ids) != len(set(ids)):
            dup = next(x for x in ids if ids.count(x) > 1)
            raise fail("events", f"event id {dup!r} is used twice")
