"""The client side of a job's event stream (`GET /v3/status/{jobId}/events`): Server-Sent Events parsed as an
EventSource does, and each event folded into the status body a client already knows how to show."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StreamEvent:
    """One event: its id (None for the final `status` event), type and JSON data."""

    id: str | None
    event: str
    data: Any


def parse_events(lines: Iterable[str]) -> Iterator[StreamEvent]:
    """Events from a stream's lines; comment lines (keep-alive pings) are skipped."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield StreamEvent(fields.get("id"), fields.get("event", "message"), json.loads("\n".join(data)))
            fields, data = {}, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
    if data:
        yield StreamEvent(fields.get("id"), fields.get("event", "message"), json.loads("\n".join(data)))


def fold(status: dict[str, Any], event: StreamEvent) -> dict[str, Any]:
    """The status body after `event`: the same shape `GET /v3/status/{jobId}` answers (the final `status`
    event is that body itself), so code that shows a polled status shows a streamed one unchanged."""
    data = dict(event.data)
    if event.event == "status":
        return data
    updated = dict(status)
    if event.event == "state":
        updated.update(status=data["status"], progress=data.get("progress", updated.get("progress", 0)))
    elif event.event == "progress":
        total = max(1, int(data.get("totalSteps") or 1))
        updated.update(status="running", progress=min(99, int(100 * int(data["step"]) / total)))
        if "loss" in data:
            training = dict(updated.get("training") or {"samples": []})
            training.update(
                step=data["step"], totalSteps=data["totalSteps"], loss=data["loss"], etaSeconds=data.get("etaSeconds")
            )
            updated["training"] = training
    elif event.event == "sample":
        training = dict(updated.get("training") or {"step": 0, "totalSteps": 0})
        training["samples"] = [*training.get("samples", []), {"step": data["step"], "url": data["url"]}]
        updated["training"] = training
    return updated
