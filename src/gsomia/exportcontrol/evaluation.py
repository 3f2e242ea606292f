"""Precision and recall of screening on a labelled set of names.

The labelled set (``tests/fixtures/exportcontrol/screening-eval.csv``) has one row per query:
``query``, ``expected`` (the No. of the sample End User List entry it names, or empty for a name
that must not match) and ``kind`` (exact, typo, hangul, near-miss…). A prediction is the No. of
the best hit when it is a *match* (at or above the threshold), else nothing; a possible match in
the review band is not a prediction, and is counted separately.

- true positive: the expected entry predicted
- false positive: an entry predicted for a name that expects another or none
- false negative: an expected entry not predicted (missed, or another predicted)
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gsomia.exportcontrol.screening import MatchStatus, Screener

__all__ = ["Labelled", "Scores", "read_labelled", "score", "screener_predictions"]


@dataclass(frozen=True, slots=True)
class Labelled:
    query: str
    expected: str  # "" for a name that must not match
    kind: str


@dataclass(frozen=True)
class Scores:
    total: int
    positives: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    reviewed: int  # predictions withheld because the best hit was only a possible match
    errors: tuple[tuple[str, str, str, str], ...] = field(repr=False)  # query, kind, want, got
    by_kind: dict[str, tuple[int, int]] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "positives": self.positives,
            "negatives": self.total - self.positives,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "reviewed": self.reviewed,
            "errors": [
                {"query": q, "kind": k, "expected": w, "got": g} for q, k, w, g in self.errors
            ],
            "by_kind": {k: {"right": r, "of": n} for k, (r, n) in sorted(self.by_kind.items())},
        }


def read_labelled(text: str) -> list[Labelled]:
    rows = csv.DictReader(io.StringIO(text))
    return [Labelled(r["query"], r["expected"].strip(), r["kind"].strip()) for r in rows]


def score(labels: Sequence[Labelled], predicted: Sequence[str], reviewed: int = 0) -> Scores:
    tp = fp = fn = 0
    errors = []
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for label, got in zip(labels, predicted, strict=True):
        seen[label.kind] += 1
        if got == label.expected:
            right[label.kind] += 1
        else:
            errors.append((label.query, label.kind, label.expected, got))
        if label.expected and got == label.expected:
            tp += 1
        if got and got != label.expected:
            fp += 1
        if label.expected and got != label.expected:
            fn += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(
        total=len(labels),
        positives=sum(1 for lb in labels if lb.expected),
        tp=tp,
        fp=fp,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        reviewed=reviewed,
        errors=tuple(errors),
        by_kind={k: (right[k], n) for k, n in seen.items()},
    )


def screener_predictions(screener: Screener, labels: Sequence[Labelled]) -> tuple[list[str], int]:
    """The screener's prediction for each label, and how many were withheld for review."""
    predicted = []
    reviewed = 0
    for result in screener.screen_many([lb.query for lb in labels]):
        best = result.best
        if best is not None and best.status is MatchStatus.MATCH:
            predicted.append(best.entry.number)
        else:
            predicted.append("")
            reviewed += best is not None
    return predicted, reviewed
