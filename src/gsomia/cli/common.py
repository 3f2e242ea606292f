"""What every command shares: the registry from the global options, JSON output, the console.

The edge reads the environment and the clock here and nowhere else in a command.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import typer
from rich.console import Console

from gsomia.core.registry import Registry
from gsomia.loader import load_registry

# Markup off: registry text contains brackets ("[unverified]") that must print as written.
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


@dataclass
class Settings:
    """Global options, set once by the root callback."""

    registry_dirs: tuple[str, ...] = ()
    _registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry(self.registry_dirs)
        return self._registry


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):  # a sub-app invoked on its own (tests)
        obj = ctx.find_root().obj = Settings()
    return obj


def now() -> datetime:
    """The clock, read once per command at the edge."""
    return datetime.now(UTC)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """One JSON document on stdout (UTF-8, native names kept readable)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_default) + "\n")


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None
