"""Reward schemes: how process rewards r_t and the outcome R become the reward of each step.

A scheme sees a :class:`RewardContext` after every step and returns a :class:`Reward` (the value and
its named terms, all of which the env puts in ``info["reward_terms"]``). Built-in schemes:

- ``"o1coder"``: O1-Coder's aggregate, paid once at the end:
  ``phi = alpha(t) * R + (1 - alpha(t)) * (1/m) * sum_{j=1..m} gamma^j * r_j`` (arXiv 2412.00154),
  with alpha(t) a schedule over training steps t (linear ``max(0.1, 1 - 0.01 t)`` by default).
- ``"dense"``: r_t on every step, plus R on the last.
- ``"potential"``: R on the last step plus ``gamma * Phi(s') - Phi(s)``, Phi the aggregated PRM
  scores of the steps so far (Ng, Harada and Russell 1999: this shaping leaves optimal policies alone).
- ``"terminal"``: R on the last step, 0 before.
- ``"gated"``: ``R * min_j r_j`` on the last step, 0 before: the outcome counts only as far as the PRM
  trusts the weakest step, so code that passes after wrong reasoning earns little (the min-form credit
  of Cheng et al. 2025, arXiv 2504.15275, applied to the outcome).

A plain callable ``fn(context, **kwargs) -> float`` works too (see :data:`RewardFn`).
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codegym.errors import UserError
from codegym.options import check_keywords
from codegym.rewards.prm import AGGREGATIONS, aggregate

if TYPE_CHECKING:
    from codegym.sandbox import ExecutionReport
    from codegym.tasks import Task


@dataclass(frozen=True)
class RewardContext:
    """What a reward scheme knows after step t.

    Attributes:
        step_index: t, 1-based: the step just taken.
        process_rewards: r_1..r_t from the PRM; empty when the env has no PRM.
        outcome: R, set on the last step only: the outcome of the code on the tests that pay, or 0.0
            when the episode was truncated; None on other steps.
        terminated: the step was the code action.
        truncated: ``max_steps`` ran out without code.
        report: the sandbox's report on the tests that pay (code action only).
        task: the episode's task.
        training_step: the trainer's progress counter, for schedules such as O1-Coder's alpha(t); set
            with ``env.unwrapped.set_training_step(t)`` or ``reset(options={"training_step": t})``.
        steps: the texts of steps 1..t, as the env stored them.
    """

    step_index: int
    process_rewards: tuple[float, ...]
    outcome: float | None
    terminated: bool
    truncated: bool
    report: ExecutionReport | None
    task: Task
    training_step: int = 0
    steps: tuple[str, ...] = ()

    @property
    def is_last(self) -> bool:
        return self.terminated or self.truncated

    @property
    def process_reward(self) -> float:
        """r_t, or 0.0 without a PRM."""
        return self.process_rewards[-1] if self.process_rewards else 0.0


@dataclass(frozen=True)
class Reward:
    """A step's reward and the named terms it was made of."""

    value: float
    terms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "terms", dict(self.terms))


RewardFn = Callable[..., float]
"""A user's reward: ``fn(context: RewardContext, **kwargs) -> float``, called after every step.

Accept ``**kwargs`` so that later versions may pass more keywords without breaking your function.
"""


class RewardScheme(ABC):
    """Turns a :class:`RewardContext` into a :class:`Reward`. Subclass it to add a scheme.

    Attributes:
        name: how ``info`` and logs call the scheme.
    """

    name: str = "custom"

    @abstractmethod
    def __call__(self, context: RewardContext) -> Reward: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# -- O1-Coder's alpha(t) schedules ---------------------------------------------------------------------


@dataclass(frozen=True)
class LinearAlpha:
    """``alpha(t) = max(floor, start - slope * t)``; O1-Coder's code uses start 1, slope 0.01, floor 0.1."""

    start: float = 1.0
    slope: float = 0.01
    floor: float = 0.1

    def __call__(self, training_step: int) -> float:
        return max(self.floor, self.start - self.slope * training_step)


@dataclass(frozen=True)
class LogAlpha:
    """``alpha(t) = max(floor, start - rate * ln(1 + t))``: decays fast early, slowly later."""

    start: float = 1.0
    rate: float = 0.2
    floor: float = 0.1

    def __call__(self, training_step: int) -> float:
        return max(self.floor, self.start - self.rate * math.log1p(training_step))


@dataclass(frozen=True)
class ConstantAlpha:
    """``alpha(t) = value`` for every t."""

    value: float = 0.5

    def __call__(self, training_step: int) -> float:
        return self.value


ALPHA_SCHEDULES: dict[str, type] = {"linear": LinearAlpha, "log": LogAlpha, "constant": ConstantAlpha}


def _alpha_schedule(alpha: str | float | Callable[[int], float]) -> Callable[[int], float]:
    if isinstance(alpha, str):
        if alpha not in ALPHA_SCHEDULES:
            raise UserError(f"unknown alpha schedule {alpha!r}: choose one of {', '.join(ALPHA_SCHEDULES)}")
        return ALPHA_SCHEDULES[alpha]()
    if isinstance(alpha, int | float):
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"a constant alpha must be in [0, 1], got {alpha!r}")
        return ConstantAlpha(float(alpha))
    if callable(alpha):
        return alpha
    raise TypeError(
        f"alpha must be a schedule name, a number or a callable of the training step, got {alpha!r}"
    )


def _check_aggregation(aggregation: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")


# -- the built-in schemes ------------------------------------------------------------------------------


class O1CoderReward(RewardScheme):
    """O1-Coder's ``phi``, paid on the last step; 0 on the steps before.

    ``phi = alpha(t) * R + (1 - alpha(t)) * (1/m) * sum_{j=1..m} gamma^j * r_j`` where m is the number
    of steps in the episode (the code step included) and t the training step. Without a PRM the process
    part is 0, so ``phi = alpha(t) * R``.

    Args:
        alpha: ``"linear"`` (default, ``max(0.1, 1 - 0.01 t)``), ``"log"``, a constant in [0, 1], or any
            callable of the training step.
        gamma: the per-step discount inside the process average (O1-Coder: 0.9).
    """

    name = "o1coder"

    def __init__(self, alpha: str | float | Callable[[int], float] = "linear", gamma: float = 0.9) -> None:
        if not 0.0 < gamma <= 1.0:
            raise UserError(f"gamma must be in (0, 1], got {gamma!r}")
        self.alpha = _alpha_schedule(alpha)
        self.gamma = gamma

    def __call__(self, context: RewardContext) -> Reward:
        if not context.is_last:
            return Reward(0.0, {})
        alpha = float(self.alpha(context.training_step))
        rewards = context.process_rewards
        process = (
            sum(self.gamma**j * r for j, r in enumerate(rewards, start=1)) / len(rewards) if rewards else 0.0
        )
        phi = alpha * context.outcome + (1 - alpha) * process
        return Reward(phi, {"alpha": alpha, "discounted_process_mean": process, "phi": phi})

    def __repr__(self) -> str:
        return f"O1CoderReward(alpha={self.alpha!r}, gamma={self.gamma})"


class DenseReward(RewardScheme):
    """``process_weight * r_t`` on every step, plus ``outcome_weight * R`` on the last."""

    name = "dense"

    def __init__(self, process_weight: float = 1.0, outcome_weight: float = 1.0) -> None:
        self.process_weight = process_weight
        self.outcome_weight = outcome_weight

    def __call__(self, context: RewardContext) -> Reward:
        process = self.process_weight * context.process_reward
        outcome = self.outcome_weight * context.outcome if context.is_last else 0.0
        return Reward(process + outcome, {"weighted_process": process, "weighted_outcome": outcome})

    def __repr__(self) -> str:
        return f"DenseReward(process_weight={self.process_weight}, outcome_weight={self.outcome_weight})"


class PotentialShaping(RewardScheme):
    """R on the last step plus the shaping term ``F = gamma * Phi(s_t) - Phi(s_{t-1})``.

    ``Phi(s)`` aggregates the PRM scores of the steps in s (``"last"`` by default); ``Phi`` of the empty
    state is 0, and so is ``Phi`` of a terminal state, which keeps the shaping policy-invariant (Ng et
    al. 1999) when ``gamma`` equals the agent's discount. A truncated state is not terminal: its
    potential stays, as an agent that bootstraps from it expects.
    """

    name = "potential"

    def __init__(self, gamma: float = 1.0, aggregation: str = "last") -> None:
        if not 0.0 < gamma <= 1.0:
            raise UserError(f"gamma must be in (0, 1], got {gamma!r}")
        _check_aggregation(aggregation)
        self.gamma = gamma
        self.aggregation = aggregation

    def potential(self, process_rewards: tuple[float, ...]) -> float:
        return aggregate(process_rewards, self.aggregation) if process_rewards else 0.0

    def __call__(self, context: RewardContext) -> Reward:
        rewards = context.process_rewards
        before = self.potential(rewards[:-1])
        after = 0.0 if context.terminated else self.potential(rewards)
        shaping = self.gamma * after - before
        outcome = context.outcome if context.is_last else 0.0
        return Reward(
            outcome + shaping, {"potential_before": before, "potential_after": after, "shaping": shaping}
        )

    def __repr__(self) -> str:
        return f"PotentialShaping(gamma={self.gamma}, aggregation={self.aggregation!r})"


class TerminalReward(RewardScheme):
    """R on the last step, 0 before: the outcome alone."""

    name = "terminal"

    def __call__(self, context: RewardContext) -> Reward:
        return Reward(context.outcome if context.is_last else 0.0, {})


class GatedOutcome(RewardScheme):
    """``R * aggregate(r_1..r_m)`` on the last step (``"min"`` by default), 0 before; without a PRM, R.

    An outcome reward pays a passing program whatever reasoning led to it; a policy gradient on it then
    reinforces wrong outlines whose code happened to pass. Gating the outcome by the PRM's weakest step
    pays those little and leaves failing episodes at 0: the PRM can only lower a pass, never reward a
    failure. Measured in the loop's RL stage (``benchmarks/studies/loop_rl.py``), it did no better than O1-Coder's
    reward there: at that budget the policy gradient's updates were mostly noise.
    """

    name = "gated"

    def __init__(self, aggregation: str = "min") -> None:
        _check_aggregation(aggregation)
        self.aggregation = aggregation

    def __call__(self, context: RewardContext) -> Reward:
        if not context.is_last:
            return Reward(0.0, {})
        rewards = context.process_rewards
        gate = aggregate(rewards, self.aggregation) if rewards else 1.0
        return Reward(context.outcome * gate, {"gate": gate})

    def __repr__(self) -> str:
        return f"GatedOutcome(aggregation={self.aggregation!r})"


class CallableReward(RewardScheme):
    """Wraps a user's :data:`RewardFn`; its value appears in ``info`` as the term ``"custom"``."""

    name = "custom"

    def __init__(self, fn: RewardFn, **kwargs: Any) -> None:
        self.fn = fn
        self.kwargs = kwargs

    def __call__(self, context: RewardContext) -> Reward:
        value = self.fn(context, **self.kwargs)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"reward function {self.fn!r} must return a float, got {value!r}") from None
        if not math.isfinite(value):
            raise UserError(f"reward function {self.fn!r} returned {value!r}; rewards must be finite")
        return Reward(value, {"custom": value})

    def __repr__(self) -> str:
        return f"CallableReward({self.fn!r})"


SCHEMES: dict[str, type[RewardScheme]] = {
    "o1coder": O1CoderReward,
    "dense": DenseReward,
    "potential": PotentialShaping,
    "terminal": TerminalReward,
    "gated": GatedOutcome,
}


def _check_reward_fn_options(fn: RewardFn, options: dict[str, Any]) -> None:
    """Refuse reward_options that the user's ``fn(context, **kwargs)`` has no keyword for, at once rather
    than as a TypeError at the first step."""
    try:
        parameters = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a callable without a signature (a C function): nothing to check
        return
    check_keywords(fn, options, f"reward function {fn!r} (reward_options)", taken=parameters[:1])


def make_reward_scheme(reward: str | RewardScheme | RewardFn, **options: Any) -> RewardScheme:
    """A scheme by name (options go to its constructor), a :class:`RewardScheme`, or a user callable.

    Example:
        >>> make_reward_scheme("o1coder", gamma=0.8)
        O1CoderReward(alpha=LinearAlpha(start=1.0, slope=0.01, floor=0.1), gamma=0.8)
    """
    if isinstance(reward, RewardScheme):
        if options:
            raise UserError("reward_options apply to a scheme given by name, not to a RewardScheme instance")
        return reward
    if isinstance(reward, str):
        if reward not in SCHEMES:
            raise UserError(
                f"unknown reward scheme {reward!r}: choose one of {', '.join(SCHEMES)}, "
                "pass a RewardScheme, or a callable fn(context, **kwargs) -> float"
            )
        check_keywords(SCHEMES[reward], options, f"reward scheme {reward!r} (reward_options)")
        return SCHEMES[reward](**options)
    if callable(reward):
        _check_reward_fn_options(reward, options)
        return CallableReward(reward, **options)
    raise TypeError(
        f"reward must be a scheme name, a RewardScheme or a callable, got {type(reward).__name__}"
    )
