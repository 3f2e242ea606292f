"""Release decisions per second, single thread: gsomia's ``decide`` against the same rules in Cedar.

    .venv/bin/python bench/decide.py            # full run (a few minutes at most)
    .venv/bin/python bench/decide.py --quick    # under 30 s
    .venv/bin/python bench/decide.py --json     # one JSON object on stdout, nothing else

The workload is seeded and mixed: requests over JPN, KOR and USA holders and recipients; labels of
random levels, topics, REL TO lists, compartments and consent caveats; originators' consent on
record sometimes; ``received_under`` for holders that are not the originator (now and then one
that gives no basis); a recipient person sometimes; instants spread over 2014-2025 (a tenth of them
around the 2019 lapse); half on the recorded registry and half on the what-if in which the ROK's
2019 suspension never happened and JPN-KOR-GSOMIA terminated at 2019-11-23T00:00+09:00. A quarter
of the requests are JPN or KOR items on North Korea going to the other, the TISA case. The mix
(direct allows, hub routes, refusals by first failed rule) is reported as gsomia decided it.
The exit status is 1 when Cedar and gsomia disagree on any request.

Engines, each timed over several repetitions and quoted as the median (the machine is shared):

- ``gsomia warm``: the N distinct requests replayed, so the verdict cache (request, interval
  between instrument change points) is used: a node deciding the same kinds of request again.
- ``gsomia cold``: the verdict cache emptied before every decision: full rule evaluation.
- ``cedar single``: one ``cedarpy.is_authorized`` call per request.
- ``cedar batch``: one ``cedarpy.is_authorized_batch`` call for all the requests.

Cedar gets its best case: policies, schema and entities are parsed once into cedarpy handles,
the request dicts are built before the clock starts (the cost of building them is reported
separately as ``cedar request build``), and no schema is passed at evaluation time (the policies
are validated against bench/cedar/release.cedarschema once, at start-up). What the harness
precomputes for Cedar and what Cedar decides itself is written at the top of
bench/cedar/release.cedar; in short, the harness gives Cedar the instruments' states at the
instant, the candidate routes for the pair of parties (topology only) and the static level
tables composed along each path, and Cedar applies every rule.

Every request's Cedar verdict is compared with gsomia's ``Decision.allowed``; the agreement rate
and any disagreements are reported. Performance is never asserted by tests: the integration test
runs ``--quick --json`` and checks the keys and the agreement.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cedarpy
from rich.console import Console
from rich.table import Table

from gsomia import load_registry
from gsomia.core.agreements import InstrumentKind
from gsomia.core.labels import SecurityLabel
from gsomia.core.lifecycle import History, State
from gsomia.core.registry import Registry
from gsomia.core.release import Person, ReleaseRequest, _tables, decide

CEDAR_DIR = Path(__file__).resolve().parent / "cedar"
POLICIES = CEDAR_DIR / "release.cedar"
SCHEMA = CEDAR_DIR / "release.cedarschema"

PARTIES = ("JPN", "KOR", "USA")
TOPICS = ("dprk-nuclear", "dprk-missile", "dprk-military", "prc-maritime", "other")
TOPIC_WEIGHTS = (4, 4, 1, 1, 1)
COMPARTMENTS = ("SI", "TK")
LAPSE = datetime(2019, 11, 23, tzinfo=UTC) - timedelta(hours=9)  # 00:00 in Seoul
START = datetime(2014, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)
WHAT_IF = ("kor-notice-suspension-2019",)

TARGET_RATE = 200_000  # gsomia warm, decisions/s
TARGET_RATIO = 10.0  # gsomia warm over cedar batch

# Sizes: distinct requests; requests timed per repetition for the slow engines; repetitions.
FULL = {"requests": 20_000, "cold": 5_000, "single": 5_000, "batch": 20_000, "reps": 7}
QUICK = {"requests": 4_000, "cold": 1_500, "single": 1_500, "batch": 4_000, "reps": 5}

ENGINES = (
    "gsomia_warm",
    "gsomia_cold",
    "cedar_single",
    "cedar_batch",
    "cedar_floor",
    "cedar_request_build",
)


@dataclass(frozen=True, slots=True)
class Case:
    """One request of the workload: which registry, the request and the instant."""

    registry: str  # "recorded" or "lapsed"
    request: ReleaseRequest
    at: datetime


# -- the workload -----------------------------------------------------------------------------


def modelled_instruments(registry: Registry) -> list[str]:
    """The instruments among the three parties that can carry an item (the ones Cedar is
    given): data links are never chosen for items, as in gsomia's routing."""
    return sorted(
        i.id
        for i in registry.instruments.values()
        if set(i.parties) <= set(PARTIES) and i.kind is not InstrumentKind.LINK
    )


def make_workload(registry: Registry, n: int, seed: int) -> list[Case]:
    """``n`` distinct, seeded requests over JPN, KOR and USA; see the module docstring."""
    rng = random.Random(seed)
    instruments = modelled_instruments(registry)
    party_of = {iid: registry.instruments[iid].parties for iid in instruments}
    levels = {p: [lv.id for lv in registry.schemes[p].levels] for p in PARTIES}
    span = (END - START).total_seconds()
    seen: set[Case] = set()
    cases: list[Case] = []
    while len(cases) < n:
        # A quarter of the requests are shaped for TISA (JPN and KOR items on North Korea going
        # to each other): the hub route is taken only when the direct agreement gives no route.
        trilateral = rng.random() < 0.25
        originator = rng.choice(("JPN", "KOR") if trilateral else PARTIES)
        others = [p for p in PARTIES if p != originator]
        topics: frozenset[str] = frozenset()
        if trilateral:
            topics = frozenset(rng.sample(TOPICS[:2], rng.choice((1, 1, 2))))
        elif rng.random() >= 0.08:
            topics = frozenset(rng.choices(TOPICS, TOPIC_WEIGHTS, k=rng.choice((1, 1, 2))))
        compartments = frozenset({rng.choice(COMPARTMENTS)}) if rng.random() < 0.15 else frozenset()
        label = SecurityLabel(
            originator=originator,
            policy=originator,
            classification=rng.choice(levels[originator]),
            releasable_to=frozenset(
                p for p in others if rng.random() < (0.9 if trilateral else 0.75)
            ),
            compartments=compartments,
            topics=topics,
            originator_consent_required=rng.random() < 0.85,
        )
        holder = originator if trilateral or rng.random() < 0.65 else rng.choice(others)
        recipient = rng.choice(
            [p for p in PARTIES if p not in (holder, "USA" if trilateral else "")]
        )
        received_under = None
        if holder != originator:
            roll = rng.random()
            if roll < 0.85:
                covering = [i for i in instruments if {holder, originator} <= set(party_of[i])]
                received_under = rng.choice(covering)
            elif roll < 0.95:
                received_under = rng.choice(instruments)  # may not cover the holder at all
        person = None
        if rng.random() < 0.3:
            cleared = rng.choice([*levels[recipient], None])
            need = set(topics) if rng.random() < 0.75 else set()
            need |= {t for t in TOPICS if rng.random() < 0.2}
            held = compartments if rng.random() < 0.7 else frozenset()
            person = Person(cleared, frozenset(need), held)
        consents = (
            frozenset({originator}) if rng.random() < (0.8 if trilateral else 0.5) else frozenset()
        )
        if rng.random() < 0.1:
            at = LAPSE + timedelta(seconds=rng.uniform(-3 * 86_400, 3 * 86_400))
        else:
            at = START + timedelta(seconds=rng.uniform(0, span))
        which = "recorded" if rng.random() < 0.5 else "lapsed"
        request = ReleaseRequest(label, holder, recipient, person, consents, received_under)
        case = Case(which, request, at.replace(microsecond=0))
        if case not in seen:
            seen.add(case)
            cases.append(case)
    return cases


# -- Cedar: static entities and per-request translation --------------------------------------


def _ent(kind: str, uid: str) -> dict[str, Any]:
    return {"__entity": {"type": kind, "id": uid}}


class CedarModel:
    """The registry's static data as Cedar entities, and requests translated to Cedar requests.

    Static (built once): parties, levels with their ranks, the four instruments with their
    clauses, and the Chain entities: the registry's level tables composed along every path a
    request can take (the holder's own marking under the instrument it received under, then the
    hops of a route). Per request (``request``): the instruments' states at the instant, the
    candidate routes for the pair of parties, the id of each route's chain (spelled out, not
    looked up), and the label, consents, person and received-under instrument as context.
    """

    def __init__(self, registries: dict[str, Registry]) -> None:
        base = registries["recorded"]
        self.instruments = modelled_instruments(base)
        self.scheme_of = {p: base.parties[p].scheme for p in PARTIES}
        self.party_of_scheme = {s: p for p, s in self.scheme_of.items()}
        self.equivalents = self._equivalents(base)
        self.hubs = {
            iid: hub.party for iid in self.instruments if (hub := base.instruments[iid].hub)
        }
        self.routes = self._routes(base)
        self.histories: dict[str, dict[str, History]] = {
            name: {iid: reg.history(iid) for iid in self.instruments}
            for name, reg in registries.items()
        }
        self.entities = self._entities(base)

    # The level tables: an instrument's own rows, then those of the instruments it is protected
    # under (TISA para 3). (instrument, from party, level id, to party) -> to level id.
    def _equivalents(self, reg: Registry) -> dict[tuple[str, str, str, str], str]:
        table: dict[tuple[str, str, str, str], str] = {}
        for iid in self.instruments:
            inst = reg.instruments[iid]
            for source in (inst, *(reg.instruments[i] for i in inst.protected_under)):
                if source.equivalence is None:
                    continue
                for row in source.equivalence.rows:
                    for a, a_levels in row.levels.items():
                        for b, b_levels in row.levels.items():
                            if a != b and b_levels:
                                for level in a_levels:
                                    table.setdefault((iid, a, level, b), b_levels[0])
        return table

    # Topology: for each ordered pair, the direct instruments (binding first; a hub instrument
    # only with the hub at one end) and the hub instruments (holder -> hub -> recipient).
    def _routes(
        self, reg: Registry
    ) -> dict[tuple[str, str], tuple[list[str], list[tuple[str, str]]]]:
        routes: dict[tuple[str, str], tuple[list[str], list[tuple[str, str]]]] = {}
        for a in PARTIES:
            for b in PARTIES:
                if a == b:
                    continue
                between = [reg.instruments[i] for i in self.instruments]
                between = [i for i in between if a in i.parties and b in i.parties]
                direct = sorted(
                    (i for i in between if i.hub is None or i.hub.party in (a, b)),
                    key=lambda i: (not i.binding, i.hub is not None, len(i.parties), i.id),
                )
                hubbed = [
                    (i.id, i.hub.party) for i in between if i.hub and i.hub.party not in (a, b)
                ]
                if len(direct) > 2 or len(hubbed) > 1:
                    raise SystemExit(f"the Cedar model has two direct and one hub slot: {a}->{b}")
                routes[(a, b)] = ([i.id for i in direct], hubbed)
        return routes

    def _walk(
        self, start: tuple[str, str], steps: Sequence[tuple[str, str]]
    ) -> tuple[set[str], str] | None:
        """The markings along ``steps`` (instrument, receiving party): every level the item
        carries, and the last one; None where a step has no equivalent level."""
        current, original = start, None
        carried = {f"{current[0]}:{current[1]}"}
        for inst, party in steps:
            target = self.scheme_of[party]
            if target == current[0]:
                continue
            if original is not None and original[0] == target:
                current, original = original, None  # going home: the originator's own marking
            else:
                sender = self.party_of_scheme[current[0]]
                found = self.equivalents.get((inst, sender, current[1], party))
                hub = self.hubs.get(inst)
                if found is None and hub is not None and hub not in (sender, party):
                    # Received through a hub: the marking went originator -> hub -> holder.
                    at_hub = self.equivalents.get((inst, sender, current[1], hub))
                    if at_hub is not None:
                        found = self.equivalents.get((inst, hub, at_hub, party))
                if found is None:
                    return None
                original = original or current
                current = (target, found)
                if current == original:
                    original = None
            carried.add(f"{current[0]}:{current[1]}")
        return carried, f"{current[0]}:{current[1]}"

    @staticmethod
    def chain_id(level: str, steps: Iterable[tuple[str, str]]) -> str:
        return level + "".join(f"|{inst}>{party}" for inst, party in steps)

    def _entities(self, reg: Registry) -> list[dict[str, Any]]:
        def entity(kind: str, uid: str, attrs: dict[str, Any]) -> dict[str, Any]:
            return {"uid": {"type": kind, "id": uid}, "attrs": attrs, "parents": []}

        out = [entity("Party", p, {}) for p in PARTIES]
        starts: list[tuple[str, str]] = []
        for p in PARTIES:
            for lv in reg.schemes[self.scheme_of[p]].levels:
                out.append(entity("Level", f"{self.scheme_of[p]}:{lv.id}", {"rank": lv.rank}))
                starts.append((self.scheme_of[p], lv.id))
        for iid in self.instruments:
            inst = reg.instruments[iid]
            attrs: dict[str, Any] = {
                "parties": [_ent("Party", p) for p in inst.parties],
                "hub_consent_to_forward": bool(inst.hub and inst.hub.consent_to_forward),
                "has_scope": inst.scope is not None,
                "all_topics": inst.scope is not None and inst.scope.topics is None,
                "scope_topics": list(inst.scope.topics or ()) if inst.scope else [],
                "excluded": list(inst.equivalence.excluded) if inst.equivalence else [],
                "has_third_party_rule": inst.third_party is not None,
                "third_party_consent_required": bool(
                    inst.third_party and inst.third_party.consent_required
                ),
                "survives": bool(inst.survival and inst.survival.survives),
            }
            if inst.hub is not None:
                attrs["hub"] = _ent("Party", inst.hub.party)
            out.append(entity("Instrument", iid, attrs))
        # Every path: an optional held step (received under, holder), then a route's hops.
        paths: set[tuple[tuple[str, str], ...]] = set()
        for (holder, recipient), (direct, hubbed) in self.routes.items():
            hop_sets = [[(i, recipient)] for i in direct]
            hop_sets += [[(i, hub), (i, recipient)] for i, hub in hubbed]
            for hops in hop_sets:
                paths.add(tuple(hops))
                for received in self.instruments:
                    paths.add(((received, holder), *hops))
        chains = 0
        for start in starts:
            for path in sorted(paths):
                walked = self._walk(start, path)
                if walked is None:
                    continue
                carried, last = walked
                uid = self.chain_id(f"{start[0]}:{start[1]}", path)
                out.append(
                    entity("Chain", uid, {"levels": sorted(carried), "last": _ent("Level", last)})
                )
                chains += 1
        self.chains = chains
        return out

    def request(self, case: Case) -> dict[str, Any]:
        """The Cedar request for ``case`` (see bench/cedar/release.cedar for the split)."""
        req, label = case.request, case.request.label
        histories = self.histories[case.registry]
        in_force, terminated = [], []
        for iid, history in histories.items():
            state = history.segment_at(case.at).state
            if state is State.IN_FORCE:
                in_force.append(_ent("Instrument", iid))
            elif state is State.TERMINATED:
                terminated.append(_ent("Instrument", iid))
        context: dict[str, Any] = {
            "label": {
                "originator": _ent("Party", label.originator),
                "rel_to": [_ent("Party", p) for p in sorted(label.releasable_to)],
                "topics": sorted(label.topics),
                "compartments": sorted(label.compartments),
                "consent_required": label.originator_consent_required,
            },
            "consents": [_ent("Party", p) for p in sorted(req.consents)],
            "in_force": in_force,
            "terminated": terminated,
        }
        held: list[tuple[str, str]] = []
        if req.received_under is not None:
            context["received_under"] = _ent("Instrument", req.received_under)
            held = [(req.received_under, req.holder)]
        level = f"{label.policy}:{label.classification}"
        direct, hubbed = self.routes[(req.holder, req.recipient)]
        for slot, iid in zip(("direct1", "direct2"), direct, strict=False):
            chain = self.chain_id(level, [*held, (iid, req.recipient)])
            context[slot] = {"instrument": _ent("Instrument", iid), "chain": _ent("Chain", chain)}
        for iid, hub in hubbed:
            chain = self.chain_id(level, [*held, (iid, hub), (iid, req.recipient)])
            context["hub"] = {"instrument": _ent("Instrument", iid), "chain": _ent("Chain", chain)}
        if req.person is not None:
            person: dict[str, Any] = {
                "need_to_know": sorted(req.person.need_to_know),
                "compartments": sorted(req.person.compartments),
            }
            if req.person.clearance is not None:
                scheme = self.scheme_of[req.recipient]
                person["clearance"] = _ent("Level", f"{scheme}:{req.person.clearance}")
            context["person"] = person
        return {
            "principal": f'Party::"{req.holder}"',
            "action": 'Action::"release"',
            "resource": f'Party::"{req.recipient}"',
            "context": context,
        }


# -- timing -----------------------------------------------------------------------------------


def timed(fn: Callable[[], object], count: int) -> tuple[float, float]:
    """Run ``fn`` once (``count`` decisions): decisions/s by the wall clock, and CPU/wall time
    (about 1.0 when the engine runs on one thread)."""
    gc.collect()
    gc.disable()
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        t1, c1 = time.perf_counter(), time.process_time()
    finally:
        gc.enable()
    return count / (t1 - t0), (c1 - c0) / (t1 - t0)


def run(quick: bool, seed: int) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    reps = sizes["reps"]
    recorded = load_registry()
    registries = {"recorded": recorded, "lapsed": recorded.what_if(without=WHAT_IF)}
    cases = make_workload(recorded, sizes["requests"], seed)
    calls = [(registries[c.registry], c.request, c.at) for c in cases]
    caches = {name: _tables(reg).cache for name, reg in registries.items()}

    # gsomia: one pass decides and fills the cache; its decisions are the reference verdicts.
    decisions = [decide(reg, req, at) for reg, req, at in calls]

    def gsomia_warm() -> None:
        decide_ = decide
        for reg, req, at in calls:
            decide_(reg, req, at)

    cold_calls = [
        (reg, req, at, caches[c.registry]) for c, (reg, req, at) in zip(cases, calls, strict=True)
    ]
    cold_calls = cold_calls[: sizes["cold"]]

    def gsomia_cold() -> None:
        decide_ = decide
        for reg, req, at, cache in cold_calls:
            cache.clear()
            decide_(reg, req, at)

    # Cedar: parse and validate once; translate every request before any clock starts.
    policies_text = POLICIES.read_text(encoding="utf-8")
    schema_text = SCHEMA.read_text(encoding="utf-8")
    validation = cedarpy.validate_policies(policies_text, schema_text)
    if not validation.validation_passed:
        raise SystemExit(f"Cedar policies do not validate: {[str(e) for e in validation.errors]}")
    model = CedarModel(registries)
    schema = cedarpy.Schema.from_str(schema_text)
    entities = cedarpy.Entities.from_json_str(json.dumps(model.entities), schema)
    policies = cedarpy.PolicySet.from_str(policies_text)
    cedar_requests = [model.request(c) for c in cases]
    single_requests = cedar_requests[: sizes["single"]]
    batch_requests = cedar_requests[: sizes["batch"]]

    def cedar_single() -> None:
        for r in single_requests:
            cedarpy.is_authorized(r, policies, entities)

    def cedar_batch() -> None:
        cedarpy.is_authorized_batch(batch_requests, policies, entities)

    # cedarpy's own floor, for reference: the same number of calls in one batch with a policy
    # that permits everything, an empty context and no entities.
    trivial = cedarpy.PolicySet.from_str("permit (principal, action, resource);")
    no_entities = cedarpy.Entities.from_json_str("[]")
    bare = [{k: r[k] for k in ("principal", "action", "resource")} for r in batch_requests]

    def cedar_floor() -> None:
        cedarpy.is_authorized_batch(bare, trivial, no_entities)

    def cedar_build() -> None:
        for c in cases:
            model.request(c)

    # Agreement, every request: Cedar's verdict (batch, and single for the single subset) against
    # gsomia's. Evaluation errors are counted: an erroring forbid would fail open.
    batch_results = cedarpy.is_authorized_batch(cedar_requests, policies, entities)
    single_results = [cedarpy.is_authorized(r, policies, entities) for r in single_requests]
    errors = sum(1 for r in batch_results if r.diagnostics.errors)
    single_mismatch = sum(
        1 for s, b in zip(single_results, batch_results, strict=False) if s.allowed != b.allowed
    )
    disagreements = []
    for case, d, r in zip(cases, decisions, batch_results, strict=True):
        if d.allowed != r.allowed:
            disagreements.append(
                {
                    "registry": case.registry,
                    "at": case.at.isoformat(),
                    "request": describe(case.request),
                    "gsomia": d.allowed,
                    "cedar": r.allowed,
                    "gsomia_route": list(d.route),
                    "gsomia_failed": [f.rule for f in d.failed],
                    "cedar_reasons": [
                        r.diagnostics.id_annotations_by_reason.get(p, p)
                        for p in r.diagnostics.reasons
                    ],
                }
            )
    agreed = len(cases) - len(disagreements)

    # The mix as gsomia decided it.
    kinds = Counter(
        ("hub_allow" if len(d.route) > 2 else "direct_allow") if d.allowed else "refused"
        for d in decisions
    )
    refusal_rules = Counter(d.failed[0].rule for d in decisions if not d.allowed)
    allowed_by_instrument = Counter(
        "+".join(dict.fromkeys(d.instruments)) for d in decisions if d.allowed
    )

    # Timing. The engines are interleaved repetition by repetition, so that noise on the shared
    # machine falls on all of them alike; an untimed warm pass refills the verdict cache that
    # the cold pass empties.
    counts = {
        "gsomia_warm": len(calls),
        "gsomia_cold": len(cold_calls),
        "cedar_single": len(single_requests),
        "cedar_batch": len(batch_requests),
        "cedar_floor": len(bare),
        "cedar_request_build": len(cases),
    }
    fns = {
        "gsomia_warm": gsomia_warm,
        "gsomia_cold": gsomia_cold,
        "cedar_single": cedar_single,
        "cedar_batch": cedar_batch,
        "cedar_floor": cedar_floor,
        "cedar_request_build": cedar_build,
    }
    samples: dict[str, list[float]] = {name: [] for name in ENGINES}
    cpu: dict[str, list[float]] = {name: [] for name in ENGINES}
    for _ in range(reps):
        gsomia_warm()
        for name in ENGINES:
            rate, share = timed(fns[name], counts[name])
            samples[name].append(rate)
            cpu[name].append(share)
    rates = {name: statistics.median(samples[name]) for name in ENGINES}

    def ratio(a: str, b: str) -> float:
        return rates[a] / rates[b]

    ratios = {
        "gsomia_warm_over_cedar_batch": ratio("gsomia_warm", "cedar_batch"),
        "gsomia_cold_over_cedar_batch": ratio("gsomia_cold", "cedar_batch"),
        "gsomia_warm_over_cedar_single": ratio("gsomia_warm", "cedar_single"),
        "gsomia_cold_over_cedar_single": ratio("gsomia_cold", "cedar_single"),
        "cedar_batch_over_cedar_single": ratio("cedar_batch", "cedar_single"),
        "gsomia_warm_over_gsomia_cold": ratio("gsomia_warm", "gsomia_cold"),
        "gsomia_warm_over_cedar_floor": ratio("gsomia_warm", "cedar_floor"),
    }
    n = len(decisions)
    return {
        "benchmark": "decide",
        "quick": quick,
        "seed": seed,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cedarpy": version("cedarpy"),
            "gsomia": version("gsomia"),
        },
        "workload": {
            "requests": n,
            "registries": dict(Counter(c.registry for c in cases)),
            "mix": {k: kinds[k] / n for k in ("direct_allow", "hub_allow", "refused")},
            "counts": {k: kinds[k] for k in ("direct_allow", "hub_allow", "refused")},
            "refusals_by_first_failed_rule": dict(refusal_rules.most_common()),
            "allowed_by_instrument": dict(allowed_by_instrument.most_common()),
            "with_person": sum(1 for c in cases if c.request.person is not None),
            "non_originator_holder": sum(
                1 for c in cases if c.request.holder != c.request.label.originator
            ),
        },
        "cedar_model": {
            "policies": "bench/cedar/release.cedar",
            "schema": "bench/cedar/release.cedarschema",
            "entities": len(model.entities),
            "chains": model.chains,
            "schema_at_evaluation": False,
        },
        "repetitions": reps,
        "timed_requests": counts,
        "rates": rates,
        "samples": samples,
        "cpu_over_wall": {name: statistics.median(v) for name, v in cpu.items()},
        "ratios": ratios,
        "agreement": {
            "compared": n,
            "agreed": agreed,
            "rate": agreed / n,
            "disagreements": disagreements[:20],
            "disagreement_count": len(disagreements),
            "cedar_evaluation_errors": errors,
            "single_vs_batch_mismatches": single_mismatch,
        },
        "targets": {
            "gsomia_warm_min_rate": TARGET_RATE,
            "min_ratio_warm_over_cedar_batch": TARGET_RATIO,
            "rate_met": rates["gsomia_warm"] >= TARGET_RATE,
            "ratio_met": ratios["gsomia_warm_over_cedar_batch"] >= TARGET_RATIO,
        },
    }


def describe(req: ReleaseRequest) -> dict[str, Any]:
    person = req.person
    return {
        "label": req.label.to_dict(),
        "holder": req.holder,
        "recipient": req.recipient,
        "consents": sorted(req.consents),
        "received_under": req.received_under,
        "person": None
        if person is None
        else {
            "clearance": person.clearance,
            "need_to_know": sorted(person.need_to_know),
            "compartments": sorted(person.compartments),
        },
    }


# -- output -----------------------------------------------------------------------------------


LABELS = {
    "gsomia_warm": "gsomia warm",
    "gsomia_cold": "gsomia cold",
    "cedar_single": "cedar single",
    "cedar_batch": "cedar batch",
    "cedar_floor": "cedar floor †",
    "cedar_request_build": "harness prep ‡",
}


def report(result: dict[str, Any], console: Console) -> None:
    w = result["workload"]
    mix = Table(title=f"Workload: {w['requests']:,} distinct requests (seed {result['seed']})")
    mix.add_column("as gsomia decided")
    mix.add_column("requests", justify="right")
    mix.add_column("share", justify="right")
    for key, text in (
        ("direct_allow", "allowed, direct"),
        ("hub_allow", "allowed, through the hub"),
        ("refused", "refused"),
    ):
        mix.add_row(text, f"{w['counts'][key]:,}", f"{w['mix'][key]:.1%}")
    for rule, count in w["refusals_by_first_failed_rule"].items():
        mix.add_row(f"  refused on {rule}", f"{count:,}", f"{count / w['requests']:.1%}")
    console.print(mix)

    rates = Table(title=f"Decisions per second, single thread (median of {result['repetitions']})")
    rates.add_column("engine")
    rates.add_column("decisions/s", justify="right")
    rates.add_column("min … max", justify="right")
    rates.add_column("µs each", justify="right")
    rates.add_column("timed per rep", justify="right")
    rates.add_column("cpu/wall", justify="right")
    for name in ENGINES:
        rate = result["rates"][name]
        lo, hi = min(result["samples"][name]), max(result["samples"][name])
        rates.add_row(
            LABELS[name],
            f"{rate:,.0f}",
            f"{lo:,.0f} … {hi:,.0f}",
            f"{1e6 / rate:.2f}",
            f"{result['timed_requests'][name]:,}",
            f"{result['cpu_over_wall'][name]:.2f}",
        )
    console.print(rates)
    console.print(
        "warm: the workload replayed, verdict cache in use; cold: cache cleared before each "
        "decision; single: cedarpy.is_authorized per request; batch: one "
        "cedarpy.is_authorized_batch call.\n"
        "† cedarpy's floor, for reference: the same batch with a permit-all policy, empty context "
        "and no entities.\n"
        "‡ building Cedar requests from gsomia requests (instrument states, routes, context): "
        "not counted in Cedar's rates."
    )

    ratios = Table(title="Ratios (of medians)")
    ratios.add_column("ratio")
    ratios.add_column("value", justify="right")
    for key, value in result["ratios"].items():
        ratios.add_row(key.replace("_", " "), f"{value:,.1f}×")
    console.print(ratios)

    a = result["agreement"]
    t = result["targets"]
    console.print(
        f"Agreement, Cedar vs gsomia: {a['agreed']:,}/{a['compared']:,} = {a['rate']:.2%} "
        f"(Cedar evaluation errors: {a['cedar_evaluation_errors']}, single vs batch "
        f"mismatches: {a['single_vs_batch_mismatches']})"
    )
    for d in a["disagreements"][:5]:
        console.print(f"  disagreement: {json.dumps(d)}")
    console.print(
        f"Targets: gsomia warm ≥ {t['gsomia_warm_min_rate']:,}/s: "
        f"{'met' if t['rate_met'] else 'NOT met'}; ≥ {t['min_ratio_warm_over_cedar_batch']:.0f}× "
        f"cedar batch: {'met' if t['ratio_met'] else 'NOT met'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under 30 s")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    parser.add_argument("--seed", type=int, default=20191123)
    args = parser.parse_args(argv)
    result = run(args.quick, args.seed)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        report(result, Console())
    return 0 if result["agreement"]["rate"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
