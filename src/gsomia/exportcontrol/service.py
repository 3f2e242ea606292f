"""What the CLI and the API share: inputs parsed and resolved, screening and determination run,
results as JSON-ready dicts.

This is an edge: it reads data files and user files, never the clock (every question carries its
date). The pure work is :func:`~gsomia.exportcontrol.determination.determine` and the
:class:`~gsomia.exportcontrol.screening.Screener`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gsomia.core.errors import InputError
from gsomia.exportcontrol.countries import Countries, Country
from gsomia.exportcontrol.determination import (
    Determination,
    EndUse,
    EndUserFinding,
    ExportRequest,
    determine,
)
from gsomia.exportcontrol.errors import InvalidExportDateError, MalformedScreeningFileError
from gsomia.exportcontrol.loader import (
    load_countries,
    load_list,
    load_sample_lists,
    load_tables,
    load_words,
)
from gsomia.exportcontrol.names import Normalizer
from gsomia.exportcontrol.screening import (
    ListFormat,
    Screener,
    ScreeningConfig,
    ScreeningList,
    ScreeningResult,
)
from gsomia.exportcontrol.tables import Tables

__all__ = ["BatchReport", "ExportControl", "parse_day"]

MAX_NAME = 500  # characters: longer is not a name
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: str) -> date:
    """A calendar day as ``YYYY-MM-DD``; an impossible day (2019-02-30) is refused by name."""
    value = text.strip()
    if not _DATE_RE.match(value):
        raise InvalidExportDateError(f"{text!r} is not a date: give YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise InvalidExportDateError(f"{text!r} is not a real date: {e}") from e


@dataclass
class BatchReport:
    rows: int = 0
    screened: int = 0
    matches: int = 0
    reviews: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "screened": self.screened,
            "matches": self.matches,
            "reviews": self.reviews,
            "clear": self.screened - self.matches - self.reviews,
            "errors": [{"line": line, "error": msg} for line, msg in self.errors],
        }


class ExportControl:
    """The tables, the country names and the screening lists, loaded once."""

    def __init__(
        self,
        tables: Tables,
        countries: Countries,
        normalizer: Normalizer,
        lists: Sequence[ScreeningList],
        config: ScreeningConfig | None = None,
    ) -> None:
        self.tables = tables
        self.countries = countries
        self.normalizer = normalizer
        self.lists = tuple(lists)
        self.screener = Screener(self.lists, normalizer, config)

    @classmethod
    def load(cls, list_files: Sequence[str | Path] = ()) -> ExportControl:
        """The shipped tables; the given lists, or the shipped sample list when none is given."""
        lists = tuple(load_list(p) for p in list_files) if list_files else load_sample_lists()
        return cls(load_tables(), load_countries(), Normalizer(load_words()), lists)

    # -- determination -----------------------------------------------------------------------

    def check(
        self,
        item: str,
        to: str,
        on: str | date,
        end_user: str | None = None,
        end_use: EndUse | str | None = None,
        informed: bool = False,
    ) -> dict[str, Any]:
        day = on if isinstance(on, date) else parse_day(on)
        country = self.countries.resolve(to)
        use = EndUse(end_use) if end_use is not None else None
        screening = self.screener.screen(_name(end_user)) if end_user is not None else None
        result = determine(
            self.tables,
            ExportRequest(
                item=item,
                destination=country.code,
                on=day,
                end_use=use,
                informed=informed,
                end_user=_finding(screening) if screening else None,
            ),
        )
        return self._check_dict(result, country, screening)

    def _check_dict(
        self, result: Determination, country: Country, screening: ScreeningResult | None
    ) -> dict[str, Any]:
        data = result.to_dict()
        data["destination"] = country.to_dict()
        data["screening"] = screening.to_dict() if screening else None
        return data

    def group(self, country: str, on: str | date) -> dict[str, Any]:
        day = on if isinstance(on, date) else parse_day(on)
        self.tables.check_day(day)
        c = self.countries.resolve(country)
        assignment = self.tables.group_on(c.code, day)
        dest, _ = self.tables.destination_on(c.code, day)
        data = assignment.to_dict()
        data["country"] = c.to_dict()
        data["group"] = assignment.group.id
        data["catch_all_destination"] = dest.id
        data["lists"] = [
            {"id": lst.id, "name": lst.name, "interval": m.interval.to_dict()}
            for lst in self.tables.lists.values()
            if (m := lst.membership(c.code, day)) is not None
        ]
        return data

    def items(self) -> list[dict[str, Any]]:
        out = []
        for item in self.tables.items.values():
            row = self.tables.rows[item.row]
            out.append(
                {
                    "id": item.id,
                    "name": item.name,
                    "japanese": item.japanese,
                    "aliases": list(item.aliases),
                    "row": row.id,
                    "row_name": row.english,
                    "control": row.control.value,
                    "entry": item.entry,
                    "description": item.description,
                    "source": item.provenance.source,
                    "evidence": item.provenance.evidence.value,
                    "note": item.provenance.note,
                    "unverified": not item.provenance.verified,
                }
            )
        return out

    # -- screening -----------------------------------------------------------------------------

    def screen(self, name: str) -> dict[str, Any]:
        return self.screener.screen(_name(name)).to_dict()

    def screen_names(self, names: Sequence[str]) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.screener.screen_many([_name(n) for n in names])]

    def screen_csv(
        self,
        source: Path,
        target: Path,
        progress: Callable[[int, int], None] | None = None,
        chunk: int = 256,
    ) -> BatchReport:
        """Screens the ``name`` column of a CSV file into another CSV file, row by row.

        A bad row (wrong number of fields, no name, a name too long, a line the CSV reader
        rejects) is written with its error and reported; the other rows are screened.
        ``progress(done, total)`` is called after each chunk.
        """
        try:
            text = source.read_text(encoding="utf-8-sig")
        except FileNotFoundError as e:
            raise MalformedScreeningFileError(f"{source}: no such file") from e
        except UnicodeDecodeError as e:
            raise MalformedScreeningFileError(f"{source}: not UTF-8 text ({e.reason})") from e
        rows = list(_csv_rows(text))
        if not rows or rows[0][1] is None:
            raise MalformedScreeningFileError(f"{source}: empty, or no header row")
        header = rows[0][1]
        keys = [h.strip().casefold() for h in header]
        if "name" not in keys:
            raise MalformedScreeningFileError(f"{source}: no 'name' column in {header!r}")
        at = keys.index("name")
        report = BatchReport(rows=len(rows) - 1)
        good: list[tuple[int, list[str], str]] = []
        out: dict[int, list[str]] = {}
        for line, fields_, error in rows[1:]:
            if fields_ is None:
                report.errors.append((line, error))
                out[line] = [""] * len(header) + ["error", "", "", "", "", "", error]
                continue
            problem = ""
            if len(fields_) != len(header):
                problem = f"{len(fields_)} fields where the header has {len(header)}"
            elif not fields_[at].strip():
                problem = "no name"
            elif len(fields_[at]) > MAX_NAME:
                problem = f"name longer than {MAX_NAME} characters"
            if problem:
                report.errors.append((line, problem))
                padded = (fields_ + [""] * len(header))[: len(header)]
                out[line] = [*padded, "error", "", "", "", "", "", problem]
            else:
                good.append((line, fields_, fields_[at].strip()))
        total = len(good)
        if progress:
            progress(0, total)
        for start in range(0, total, chunk):
            part = good[start : start + chunk]
            for (line, fields_, _), result in zip(
                part, self.screener.screen_many([n for _, _, n in part]), strict=True
            ):
                out[line] = [*fields_, *_result_cells(result)]
                report.screened += 1
                report.matches += result.status.value == "match"
                report.reviews += result.status.value == "review"
            if progress:
                progress(min(start + chunk, total), total)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            [*header, "status", "score", "list", "no", "matched_name", "explanation", "error"]
        )
        for line in sorted(out):
            writer.writerow(out[line])
        target.write_text(buffer.getvalue(), encoding="utf-8")
        return report


def _name(name: str) -> str:
    if not name.strip():
        raise InputError("an end-user name is empty")
    if len(name) > MAX_NAME:
        raise InputError(f"an end-user name longer than {MAX_NAME} characters")
    return name


def _finding(result: ScreeningResult) -> EndUserFinding:
    """What determination needs to know: a hit on a METI-format list, and any other red flag."""
    meti = [h for h in result.hits if h.list.format is ListFormat.METI_EUL]
    others = tuple(
        f"{h.list.title} No. {h.entry.number}: {h.entry.name} ({h.status.value}, score {h.score})"
        for h in result.hits
        if h.list.format is not ListFormat.METI_EUL
    )
    if not meti:
        return EndUserFinding(result.query, False, False, frozenset(), red_flags=others)
    best = meti[0]
    sample = " (SAMPLE list, not METI's)" if best.list.sample else ""
    return EndUserFinding(
        name=result.query,
        listed=True,
        review=best.status.value == "review",
        concerns=best.entry.concerns,
        entry=f"{best.list.title}{sample} No. {best.entry.number}: {best.entry.name} "
        f"(score {best.score}; {best.explanation})",
        provenance=best.entry.provenance,
        red_flags=others,
    )


def _result_cells(result: ScreeningResult) -> list[str]:
    best = result.best
    if best is None:
        return ["clear", "", "", "", "", "", ""]
    return [
        result.status.value,
        f"{best.score:.1f}",
        best.list.id,
        best.entry.number,
        best.matched,
        best.explanation,
        "",
    ]


def _csv_rows(text: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line number, fields or None, error) for each record, going on after a bad one."""
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            fields_ = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield reader.line_num, None, f"unreadable CSV: {e}"
            continue
        if any(f.strip() for f in fields_):
            yield reader.line_num, fields_, ""
