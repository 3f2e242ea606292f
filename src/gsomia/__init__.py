"""gsomia: agreements as time-aware law, and release decisions under them.

The public Python API::

    from gsomia import Registry, load_registry, decide, ReleaseRequest, SecurityLabel, Person
"""

from gsomia.core.errors import GsomiaError
from gsomia.core.labels import SecurityLabel
from gsomia.core.lifecycle import State, Status, WhatIf, resolve, status_at
from gsomia.core.registry import Registry
from gsomia.core.release import Decision, Person, Reason, ReleaseRequest, decide, enforce
from gsomia.loader import load_registry

__all__ = [
    "Decision",
    "GsomiaError",
    "Person",
    "Reason",
    "Registry",
    "ReleaseRequest",
    "SecurityLabel",
    "State",
    "Status",
    "WhatIf",
    "decide",
    "enforce",
    "load_registry",
    "resolve",
    "status_at",
]
__version__ = "0.1.0"
