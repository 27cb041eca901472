"""``rollout``: a policy's episodes on a set of tasks, through the agents' engine, in batches.

:func:`rollout` plays ``samples_per_task`` episodes of every task with a :class:`~codegym.models.Policy`
through :class:`~codegym.agents.SamplingAgent`: at each depth, every unfinished episode's prompt goes into
one ``Policy.sample`` call and every code action of that depth into one sandbox batch. ``codegym eval``,
the loop's checks and policy gradient all measure with it; :mod:`codegym.evaluation` scores what it
returns (pass@k, ASPR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from codegym.agents.sampling import SamplingAgent
from codegym.env import CodeReasonEnv
from codegym.env_config import DEFAULTS
from codegym.errors import UserError
from codegym.options import check_keywords
from codegym.sandbox import Sandbox, make_sandbox
from codegym.tasks.task import Task, TaskList

if TYPE_CHECKING:
    from codegym.agents.base import Episode
    from codegym.models.policy import Policy


_ROLLOUT_OWN = ("tasks", "sandbox", "max_steps", "timeout_s")  # rollout's own arguments, not env_options


def rollout(
    policy: Policy,
    tasks: Sequence[Task],
    *,
    samples_per_task: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    max_steps: int = DEFAULTS.max_steps,
    max_new_tokens: int = 256,
    sandbox: str | Sandbox = "auto",
    timeout_s: float = DEFAULTS.timeout_s,
    progress: bool = False,
    env_options: dict | None = None,
    training_step: int | None = None,
) -> list[Episode]:
    """Play ``samples_per_task`` episodes per task; results come task by task, samples in order.

    This is :class:`~codegym.agents.SamplingAgent` (greedy at ``temperature=0``) solving every sample as
    one batch: the engine, the episode type (:class:`~codegym.agents.Episode`, with ``sample`` set) and
    the seeding rule are the agents', so ``codegym eval``, the loop's evaluation and policy gradient
    measure the same thing. Seeds: the agent's i-th policy call (here depth i, all unfinished episodes in
    one ``Policy.sample`` call) samples with ``(seed, i)`` mixed into one int, so a run repeats exactly;
    every task is reset with ``seed``. With ``temperature=0`` the samples of a task are identical (so use 1).
    ``sandbox`` is a name (started here and closed at the end) or a running sandbox the caller owns.
    ``env_options`` go to :class:`~codegym.env.CodeReasonEnv` (``reward``, ``process_reward``,
    ``visible_tests``, ...), so the episodes' rewards follow any scheme; ``training_step`` feeds reward
    schedules such as O1-Coder's alpha(t).
    """
    if not tasks:
        raise UserError("rollout needs at least one task")
    if not (isinstance(samples_per_task, int) and samples_per_task >= 1):
        raise UserError(f"samples_per_task must be an int >= 1, got {samples_per_task!r}")
    env_options = dict(env_options or {})
    clashing = sorted(set(env_options) & set(_ROLLOUT_OWN))
    if clashing:
        raise UserError(f"env_options must not set {clashing}: they are rollout's own arguments")
    check_keywords(CodeReasonEnv, env_options, "CodeReasonEnv (env_options)", taken=_ROLLOUT_OWN)
    owns_sandbox = not isinstance(sandbox, Sandbox)
    box = make_sandbox(sandbox) if owns_sandbox else sandbox
    try:
        # One env plays every episode from its snapshot (step_batch), so all episodes share one verdict
        # cache, each depth's code runs in one sandbox batch, and nothing is built per episode.
        env = CodeReasonEnv(
            tasks=TaskList(list(tasks)), sandbox=box, max_steps=max_steps, timeout_s=timeout_s, **env_options
        )
        if training_step is not None:
            env.set_training_step(training_step)
        bar = _progress_bar(max_steps, progress)
        agent = SamplingAgent(
            _Counted(policy, bar), temperature=temperature, seed=seed, max_new_tokens=max_new_tokens
        )
        ids = [task.task_id for task in tasks for _ in range(samples_per_task)]
        episodes = agent.solve_many(env, ids, seed=seed)
        bar.close()
        return [replace(e, sample=i % samples_per_task) for i, e in enumerate(episodes)]
    finally:
        if owns_sandbox:
            box.close()


class _Counted:
    """The policy, ticking a progress bar at each ``sample`` call (one per depth)."""

    def __init__(self, policy: Policy, bar) -> None:
        self._policy, self._bar = policy, bar

    def sample(self, *args, **kwargs):
        samples = self._policy.sample(*args, **kwargs)
        self._bar.update(1)
        return samples

    def __getattr__(self, name: str):
        return getattr(self._policy, name)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="episodes, by depth", unit="depth", disable=not enabled)


__all__ = ["rollout"]
