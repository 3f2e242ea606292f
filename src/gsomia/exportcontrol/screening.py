"""End-user screening against METI's End User List (and, optionally, a US Consolidated Screening
List CSV), robust to case, punctuation, legal forms, word order, typos and script.

Lists are read from CSV text in the columns METI publishes (No., Country or Region, Company or
Organization with the Japanese name in parentheses, Also Known As separated by '・', Type of WMD)
or in the columns of the US CSL CSV (``name``, ``alt_names`` separated by ';', ``source``…).

Matching has two stages, both on rapidfuzz:

1. *Candidates.* Each name of each entry is normalised once (:mod:`~gsomia.exportcontrol.names`);
   the query's readings are compared with every reading on the list by ``fuzz.ratio`` on sorted
   words, in C++ (``process.extract``, or ``process.cdist`` for a batch), and the best few kept.
2. *Score and explanation.* Each candidate is scored by aligning words one to one (``fuzz.ratio``
   per pair, generic words such as "trading" weighing less than distinctive ones such as
   "Hemmat"), and by comparing the names written without spaces; names in Japanese, Chinese or
   Korean are also compared in their own script. The score is the harmonic mean of how much of
   each name the aligned words cover, so "Taichung Commercial Bank" does not match "Tanchon
   Commercial Bank" and "Atomic Energy Organization of India" does not match "... of Iran".

A hit at or above ``threshold`` is a match; between ``review_from`` and ``threshold`` it is a
possible match for a person to review. Scores are 0-100.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from gsomia.core.provenance import Evidence, Provenance
from gsomia.exportcontrol.errors import MalformedScreeningFileError
from gsomia.exportcontrol.names import NameForm, NormalizedName, Normalizer
from gsomia.exportcontrol.tables import Concern

__all__ = [
    "Hit",
    "ListEntry",
    "ListFormat",
    "MatchStatus",
    "Screener",
    "ScreeningConfig",
    "ScreeningList",
    "ScreeningResult",
    "parse_list",
]

TOKEN_MIN = 70.0  # two words scoring below this (fuzz.ratio) are different words
COMPACT_MIN = 92.0  # names this close without spaces differ only in spacing or one typo
SHORT_NAME = 3  # a name this short (an acronym such as "AIO") can only be a possible match
# Readings whose sorted words share less than this (fuzz.ratio) with the query's are not scored:
# on the labelled set every true match, even a partial name ("Shahid Hemmat", 60), stays above it.
CANDIDATE_MIN = 55.0


class ListFormat(StrEnum):
    METI_EUL = "meti-eul"
    US_CSL = "us-csl"


class MatchStatus(StrEnum):
    MATCH = "match"
    REVIEW = "review"
    CLEAR = "clear"


_WMD_TYPES = {
    "nuclear": "nuclear",
    "n": "nuclear",
    "核": "nuclear",
    "chemical": "chemical",
    "c": "chemical",
    "化学": "chemical",
    "biological": "biological",
    "b": "biological",
    "生物": "biological",
    "missile": "missile",
    "m": "missile",
    "ミサイル": "missile",
    "conventional weapons": "conventional",
    "conventional": "conventional",
    "cw": "conventional",
    "通常兵器": "conventional",
}


@dataclass(frozen=True, slots=True)
class ListEntry:
    list_id: str
    number: str
    country: str
    name: str
    japanese: str
    aliases: tuple[str, ...]
    types: tuple[str, ...]  # nuclear, chemical, biological, missile, conventional, or the list's
    provenance: Provenance

    @property
    def concerns(self) -> frozenset[Concern]:
        out = set()
        for t in self.types:
            if t in ("nuclear", "chemical", "biological", "missile"):
                out.add(Concern.WMD)
            elif t == "conventional":
                out.add(Concern.CONVENTIONAL)
        return frozenset(out)

    def names(self) -> list[tuple[str, str]]:
        out = [("name", self.name)]
        if self.japanese:
            out.append(("Japanese name", self.japanese))
        out += [("also known as", a) for a in self.aliases]
        return out


@dataclass(frozen=True, slots=True)
class ScreeningList:
    id: str
    title: str
    format: ListFormat
    entries: tuple[ListEntry, ...]
    provenance: Provenance
    sample: bool = False
    revision: str = ""
    file: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "format": self.format.value,
            "entries": len(self.entries),
            "sample": self.sample,
            "revision": self.revision,
            "file": self.file,
            "source": self.provenance.source,
            "evidence": self.provenance.evidence.value,
            "note": self.provenance.note,
        }


@dataclass(frozen=True, slots=True)
class ScreeningConfig:
    threshold: float = 85.0
    review_from: float = 70.0
    candidates: int = 6  # readings kept per query reading by the first stage
    max_hits: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.review_from <= self.threshold <= 100:
            raise ValueError("need 0 <= review_from <= threshold <= 100")


@dataclass(frozen=True, slots=True)
class Hit:
    entry: ListEntry
    list: ScreeningList = field(repr=False)
    score: float
    status: MatchStatus
    field: str  # "name", "Japanese name", "also known as"
    matched: str  # the list's name that matched, as written
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "list": self.list.id,
            "list_title": self.list.title,
            "sample": self.list.sample,
            "no": e.number,
            "country": e.country,
            "name": e.name,
            "japanese": e.japanese,
            "aliases": list(e.aliases),
            "types": list(e.types),
            "score": self.score,
            "status": self.status.value,
            "matched_field": self.field,
            "matched_name": self.matched,
            "explanation": self.explanation,
            "evidence": e.provenance.evidence.value,
            "source": e.provenance.source,
        }


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    query: str
    normalized: NormalizedName
    status: MatchStatus
    hits: tuple[Hit, ...]
    config: ScreeningConfig
    lists: tuple[ScreeningList, ...] = field(repr=False)

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "status": self.status.value,
            "readings": [" ".join(f.tokens) for f in self.normalized.forms],
            "native": self.normalized.native,
            "ignored_legal_forms": list(self.normalized.dropped),
            "threshold": self.config.threshold,
            "review_from": self.config.review_from,
            "hits": [h.to_dict() for h in self.hits],
            "lists": [lst.to_dict() for lst in self.lists],
            "sample_list": any(lst.sample for lst in self.lists),
        }


# -- reading lists -------------------------------------------------------------------------------

_METI_COLUMNS = {
    "no": "no",
    "番号": "no",
    "country or region": "country",
    "国名・地域名": "country",
    "国名": "country",
    "company or organization": "name",
    "企業名・組織名": "name",
    "also known as": "aka",
    "別名": "aka",
    "type of wmd": "types",
    "type of concern": "types",
    "懸念区分": "types",
    "source": "source",
    "evidence": "evidence",
}
_CSL_REQUIRED = {"name", "alt_names"}
_PAREN_RE = re.compile(r"[(（]([^()（）]*)[)）]")
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3]")


def _header_key(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").replace(".", "").casefold().split())


def parse_list(
    text: str,
    list_id: str,
    where: str,
    provenance: Provenance,
    title: str = "",
    sample: bool = False,
    revision: str = "",
) -> ScreeningList:
    """A list from CSV text in METI's columns or the US CSL's, told apart by the header."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise MalformedScreeningFileError(f"{where}: empty, or no header row")
    header = [_header_key(h) for h in rows[0]]
    if set(header) >= _CSL_REQUIRED:
        fmt = ListFormat.US_CSL
        entries = _csl_entries(rows, header, list_id, where, provenance)
    elif {"no", "name"} <= {_METI_COLUMNS.get(h, "") for h in header}:
        fmt = ListFormat.METI_EUL
        entries = _meti_entries(rows, header, list_id, where, provenance)
    else:
        raise MalformedScreeningFileError(
            f"{where}: header {rows[0]!r} is neither METI's End User List columns (No., "
            "Country or Region, Company or Organization, Also Known As, Type of WMD) nor the "
            "US CSL's (name, alt_names, ...)"
        )
    if not entries:
        raise MalformedScreeningFileError(f"{where}: no entries")
    return ScreeningList(
        id=list_id,
        title=title or f"{fmt.value} list {where}",
        format=fmt,
        entries=tuple(entries),
        provenance=provenance,
        sample=sample,
        revision=revision,
        file=where,
    )


def _meti_entries(
    rows: list[list[str]], header: list[str], list_id: str, where: str, base: Provenance
) -> list[ListEntry]:
    cols = {_METI_COLUMNS[h]: i for i, h in enumerate(header) if h in _METI_COLUMNS}
    entries = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise MalformedScreeningFileError(
                f"{where}: row {n}: {len(row)} fields where the header has {len(header)}"
            )

        def cell(key: str, row: list[str] = row) -> str:
            return row[cols[key]].strip() if key in cols else ""

        company = cell("name")
        japanese = " ".join(p for p in _PAREN_RE.findall(company) if _CJK_RE.search(p))
        acronyms = [p.strip() for p in _PAREN_RE.findall(company) if not _CJK_RE.search(p)]
        name = " ".join(_PAREN_RE.sub(" ", company).split())
        if not name and not japanese:
            raise MalformedScreeningFileError(f"{where}: row {n}: no company or organization")
        aliases = [a.strip() for a in cell("aka").split("・") if a.strip()]
        types = [
            _WMD_TYPES.get(t.strip().casefold(), t.strip().casefold())
            for t in re.split(r"[,、/・]", cell("types"))
            if t.strip()
        ]
        prov = base
        if cell("source"):
            evidence = cell("evidence") or base.evidence.value
            try:
                prov = Provenance(cell("source"), Evidence(evidence), base.note)
            except ValueError as e:
                raise MalformedScreeningFileError(
                    f"{where}: row {n}: unknown evidence {evidence!r}"
                ) from e
        entries.append(
            ListEntry(
                list_id=list_id,
                number=cell("no") or str(n - 1),
                country=cell("country"),
                name=name or japanese,
                japanese=japanese,
                aliases=tuple(dict.fromkeys([*acronyms, *aliases])),
                types=tuple(dict.fromkeys(types)),
                provenance=prov,
            )
        )
    return entries


def _csl_entries(
    rows: list[list[str]], header: list[str], list_id: str, where: str, base: Provenance
) -> list[ListEntry]:
    col = {h: i for i, h in enumerate(header)}
    entries = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise MalformedScreeningFileError(
                f"{where}: row {n}: {len(row)} fields where the header has {len(header)}"
            )
        name = row[col["name"]].strip()
        if not name:
            raise MalformedScreeningFileError(f"{where}: row {n}: no name")
        aliases = [a.strip() for a in row[col["alt_names"]].split(";") if a.strip()]
        source = row[col["source"]].strip() if "source" in col else ""
        number = row[col["entity_number"]].strip() if "entity_number" in col else ""
        country = row[col["country"]].strip() if "country" in col else ""
        entries.append(
            ListEntry(
                list_id=list_id,
                number=number or str(n - 1),
                country=country,
                name=name,
                japanese="",
                aliases=tuple(aliases),
                types=(source,) if source else (),
                provenance=base,
            )
        )
    return entries


# -- matching ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scored:
    score: float
    how: str


@dataclass(frozen=True, slots=True)
class _Name:
    entry: int
    field: str
    text: str
    norm: NormalizedName


class Screener:
    """Screens names against one or more lists; built once, then used for many names."""

    def __init__(
        self,
        lists: Sequence[ScreeningList],
        normalizer: Normalizer,
        config: ScreeningConfig | None = None,
    ) -> None:
        self.lists = tuple(lists)
        self.normalizer = normalizer
        self.config = config or ScreeningConfig()
        self._entries: list[tuple[ListEntry, ScreeningList]] = [
            (e, lst) for lst in self.lists for e in lst.entries
        ]
        self._names: list[_Name] = []
        self._keys: list[str] = []  # one per (name, reading): the first stage's choices
        self._key_ref: list[tuple[int, int]] = []  # (name index, form index)
        self._native: list[str] = []
        self._native_ref: list[int] = []
        for i, (entry, _) in enumerate(self._entries):
            for field_name, text in entry.names():
                norm = normalizer.normalize(text)
                k = len(self._names)
                self._names.append(_Name(i, field_name, text, norm))
                for j, form in enumerate(norm.forms):
                    self._keys.append(form.key)
                    self._key_ref.append((k, j))
                if norm.native:
                    self._native.append(norm.native)
                    self._native_ref.append(k)

    @property
    def size(self) -> int:
        return len(self._entries)

    def screen(self, name: str) -> ScreeningResult:
        query = self.normalizer.normalize(name)
        k = self.config.candidates
        candidates: set[tuple[int, int]] = set()
        for form in query.forms:
            for _, _, idx in process.extract(
                form.key,
                self._keys,
                scorer=fuzz.ratio,
                processor=None,
                limit=k,
                score_cutoff=CANDIDATE_MIN,
            ):
                candidates.add(self._key_ref[idx])
        return self._result(name, query, candidates)

    def screen_many(self, names: Sequence[str], chunk: int = 512) -> list[ScreeningResult]:
        """Many names at once: the first stage as one ``cdist`` matrix per chunk (one core)."""
        results: list[ScreeningResult] = []
        k = min(self.config.candidates, len(self._keys))
        for start in range(0, len(names), chunk):
            part = names[start : start + chunk]
            queries = [self.normalizer.normalize(n) for n in part]
            keys: list[str] = []
            owner: list[int] = []
            for qi, q in enumerate(queries):
                for form in q.forms:
                    keys.append(form.key)
                    owner.append(qi)
            found: list[set[tuple[int, int]]] = [set() for _ in part]
            if keys and k:
                scores = process.cdist(
                    keys, self._keys, scorer=fuzz.ratio, processor=None, dtype=np.uint8, workers=1
                )
                top = np.argpartition(scores, -k, axis=1)[:, -k:]  # unsigned: no negation
                keep = np.take_along_axis(scores, top, axis=1) >= CANDIDATE_MIN
                for row, qi in enumerate(owner):
                    found[qi].update(self._key_ref[idx] for idx in top[row][keep[row]].tolist())
            results.extend(
                self._result(n, q, c) for n, q, c in zip(part, queries, found, strict=True)
            )
        return results

    def _result(
        self, text: str, query: NormalizedName, candidates: set[tuple[int, int]]
    ) -> ScreeningResult:
        cfg = self.config
        # per entry: score, then what explains it (built only for the hits that are kept)
        best: dict[int, tuple[float, _Name, Callable[[], str]]] = {}

        def consider(score: float, nm: _Name, explain: Callable[[], str]) -> None:
            if score >= cfg.review_from and score > best.get(nm.entry, (-1.0,))[0]:
                best[nm.entry] = (score, nm, explain)

        # the original script first: on a tie, its explanation is the plainer one
        if query.native and self._native:
            for _, score, idx in process.extract(
                query.native, self._native, scorer=fuzz.ratio, processor=None, limit=3
            ):
                nm = self._names[self._native_ref[idx]]
                how = (
                    "same characters in the original script"
                    if score == 100
                    else f"close in the original script ({score:.0f})"
                )
                consider(float(score), nm, partial(str, f'{nm.field} "{nm.text}": {how}'))
        for name_idx, form_idx in candidates:
            nm = self._names[name_idx]
            target = nm.norm.forms[form_idx]
            for form in query.forms:
                scored = _compare(form, target)
                score = scored.score
                how = scored.how
                if len(target.compact) <= SHORT_NAME and score >= cfg.threshold:
                    score = (cfg.review_from + cfg.threshold) / 2  # an acronym alone: review
                    note = "a short acronym is only a possible match"
                    how = f"{how}; {note}" if how else note
                consider(score, nm, partial(_explain, form, target, how, query, nm))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[: cfg.max_hits]
        hits = []
        for entry_idx, (score, nm, explain) in ranked:
            entry, lst = self._entries[entry_idx]
            status = MatchStatus.MATCH if score >= cfg.threshold else MatchStatus.REVIEW
            hits.append(Hit(entry, lst, round(score, 1), status, nm.field, nm.text, explain()))
        status = hits[0].status if hits else MatchStatus.CLEAR
        return ScreeningResult(text, query, status, tuple(hits), cfg, self.lists)


def _compare(q: NameForm, n: NameForm) -> _Scored:
    """How alike two readings are (0-100), and by which route; the words come later, if needed."""
    if q.key == n.key:
        return _Scored(
            100.0, "same words" if q.tokens == n.tokens else "same words in another order"
        )
    if q.compact == n.compact:
        return _Scored(100.0, "same letters, spaced differently")
    token_score = _align(q, n)[0]
    compact = fuzz.ratio(q.compact, n.compact, score_cutoff=COMPACT_MIN)
    if compact > token_score:
        return _Scored(compact, f"nearly the same letters, spaces aside ({compact:.0f})")
    return _Scored(token_score, "")


def _align(q: NameForm, n: NameForm) -> tuple[float, list[tuple[int, int, float]]]:
    """Words aligned one to one, exact words first, then the closest pairs by ``fuzz.ratio``;
    the score is the harmonic mean of the weighted shares of each name the pairs cover."""
    pairs: list[tuple[int, int, float]] = []
    n_free = list(range(len(n.tokens)))
    q_free = []
    for i, token in enumerate(q.tokens):
        for j in n_free:
            if n.tokens[j] == token:
                pairs.append((i, j, 100.0))
                n_free.remove(j)
                break
        else:
            q_free.append(i)
    if q_free and n_free:
        ratio = fuzz.ratio
        scored = sorted(
            (
                (s, i, j)
                for i in q_free
                for j in n_free
                if (s := ratio(q.tokens[i], n.tokens[j], score_cutoff=TOKEN_MIN))
            ),
            reverse=True,
        )
        for s, i, j in scored:
            if i in q_free and j in n_free:
                pairs.append((i, j, s))
                q_free.remove(i)
                n_free.remove(j)
    if not pairs:
        return 0.0, pairs
    qw, nw = q.weights, n.weights
    matched = sum(s * (qw[i] + nw[j]) for i, j, s in pairs) / 200
    cover_q = matched / q.total_weight
    cover_n = matched / n.total_weight
    return 200 * cover_q * cover_n / (cover_q + cover_n), pairs


def _words(q: NameForm, n: NameForm) -> str:
    """The word alignment in words: "shahid=shahid, hemat≈hemmat (91); unmatched: tehran"."""
    _, pairs = _align(q, n)
    words = [
        f"{q.tokens[i]}={n.tokens[j]}" if s == 100 else f"{q.tokens[i]}≈{n.tokens[j]} ({s:.0f})"
        for i, j, s in sorted(pairs)
    ]
    used_q = {i for i, _, _ in pairs}
    used_n = {j for _, j, _ in pairs}
    missing = [t for i, t in enumerate(q.tokens) if i not in used_q]
    missing += [t for j, t in enumerate(n.tokens) if j not in used_n]
    text = "words " + (", ".join(words) or "none alike")
    return text + (f"; unmatched: {', '.join(missing)}" if missing else "")


def _explain(q: NameForm, n: NameForm, how: str, query: NormalizedName, nm: _Name) -> str:
    if not how.startswith("same"):
        how = f"{how}; {_words(q, n)}" if how else _words(q, n)
    parts = [f'{nm.field} "{nm.text}": {how}']
    if q.reading != "latin":
        parts.append(f"query read as {q.reading} ({' '.join(q.tokens)})")
    if n.reading != "latin":
        parts.append(f"list name read as {n.reading} ({' '.join(n.tokens)})")
    ignored = list(dict.fromkeys([*query.dropped, *nm.norm.dropped]))
    if ignored:
        parts.append(f"legal forms ignored: {', '.join(ignored)}")
    return "; ".join(parts)
