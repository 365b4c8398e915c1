"""The one builder of a validation-error entry, shaped like the framework's own (`loc`, `msg`, `type`, `ctx`): the
API's 422 bodies, the generation checks and the custom-model rules all list their problems with it. It imports
nothing, so every package may use it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def validation_entry(
    loc: Sequence[str | int], msg: str, type_: str = "value_error", ctx: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One broken rule: where (`loc`, e.g. `["body", "conceptId"]`), what for people, and a stable code."""
    entry: dict[str, Any] = {"loc": list(loc), "msg": msg, "type": type_}
    if ctx:
        entry["ctx"] = dict(ctx)
    return entry
