"""Errors of export control, in the one hierarchy of :mod:`gsomia.core.errors`.

Each has a stable code, an HTTP status and the CLI exit code of its base::

    InputError                          400, exit 2
    ├── NotFoundError                   404
    │   ├── UnknownExportItemError      an item id or name the catalogue does not know
    │   └── UnknownCountryError         a country code or name that resolves to no country
    ├── AmbiguousCountryError           a name that means several countries ("Korea")
    ├── InvalidExportDateError          a malformed or impossible date ("2019-02-30")
    ├── ExportDateOutOfRangeError       a date before the export tables' coverage
    └── MalformedScreeningFileError     a screening list or batch CSV that cannot be read

Data files that are invalid raise :class:`gsomia.core.errors.RegistryError`, as the agreements
registry does.
"""

from __future__ import annotations

from collections.abc import Iterable

from gsomia.core.errors import InputError, NotFoundError

__all__ = [
    "AmbiguousCountryError",
    "ExportDateOutOfRangeError",
    "InvalidExportDateError",
    "MalformedScreeningFileError",
    "UnknownCountryError",
    "UnknownExportItemError",
]


class UnknownExportItemError(NotFoundError):
    code = "unknown-export-item"
    kind = "export item"


class UnknownCountryError(NotFoundError):
    code = "unknown-country"
    kind = "country"


class AmbiguousCountryError(InputError):
    """A name that several countries answer to: the caller must pick one by its code."""

    code = "ambiguous-country"

    def __init__(self, wanted: str, candidates: Iterable[tuple[str, str]]) -> None:
        options = ", ".join(f"{code} ({name})" for code, name in candidates)
        super().__init__(f"ambiguous country {wanted!r}: give one of {options}")
        self.wanted = wanted


class InvalidExportDateError(InputError):
    code = "invalid-export-date"


class ExportDateOutOfRangeError(InputError):
    code = "export-date-out-of-range"


class MalformedScreeningFileError(InputError):
    """A list or batch file that is not the CSV expected; the message names the file and row."""

    code = "malformed-screening-file"
