"""gsomia: agreements as time-aware law, and release decisions under them."""

from gsomia.core.errors import GsomiaError
from gsomia.core.lifecycle import State, Status, WhatIf, resolve, status_at
from gsomia.core.registry import Registry
from gsomia.loader import load_registry

__all__ = [
    "GsomiaError",
    "Registry",
    "State",
    "Status",
    "WhatIf",
    "load_registry",
    "resolve",
    "status_at",
]
__version__ = "0.1.0"
