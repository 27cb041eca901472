"""One server session's environment: ``CodeReason-v0`` behind OpenEnv's ``Environment`` interface."""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata

from codegym.integrations.openenv.wire import (
    CodeReasonAction,
    CodeReasonObservation,
    CodeReasonState,
    plain,
)
from codegym.verdicts import LRUCache

if TYPE_CHECKING:
    from codegym.env import CodeReasonEnv, EpisodeState

RESET_FIELDS = ("seed", "episode_id", "task_id", "training_step")


class RequestError(ValueError):
    """A request the server cannot serve as sent; the message names the problem and the fix.

    Attributes:
        code: a short machine-readable name (``STEP_BEFORE_RESET``, ``UNKNOWN_FIELDS``, ...).
        status: the HTTP status it maps to.
    """

    def __init__(self, message: str, code: str, status: int = 400) -> None:
        # The code leads the text: OpenEnv's WebSocket errors carry only the message.
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status


class CodeReasonSession(Environment[CodeReasonAction, CodeReasonObservation, CodeReasonState]):
    """A ``CodeReason-v0`` episode for one client: the server makes one per WebSocket session.

    Every session has its own env (its own episode, RNG and caches) over the sandbox the server shares
    among all of them. Observations carry a ``snapshot`` id; an action with ``restore=<id>`` plays its
    step from that snapshot (the last ``snapshots`` of them are kept), which is how a remote tree
    search branches.

    Args:
        env: the session's env (over the shared sandbox; closing it leaves the sandbox running).
        snapshots: how many snapshots the session remembers.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env: CodeReasonEnv, snapshots: int = 4096) -> None:
        super().__init__()
        self._env = env
        self._snapshots: LRUCache[EpisodeState] = LRUCache(snapshots)
        self._ids = itertools.count()
        self._episode_id: str | None = None
        self._closed = False
        self._lock = threading.Lock()

    # -- OpenEnv's Environment interface ---------------------------------------------------------------

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        training_step: int | None = None,
        **unknown: Any,
    ) -> CodeReasonObservation:
        """Start an episode: on ``task_id``, else on a task drawn with ``seed``."""
        if unknown:
            raise RequestError(
                f"unknown reset fields {sorted(unknown)}; the known ones are {list(RESET_FIELDS)}",
                "UNKNOWN_FIELDS",
            )
        options: dict[str, Any] = {}
        if task_id is not None:
            options["task_id"] = task_id
        if training_step is not None:
            options["training_step"] = training_step
        with self._lock:
            self._check_open()
            observation, info = self._env.reset(seed=seed, options=options or None)
            self._episode_id = episode_id or info["task_id"]
            return self._observation(observation, None, False, False, info)

    def step(
        self, action: CodeReasonAction, timeout_s: float | None = None, **kwargs: Any
    ) -> CodeReasonObservation:
        """Play ``action.step`` (from ``action.restore`` when given).

        ``timeout_s`` (OpenEnv's optional per-request limit) is not used: every test the step runs has
        the server's own per-test limit (``--timeout-s``).
        """
        # OpenEnv's StepRequest lets any extra top-level field through to here; name the stray ones.
        unknown = set(kwargs) - {"request_id"}
        if unknown:
            raise RequestError(
                f"unknown step fields {sorted(unknown)}; a step request is {{'action': {{'step': ...}}}} "
                "(optionally with 'timeout_s' and 'request_id')",
                "UNKNOWN_FIELDS",
            )
        with self._lock:
            self._check_open()
            if self._episode_id is None:
                raise RequestError(
                    "call reset before step: this session has no episode yet. (Over plain HTTP every "
                    "request gets a fresh env, so POST /step always lands here: play episodes over the "
                    "WebSocket /ws, e.g. with codegym.integrations.openenv.CodeReasonClient.)",
                    "STEP_BEFORE_RESET",
                    status=409,
                )
            if action.restore is not None:
                snapshot = self._snapshots.get(action.restore)
                if snapshot is None:
                    raise RequestError(
                        f"unknown snapshot {action.restore}: this session never gave it, or it is older "
                        f"than the last {self._snapshots.maxsize} snapshots it keeps",
                        "UNKNOWN_SNAPSHOT",
                        status=404,
                    )
                before = self._env.get_state()
                self._env.set_state(snapshot)
                try:
                    observation, reward, terminated, truncated, info = self._env.step(action.step)
                except Exception:
                    self._env.set_state(before)  # a refused step leaves the episode where it was
                    raise
            else:
                observation, reward, terminated, truncated, info = self._env.step(action.step)
            return self._observation(observation, reward, terminated, truncated, info)

    @property
    def state(self) -> CodeReasonState:
        episode = self._env.get_state() if self._episode_id is not None else None
        return CodeReasonState(
            episode_id=self._episode_id,
            step_count=len(episode.steps) if episode else 0,
            task_id=episode.task.task_id if episode else None,
            steps=list(episode.steps) if episode else [],
            done=bool(episode and episode.done),
        )

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name="CodeReason-v0",
            description="Reason in steps, then write code that runs against tests (CodeGym, after O1-Coder)",
            version="0",
        )

    def close(self) -> None:
        """End the session (the server calls this on disconnect or idle timeout)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._env.close()

    # -- internals -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RequestError(
                "this session was closed by the server (idle longer than its idle timeout, or shutting "
                "down); open a new connection and call reset",
                "SESSION_CLOSED",
                status=410,
            )

    def _observation(
        self,
        observation: str,
        reward: float | None,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> CodeReasonObservation:
        snapshot = next(self._ids)
        self._snapshots.put(snapshot, self._env.get_state())
        return CodeReasonObservation(
            state=observation,
            reward=reward,
            done=terminated or truncated,
            terminated=terminated,
            truncated=truncated,
            info=plain(info),
            snapshot=snapshot,
        )
