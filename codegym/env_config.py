"""CodeReason-v0's options, declared once: :class:`EnvConfig`.

Every front end of the env takes its defaults from here rather than writing them again: the env itself
(:class:`~codegym.env.CodeReasonEnv`), ``codegym serve`` and its :class:`~codegym.integrations.openenv.
config.ServeConfig`, the OpenEnv client's action bound, and the TRL integration's reward function and
tool env. Standard library only, so the light front ends (``codegym serve --help``) stay light.

Example:
    >>> EnvConfig().max_step_chars
    4000
    >>> EnvConfig(max_steps=0)
    Traceback (most recent call last):
        ...
    codegym.errors.UserError: max_steps must be an int in [1, 1000], got 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from codegym.errors import UserError

TEST_SETS = ("visible", "hidden")


def _int_in(value: Any, low: int, high: int | None = None) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class EnvConfig:
    """The env's scalar options with their defaults, checked when made (a :class:`UserError` names the
    bad value). ``CodeReasonEnv(**EnvConfig(...).env_kwargs(), tasks=..., sandbox=...)`` makes an env with
    them; the env keeps the one it was made with as ``env.config``."""

    reward: Any = "o1coder"
    """the reward scheme: a name (o1coder, dense, potential, terminal, gated), a RewardScheme or
    fn(context, **kwargs) -> float"""
    outcome: Any = "pass_rate"
    """how a test report becomes the outcome R: pass_rate, all_pass, compiled_pass_rate or a callable"""
    max_steps: int = 8
    """steps per episode, the code step included (1 to 1000)"""
    timeout_s: float = 3.0
    """the time limit of one test, in seconds (more than 0, at most 3600)"""
    memory_mb: int = 512
    """the memory limit of a program under test, in MiB (at least 64)"""
    test_set: str = "visible"
    """which tests pay: visible (the hidden ones only judge) or hidden"""
    visible_tests_n: int = 10
    """how many generated visible tests a task keeps (with visible_tests='tcg' or a generator)"""
    max_step_chars: int = 4000
    """the longest step the env accepts, in characters"""
    max_problem_chars: int = 8000
    """the longest problem statement the env accepts, in characters"""
    verdict_cache_size: int = 4096
    """verdicts remembered by (task, program, tests, limits); 0 turns the cache off"""
    sandbox_workers: int = 2
    """workers of a sandbox the env starts itself (programs run at once); checked by the sandbox"""

    def __post_init__(self) -> None:
        bad = []
        if not _int_in(self.max_steps, 1, 1000):
            bad.append(f"max_steps must be an int in [1, 1000], got {self.max_steps!r}")
        if not (_number(self.timeout_s) and 0 < self.timeout_s <= 3600):
            bad.append(f"timeout_s must be a number of seconds in (0, 3600], got {self.timeout_s!r}")
        if not _int_in(self.memory_mb, 64):
            bad.append(f"memory_mb must be an int of at least 64 (MiB), got {self.memory_mb!r}")
        if self.test_set not in TEST_SETS:
            bad.append(f"test_set must be 'visible' or 'hidden', got {self.test_set!r}")
        if not _int_in(self.visible_tests_n, 1):
            bad.append(f"visible_tests_n must be a positive int, got {self.visible_tests_n!r}")
        if not _int_in(self.max_step_chars, 1):
            bad.append(f"max_step_chars must be a positive int, got {self.max_step_chars!r}")
        if not _int_in(self.max_problem_chars, 1):
            bad.append(f"max_problem_chars must be a positive int, got {self.max_problem_chars!r}")
        if not _int_in(self.verdict_cache_size, 0):
            bad.append(
                f"verdict_cache_size must be an int >= 0 (0 turns caching off), got {self.verdict_cache_size!r}"
            )
        if bad:
            raise UserError("; ".join(bad))

    def env_kwargs(self) -> dict[str, Any]:
        """The options as ``CodeReasonEnv`` keyword arguments.

        Example:
            >>> EnvConfig(max_steps=4).env_kwargs()["max_steps"]
            4
        """
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}


DEFAULTS = EnvConfig()
"""The defaults every front end shares (read a default as ``DEFAULTS.max_step_chars``)."""


__all__ = ["DEFAULTS", "TEST_SETS", "EnvConfig"]
