"""Outcome rewards: one number from the sandbox's report on the code action."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from codegym.errors import UserError
from codegym.sandbox import ExecutionReport

OutcomeFn = Callable[[ExecutionReport], float]
"""An outcome function maps the report on the tests that pay to a float."""


def pass_rate(report: ExecutionReport) -> float:
    """The share of tests passed (0 when the code did not compile)."""
    return report.pass_rate


@dataclass(frozen=True)
class AllPass:
    """O1-Coder's RL outcome: ``tau_pass`` when every test passes, else ``tau_fail``."""

    tau_pass: float = 1.0
    tau_fail: float = 0.0

    def __call__(self, report: ExecutionReport) -> float:
        return self.tau_pass if report.all_passed else self.tau_fail


@dataclass(frozen=True)
class CompiledPassRate:
    """O1-Coder's MCTS value: ``alpha * compiled + (1 - alpha) * pass_rate``."""

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"CompiledPassRate.alpha must be in [0, 1], got {self.alpha!r}")

    def __call__(self, report: ExecutionReport) -> float:
        return self.alpha * float(report.compiled) + (1 - self.alpha) * report.pass_rate


OUTCOMES: dict[str, Callable[[], OutcomeFn]] = {
    "pass_rate": lambda: pass_rate,
    "all_pass": AllPass,
    "compiled_pass_rate": CompiledPassRate,
}


def make_outcome(outcome: str | OutcomeFn) -> OutcomeFn:
    """An outcome function by name (``"pass_rate"``, ``"all_pass"``, ``"compiled_pass_rate"``) or as given."""
    if callable(outcome):
        return outcome
    if outcome not in OUTCOMES:
        raise UserError(
            f"unknown outcome {outcome!r}: choose one of {', '.join(OUTCOMES)} or pass a callable"
        )
    return OUTCOMES[outcome]()
