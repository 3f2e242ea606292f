"""Countries by ISO 3166 alpha-3 code or by name, in English, Japanese or Korean.

pycountry (ISO 3166, LGPL-2.1, used unmodified) knows every code and the ISO names; the tables'
``[[aliases]]`` add the names people write ("South Korea", "韓国", "UK") and ``[[ambiguous]]``
the names that mean several countries ("Korea"), which are refused with the candidates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pycountry

from gsomia.exportcontrol.errors import AmbiguousCountryError, UnknownCountryError

__all__ = ["Countries", "Country", "is_alpha3"]


@dataclass(frozen=True, slots=True)
class Country:
    code: str  # ISO 3166 alpha-3
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name}


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[.,'’()]", " ", text).casefold().split())


def is_alpha3(code: str) -> bool:
    return pycountry.countries.get(alpha_3=code) is not None


class Countries:
    def __init__(
        self, aliases: Mapping[str, Iterable[str]], ambiguous: Mapping[str, Iterable[str]]
    ) -> None:
        self._by_name: dict[str, str] = {}
        for c in pycountry.countries:
            for attr in ("name", "official_name", "common_name"):
                value = getattr(c, attr, None)
                if value:
                    self._by_name.setdefault(_fold(value), c.alpha_3)
        for code, names in aliases.items():
            for name in names:
                self._by_name[_fold(name)] = code
        self._ambiguous = {_fold(k): tuple(v) for k, v in ambiguous.items()}

    def get(self, code: str) -> Country:
        c = pycountry.countries.get(alpha_3=code)
        if c is None:
            raise UnknownCountryError(code, (), "ISO 3166")
        return Country(c.alpha_3, getattr(c, "common_name", None) or c.name)

    def resolve(self, text: str) -> Country:
        """A country from its alpha-3 code (any case) or one of its names."""
        wanted = text.strip()
        if len(wanted) == 3 and wanted.isascii() and wanted.isalpha():
            c = pycountry.countries.get(alpha_3=wanted.upper())
            if c is not None:
                return self.get(c.alpha_3)
        key = _fold(wanted)
        if key in self._ambiguous:
            raise AmbiguousCountryError(
                wanted, ((code, self.get(code).name) for code in self._ambiguous[key])
            )
        code = self._by_name.get(key)
        if code is None:
            raise UnknownCountryError(wanted, self._by_name.keys(), "ISO 3166 codes and names")
        return self.get(code)
