"""What an agent may spend on one problem (:class:`Budget`) and what it did spend (:class:`Spend`).

Every agent counts the same five things per problem, so agents are compared at equal spend:

- ``policy_calls``: ``Policy.sample`` calls that carried this problem's prompts (a call batched across
  problems counts once for each of them);
- ``steps_generated``: steps the policy wrote for this problem (a call with ``n=K`` writes K);
- ``tokens``: tokens the policy generated for this problem;
- ``prm_calls``: paths (problem + steps) the agent's process reward model scored;
- ``sandbox_runs``: programs the sandbox ran (the env's verdict cache answers repeats for free);

plus ``wall_s``, the wall-clock time of the solve (shared equally by problems solved in one batch).

A budget caps any of them. Agents check it before each unit of work: they never start a policy call
that would write more steps than ``steps_generated`` allows, and stop at the first other limit reached
(a call already started may take ``tokens``, ``prm_calls`` or ``sandbox_runs`` a little past theirs).

Example:
    >>> budget = Budget(steps_generated=8)
    >>> spend = Spend(steps_generated=6)
    >>> budget.allows(spend, steps=2), budget.allows(spend, steps=3)
    (True, False)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from codegym.errors import UserError

SPEND_FIELDS = ("policy_calls", "steps_generated", "tokens", "prm_calls", "sandbox_runs", "wall_s")


@dataclass(frozen=True)
class Spend:
    """What an agent spent on one problem (see the module docstring for each field)."""

    policy_calls: int = 0
    steps_generated: int = 0
    tokens: int = 0
    prm_calls: int = 0
    sandbox_runs: int = 0
    # Wall time is measured, not spent by choice: two plays that made the same calls are the same play
    # (rollout's episodes compare equal across runs and workers), however long each took.
    wall_s: float = dataclasses.field(default=0.0, compare=False)

    def __add__(self, other: Spend) -> Spend:
        return Spend(*(getattr(self, name) + getattr(other, name) for name in SPEND_FIELDS))

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in SPEND_FIELDS}


@dataclass(frozen=True)
class Budget:
    """Limits on one problem's :class:`Spend`; None means no limit. The default budget is unlimited.

    An agent with an unlimited budget still stops: at its own size (``n``, ``simulations``, ...) and at
    the env's ``max_steps``.
    """

    policy_calls: int | None = None
    steps_generated: int | None = None
    tokens: int | None = None
    prm_calls: int | None = None
    sandbox_runs: int | None = None
    wall_s: float | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise UserError(f"Budget.{field.name} must be None (no limit) or a number > 0, got {value!r}")

    def allows(self, spend: Spend, *, steps: int = 0) -> bool:
        """Whether an agent that has spent ``spend`` may start work that writes ``steps`` more steps."""
        return self.exhausted_by(spend, steps=steps) is None

    def exhausted_by(self, spend: Spend, *, steps: int = 0) -> str | None:
        """The name of the first limit that forbids the work (None when it is allowed)."""
        if self.steps_generated is not None and spend.steps_generated + steps > self.steps_generated:
            return "steps_generated"
        if self.policy_calls is not None and steps and spend.policy_calls + 1 > self.policy_calls:
            return "policy_calls"
        for name in ("tokens", "prm_calls", "sandbox_runs", "wall_s"):
            limit = getattr(self, name)
            if limit is not None and getattr(spend, name) >= limit:
                return name
        return None
