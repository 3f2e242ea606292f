"""Reading a Server-Sent Events stream (the WHATWG event-stream format), as the link serves it.

Pure: it turns the lines of a stream into events; the caller owns the connection. Hand-written
because the format is a dozen lines and the client libraries for it bring their own HTTP stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SseEvent:
    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class SseParser:
    """Feed lines (without their line ends); complete events come out."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data:
                self._event = "message"
                return None
            event = SseEvent(self._id, self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return event
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
