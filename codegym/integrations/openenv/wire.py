"""The wire types of the CodeReason OpenEnv server (pydantic models of ``openenv-core``) and plain data.

The action is one field, ``step`` (one reasoning step, or the code step), plus an optional ``restore``:
a snapshot id the server gave in an earlier observation, to play the step from there (tree search
over the wire). The observation carries the rendered state (``state``: ``### Problem``, ``### Step 1``,
...), ``reward``, ``done``, ``terminated``, ``truncated``, ``info`` (the env's info as plain JSON data:
test reports become dicts) and ``snapshot``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

# Longest text kept of any string inside a plain-data info (the program, stdout, a message): the
# observation's rendered state already holds the steps, and a flood of output must not cross the wire.
MAX_INFO_TEXT = 20_000


class CodeReasonAction(Action):
    """One step of ``CodeReason-v0``: reasoning text, or a step holding a fenced ``python`` block."""

    step: str = Field(..., min_length=1, description="One reasoning step, or the code step (```python block)")
    restore: int | None = Field(
        default=None,
        ge=0,
        description="Play the step from this snapshot (an earlier observation's `snapshot`) instead of "
        "from the current state",
    )


class CodeReasonObservation(Observation):
    """What the server returns after ``reset`` and each ``step``."""

    state: str = Field(default="", description="The problem and the steps so far, as the env renders them")
    terminated: bool = Field(default=False, description="The step was a code action")
    truncated: bool = Field(default=False, description="max_steps reached without code")
    info: dict[str, Any] = Field(default_factory=dict, description="The env's info as plain data")
    snapshot: int | None = Field(default=None, description="Id of the state after this step, for `restore`")


class CodeReasonState(State):
    """``GET /state`` / the WebSocket ``state`` message: where the session's episode stands."""

    task_id: str | None = Field(default=None, description="The current task")
    steps: list[str] = Field(default_factory=list, description="The steps taken so far")
    done: bool = Field(default=False, description="The episode has ended")


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON data: dataclasses (test reports) and mappings become dicts, tuples and sets
    lists, enums their values, non-finite floats and unknown objects strings; long strings are cut."""
    if depth > 20:
        return repr(value)[:200]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, enum.Enum):
        return plain(value.value, depth + 1)
    if isinstance(value, str):
        return value if len(value) <= MAX_INFO_TEXT else value[:MAX_INFO_TEXT] + "... [cut]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        data = plain(fields, depth + 1)
        for name in ("passed", "total", "pass_rate", "all_passed"):  # the report's derived numbers
            if hasattr(type(value), name) and isinstance(getattr(type(value), name), property):
                data[name] = plain(getattr(value, name), depth + 1)
        return data
    if isinstance(value, Mapping):
        return {str(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item, depth + 1) for item in value]
    return repr(value)[:MAX_INFO_TEXT]
