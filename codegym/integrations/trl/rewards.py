"""GRPO reward functions that run each completion's code against its task's tests in one sandbox batch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codegym.env_config import DEFAULTS
from codegym.errors import UserError
from codegym.integrations.trl.data import completion_text, split_steps
from codegym.steps import extract_code

if TYPE_CHECKING:
    from codegym.env import CodeReasonEnv, EpisodeState
    from codegym.rewards import ProcessRewardModel, RewardFn, RewardScheme
    from codegym.sandbox import Sandbox
    from codegym.tasks import Task, TaskSource

logger = logging.getLogger("codegym.integrations.trl")


@dataclass(frozen=True)
class EpisodeScore:
    """What :class:`CodeTestReward` made of one completion.

    Attributes:
        task_id: the task the completion answered.
        reward: the episode's return (sum of the env's per-step rewards): what GRPO receives.
        steps: how many env steps the completion was played as.
        has_code: the completion reached a code action.
        visible_pass_rate: pass rate on the tests that paid (None without code).
        hidden_pass_rate: pass rate on the hidden tests, logged and never paid (0.0 without code).
        note: why the reward is what it is when the episode did not end in code ("" otherwise).
    """

    task_id: str
    reward: float
    steps: int
    has_code: bool
    visible_pass_rate: float | None
    hidden_pass_rate: float
    note: str = ""


class CodeTestReward:
    """A ``reward_funcs`` entry for TRL's ``GRPOTrainer``: the completion's episode return in ``CodeReason-v0``.

    Each completion is split into the env's steps (:func:`~codegym.integrations.trl.split_steps`) and
    played from a fresh episode on the row's ``task_id``, up to its first code action. Reasoning steps
    run no code; the code actions of every completion in the call go to the sandbox in **one**
    ``run_batch`` (through ``CodeReasonEnv.step_batch``), so a GRPO step costs one batch. The env's
    tests that pay (visible, by default) decide the reward; the hidden tests only judge, and their pass
    rate is logged (``log_metric("codegym/hidden_pass_rate")`` and a ``hidden_pass_rate`` column in the
    completions table). The trainer's ``global_step`` is the env's training step, so reward schedules
    such as O1-Coder's alpha(t) follow training.

    A completion without code scores the return of its reasoning steps (0 under ``"terminal"`` and
    ``"o1coder"`` without a PRM) and its note says so; one with more steps than ``max_steps`` is
    truncated by the env (outcome 0). A step longer than ``max_step_chars`` is cut to that length and
    the note says so.

    Args:
        tasks: where ``task_id`` values come from (``"synthetic"`` rebuilds any synthetic id).
        split: the task source's split.
        task_options: options of the task source.
        sandbox: ``"auto"``, ``"local"``, ``"docker"`` or a running sandbox (shared, not closed here).
        sandbox_workers: workers of a sandbox started here.
        reward: the env's reward scheme (``"terminal"``: the outcome R alone; ``"o1coder"``,
            ``"dense"``, ``"potential"`` or a callable).
        reward_options: options of a named scheme.
        outcome: how a test report becomes R (``"pass_rate"``, ``"all_pass"``, ``"compiled_pass_rate"``).
        process_reward: a PRM for the process terms of a scheme, or None.
        test_set: which tests pay: ``"visible"`` or ``"hidden"``.
        visible_tests: None (the task's own) or ``"tcg"`` (generated tests pay).
        max_steps: the env's step limit, the code step included.
        max_step_chars: the longest step; longer ones are cut (the env's limit, 4000 by default).
        timeout_s: per-test time limit.
        task_id_column: the dataset column holding task ids.
        name: the name TRL logs this reward under.

    Example:
        >>> reward = CodeTestReward(sandbox="local")  # doctest: +SKIP
        >>> from codegym.tasks.synthetic import SyntheticTasks
        >>> task = SyntheticTasks("train", max_ops=1).tasks(1, seed=0)[0]  # doctest: +SKIP
        >>> code = "```python\\n" + task.reference_solution + "\\n```"  # doctest: +SKIP
        >>> reward(prompts=[""], completions=[code], task_id=[task.task_id])  # doctest: +SKIP
        [1.0]
    """

    def __init__(
        self,
        tasks: str | TaskSource | Sequence[Task] = "synthetic",
        *,
        split: str | None = None,
        task_options: dict[str, Any] | None = None,
        sandbox: str | Sandbox = "auto",
        sandbox_workers: int = DEFAULTS.sandbox_workers,
        # GRPO's reward is the outcome alone by default (the env's own default, "o1coder", adds process
        # terms that need a PRM); every other default is the env's (codegym.env_config).
        reward: str | RewardScheme | RewardFn = "terminal",
        reward_options: dict[str, Any] | None = None,
        outcome: str = DEFAULTS.outcome,
        process_reward: ProcessRewardModel | None = None,
        test_set: str = DEFAULTS.test_set,
        visible_tests: str | None = None,
        max_steps: int = DEFAULTS.max_steps,
        max_step_chars: int = DEFAULTS.max_step_chars,
        timeout_s: float = DEFAULTS.timeout_s,
        task_id_column: str = "task_id",
        name: str = "codegym_tests",
    ) -> None:
        from codegym.env import CodeReasonEnv

        self.env: CodeReasonEnv = CodeReasonEnv(
            tasks,
            split=split,
            task_options=task_options,
            sandbox=sandbox,
            sandbox_workers=sandbox_workers,
            process_reward=process_reward,
            reward=reward,
            reward_options=reward_options,
            outcome=outcome,
            max_steps=max_steps,
            timeout_s=timeout_s,
            test_set=test_set,
            visible_tests=visible_tests,
            max_step_chars=max_step_chars,
        )
        self.task_id_column = task_id_column
        self.__name__ = name
        self.last_scores: list[EpisodeScore] = []

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        *,
        trainer_state: Any = None,
        log_metric: Callable[[str, float], None] | None = None,
        log_extra: Callable[[str, list], None] | None = None,
        **columns: Any,
    ) -> list[float]:
        """One reward per completion (TRL's reward-function signature; dataset columns arrive as keywords)."""
        if self.task_id_column not in columns:
            raise KeyError(
                f"CodeTestReward needs the dataset column {self.task_id_column!r} (one task id per prompt); "
                f"got columns {sorted(columns)}. Build the dataset with codegym.integrations.trl.grpo_dataset "
                "or pass task_id_column="
            )
        task_ids = list(columns[self.task_id_column])
        if len(task_ids) != len(completions):
            raise UserError(f"{len(completions)} completions but {len(task_ids)} task ids")
        if trainer_state is not None:
            self.env.set_training_step(int(getattr(trainer_state, "global_step", 0)))
        self.last_scores = self.score([completion_text(c) for c in completions], task_ids)
        if log_metric is not None and self.last_scores:
            hidden = [score.hidden_pass_rate for score in self.last_scores]
            log_metric("codegym/hidden_pass_rate", sum(hidden) / len(hidden))
            log_metric("codegym/has_code", sum(s.has_code for s in self.last_scores) / len(self.last_scores))
        if log_extra is not None:
            log_extra("hidden_pass_rate", [score.hidden_pass_rate for score in self.last_scores])
            log_extra("codegym_note", [score.note for score in self.last_scores])
        return [score.reward for score in self.last_scores]

    def score(self, completions: Sequence[str], task_ids: Sequence[str]) -> list[EpisodeScore]:
        """Play each completion as an episode of its task; every code action runs in one sandbox batch."""
        env = self.env
        limit = env.max_step_chars
        finished: dict[int, EpisodeScore] = {}
        code_at: list[tuple[int, EpisodeState, str, float, int, str]] = []
        for index, (text, task_id) in enumerate(zip(completions, task_ids, strict=True)):
            env.reset(options={"task_id": task_id})
            steps = split_steps(text)
            notes = []
            if any(len(step) > limit for step in steps):
                notes.append(f"a step longer than max_step_chars={limit} was cut")
                steps = [step[:limit] for step in steps]
            total, played, info = 0.0, 0, None
            for step in steps:
                if extract_code(step) is not None:
                    # Played below, with every other completion's code, in one sandbox batch.
                    code_at.append((index, env.get_state(), step, total, played, "; ".join(notes)))
                    break
                _, reward, terminated, truncated, info = env.step(step)
                total, played = total + reward, played + 1
                if terminated or truncated:
                    notes.append(info.get("outcome_note", "the episode ended"))
                    break
            else:
                notes.append("no ```python code block: outcome 0" if steps else "empty completion: outcome 0")
            if not code_at or code_at[-1][0] != index:
                finished[index] = EpisodeScore(task_id, total, played, False, None, 0.0, "; ".join(notes))
        if code_at:
            transitions = env.step_batch([item[1] for item in code_at], [item[2] for item in code_at])
            for (index, _, _, total, played, note), transition in zip(code_at, transitions, strict=True):
                info = transition.info
                finished[index] = EpisodeScore(
                    task_ids[index],
                    total + transition.reward,
                    played + 1,
                    True,
                    info["test_report"].pass_rate,
                    float(info["hidden_pass_rate"]),
                    note,
                )
        return [finished[index] for index in range(len(completions))]

    def close(self) -> None:
        """Stop the sandbox this reward function started (a shared one is left running)."""
        self.env.close()

    def __enter__(self) -> CodeTestReward:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
