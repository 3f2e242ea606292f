"""Export control over HTTP: ``/api/v1/export/`` check, group, items, screen.

An ``APIRouter`` for the node's app. Include it with the app's bearer-token dependency so that it
is guarded like every other endpoint::

    app.include_router(export.router, dependencies=[Depends(current_user)])

Errors are :class:`~gsomia.core.errors.GsomiaError` subclasses, which the app renders as
problem+json. The tables and the shipped (sample) list are loaded once per process; a test or a
deployment with its own list overrides :func:`export_control` through
``app.dependency_overrides``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from gsomia.exportcontrol.determination import EndUse
from gsomia.exportcontrol.service import MAX_NAME, ExportControl

__all__ = ["export_control", "router"]

MAX_BATCH = 1000  # names per POST /screen

router = APIRouter(prefix="/api/v1/export", tags=["export"])


@lru_cache(maxsize=1)
def export_control() -> ExportControl:
    return ExportControl.load()


Service = Annotated[ExportControl, Depends(export_control)]
Day = Annotated[str, Query(description="A day in Japan, YYYY-MM-DD", examples=["2019-07-04"])]


class ScreenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[Annotated[str, Field(min_length=1, max_length=MAX_NAME)]] = Field(
        min_length=1, max_length=MAX_BATCH
    )


@router.get("/check")
def check(
    svc: Service,
    item: str,
    to: Annotated[str, Query(description="ISO 3166 alpha-3 code or name")],
    on: Day,
    end_user: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
    end_use: EndUse | None = None,
    informed: bool = False,
) -> dict[str, Any]:
    """Whether an export needs a licence on a day, which licence suffices, and why."""
    return svc.check(item, to, on, end_user, end_use, informed)


@router.get("/group/{country}")
def group(svc: Service, country: str, on: Day) -> dict[str, Any]:
    """A country's group (A-D) on a day, with the list membership that puts it there."""
    return svc.group(country, on)


@router.get("/items")
def items(svc: Service) -> dict[str, Any]:
    """The item catalogue with each item's row of Appended Table 1."""
    rows = svc.items()
    return {"items": rows, "total": len(rows), "next_cursor": None}


@router.get("/screen")
def screen(
    svc: Service, name: Annotated[str, Query(min_length=1, max_length=MAX_NAME)]
) -> dict[str, Any]:
    """One end-user name against the lists: hits with scores and explanations."""
    return svc.screen(name)


@router.post("/screen")
def screen_many(svc: Service, body: ScreenIn) -> dict[str, Any]:
    """Up to 1,000 names at once."""
    results = svc.screen_names(body.names)
    return {"items": results, "total": len(results), "next_cursor": None}
