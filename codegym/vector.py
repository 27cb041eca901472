"""``CodeReasonVectorEnv``: N CodeReason envs in one process whose code runs in one sandbox batch.

``gym.make_vec("CodeReason-v0", num_envs=N)`` returns this by default. It shares one sandbox among the
N envs and sends every code action of a step to it in a single ``run_batch``, so the sandbox's workers
run them in parallel while the envs' own work (text, PRM, rewards) stays in this process. The
``"sync"`` and ``"async"`` modes of ``make_vec`` work too; each of their envs starts its own sandbox.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from codegym.env import CodeReasonEnv
from codegym.errors import UserError
from codegym.options import check_keywords
from codegym.sandbox import Sandbox, make_sandbox


class CodeReasonVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~codegym.env.CodeReasonEnv` that batch their sandbox runs.

    Autoreset follows Gymnasium's ``NEXT_STEP`` mode: after an env's episode ends, its next action is
    ignored and the env resets (reward 0, not terminated or truncated).

    Args:
        num_envs: how many envs.
        sandbox: as for the env; one sandbox is started and shared (or the given one is used).
        sandbox_workers: workers of the shared sandbox; default ``min(num_envs, cpu count)``.
        **env_kwargs: everything else :class:`~codegym.env.CodeReasonEnv` takes.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        *,
        sandbox: str | Sandbox = "auto",
        sandbox_workers: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        if not (isinstance(num_envs, int) and num_envs >= 1):
            raise UserError(f"num_envs must be an int >= 1, got {num_envs!r}")
        check_keywords(CodeReasonEnv, env_kwargs, "CodeReasonVectorEnv's env options", taken=("sandbox",))
        self._owns_sandbox = not isinstance(sandbox, Sandbox)
        workers = sandbox_workers or max(1, min(num_envs, os.cpu_count() or 1))
        self.sandbox = make_sandbox(sandbox, workers=workers) if self._owns_sandbox else sandbox
        try:
            self.envs = [CodeReasonEnv(sandbox=self.sandbox, **env_kwargs) for _ in range(num_envs)]
        except BaseException:
            if self._owns_sandbox:
                self.sandbox.close()
            raise
        self.num_envs = num_envs
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        """Reset every env; an int seed gives env i the seed ``seed + i``."""
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + index for index in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise UserError(
                    f"got {len(seeds)} seeds for {self.num_envs} envs; pass one per env or an int"
                )
        observations, infos = [], {}
        for index, (env, env_seed) in enumerate(zip(self.envs, seeds, strict=True)):
            observation, info = env.reset(seed=env_seed, options=options)
            observations.append(observation)
            infos = self._add_info(infos, info, index)
        self._autoreset[:] = False
        return tuple(observations), infos

    def step(
        self, actions: Sequence[str]
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env; all code actions of this step run in one sandbox batch."""
        if isinstance(actions, str) or len(actions) != self.num_envs:
            raise UserError(f"step takes a sequence of {self.num_envs} actions (one str per env)")
        pendings: list[Any] = [None] * self.num_envs
        for index, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if not self._autoreset[index]:
                pendings[index] = env.begin_step(action)
        jobs = [job for pending in pendings if pending is not None for job in pending.jobs]
        first = self.envs[0]
        reports = iter(
            self.sandbox.run_batch(jobs, timeout_s=first.timeout_s, memory_mb=first.memory_mb) if jobs else []
        )

        observations, infos = [], {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        for index, (env, pending) in enumerate(zip(self.envs, pendings, strict=True)):
            if pending is None:
                observation, info = env.reset()
            else:
                env_reports = [next(reports) for _ in pending.jobs]
                observation, rewards[index], terminations[index], truncations[index], info = env.finish_step(
                    pending, env_reports
                )
            observations.append(observation)
            infos = self._add_info(infos, info, index)
        self._autoreset = terminations | truncations
        return tuple(observations), rewards, terminations, truncations, infos

    def set_training_step(self, training_step: int) -> None:
        """Set the trainer's progress on every env (O1-Coder's alpha(t))."""
        for env in self.envs:
            env.set_training_step(training_step)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
        if self._owns_sandbox:
            self.sandbox.close()
