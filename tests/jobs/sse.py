"""Reading a Server-Sent Events stream in the tests, the way an EventSource client does."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    id: str | None
    event: str
    data: Any


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the stream's lines; comment lines (keep-alive pings) are skipped."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if data:
                yield Event(fields.get("id"), fields.get("event", "message"), json.loads("\n".join(data)))
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    if data:
        yield Event(fields.get("id"), fields.get("event", "message"), json.loads("\n".join(data)))
