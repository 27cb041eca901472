"""``CodeReasonClient``: a ``gymnasium.Env`` that plays ``CodeReason-v0`` on a ``codegym serve`` server.

It speaks OpenEnv's WebSocket protocol (``{"type": "reset" | "step" | "state" | "close", "data": ...}``
on ``/ws``), one session per client, and needs only the ``websockets`` package (not ``openenv-core``).
Besides ``reset`` / ``step`` it has the env's ``get_state`` / ``set_state`` / ``step_batch``, backed by
the server's snapshots, so every agent in :mod:`codegym.agents` plays a remote env unchanged.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from codegym.env_config import DEFAULTS
from codegym.errors import UserError
from codegym.spaces import UnicodeText

DEFAULT_URL = "http://127.0.0.1:8000"
_LEADING_CODE = re.compile(r"^([A-Z][A-Z_]+): ")


class RemoteEnvError(RuntimeError):
    """The server answered with an error (or went away); ``code`` is its machine-readable name."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RemoteTask:
    """What a client knows of the server's task: its id, problem and entry point."""

    task_id: str
    problem: str
    entry_point: str | None


@dataclass(frozen=True)
class RemoteState:
    """A snapshot of a remote episode (from :meth:`CodeReasonClient.get_state`); ``snapshot`` is the
    server's id for it."""

    task: RemoteTask
    steps: tuple[str, ...]
    process_rewards: tuple[float, ...]
    rewards: tuple[float, ...]
    done: bool
    snapshot: int


class CodeReasonClient(gym.Env[str, str]):
    """``CodeReason-v0`` served by ``codegym serve``, as a local ``gymnasium.Env``.

    Observations, rewards, ``terminated`` / ``truncated`` and ``info`` are what the server's env returned;
    ``info["test_report"]`` and ``info["hidden_report"]`` come back as
    :class:`~codegym.sandbox.ExecutionReport` objects, as from the local env. Errors the server reports
    raise :class:`RemoteEnvError` with its message. If the server ends the session (idle timeout,
    restart), the next ``reset`` opens a new one.

    Args:
        url: the server's base URL (``http://`` or ``ws://``).
        token: the server's bearer token, if it has one.
        timeout_s: how long to wait for a reply (a code step runs tests first).
        max_step_chars: the action space's bound (match the server's ``--max-step-chars``).

    Example:
        >>> env = CodeReasonClient("http://127.0.0.1:8000")  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
        >>> obs, reward, terminated, truncated, info = env.step("Outline: ...")  # doctest: +SKIP
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout_s: float = 60.0,
        max_step_chars: int = DEFAULTS.max_step_chars,
        render_mode: str | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://", "ws://", "wss://")):
            raise UserError(f"url must start with http://, https://, ws:// or wss://, got {url!r}")
        self.url = url.rstrip("/")
        self.ws_url = (
            self.url.replace("http", "ws", 1) + "/ws" if self.url.startswith("http") else self.url + "/ws"
        )
        self.token = token
        self.timeout_s = timeout_s
        self.render_mode = render_mode
        self.action_space = UnicodeText(max_step_chars)
        self.observation_space = UnicodeText(1 << 20)
        self._connection: Any = None
        self._state: RemoteState | None = None
        self._server_at: int | None = None  # the snapshot the server's episode is on

    # -- the Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        """Start an episode on the server: ``options`` may hold ``task_id`` and ``training_step``."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task_id", "training_step"}
        if unknown:
            raise UserError(f"unknown reset options {sorted(unknown)}; known: 'task_id', 'training_step'")
        data = {key: value for key, value in options.items() if value is not None}
        if seed is not None:
            data["seed"] = seed
        reply = self._request({"type": "reset", "data": data}, reconnect=True)
        observation, _, _, _, info = self._unpack(reply)
        task = RemoteTask(info["task_id"], info["problem"], info.get("entry_point"))
        self._state = RemoteState(task, (), (), (), False, reply["observation"]["snapshot"])
        self._server_at = self._state.snapshot
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._state is None:
            raise RuntimeError("call reset() before using step()")
        self._state, transition = self._play(self._state, action)
        return transition[:5]

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._state is None:
            return None
        from codegym.steps import render_state

        return render_state(self._state.task.problem, self._state.steps)

    def close(self) -> None:
        """Close the session (the server closes its env)."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # the server may already be gone: close anyway
                self._connection.send(json.dumps({"type": "close"}))
            self._connection.close()
            self._connection = None
        super().close()

    # -- what agents use: snapshots and batches ------------------------------------------------------

    def get_state(self) -> RemoteState:
        """A snapshot of the current episode (local; the server holds the state it names)."""
        if self._state is None:
            raise RuntimeError("call reset() before using get_state()")
        return self._state

    def set_state(self, state: RemoteState) -> str:
        """Return to a snapshot from :meth:`get_state`; the next step is played from it."""
        if not isinstance(state, RemoteState):
            raise TypeError(f"set_state takes a RemoteState from get_state(), got {type(state).__name__}")
        from codegym.steps import render_state

        self._state = state
        return render_state(state.task.problem, state.steps)

    def step_batch(self, states: list[RemoteState], actions: list[str]) -> list[Any]:
        """Play ``actions[i]`` from ``states[i]``, like the local env's ``step_batch`` (one request each;
        the current episode is unchanged)."""
        from codegym.env import Transition

        if len(states) != len(actions):
            raise UserError(
                f"step_batch needs one action per state, got {len(states)} states and {len(actions)} actions"
            )
        transitions = []
        for state, action in zip(states, actions, strict=True):
            after, (observation, reward, terminated, truncated, info, runs) = self._play(state, action)
            transitions.append(Transition(after, observation, reward, terminated, truncated, info, runs))
        return transitions

    @property
    def task(self) -> RemoteTask:
        """The current episode's task."""
        return self.get_state().task

    # -- internals -----------------------------------------------------------------------------------

    def _play(self, state: RemoteState, action: str) -> tuple[RemoteState, tuple]:
        if not isinstance(action, str):
            raise TypeError(f"an action is one reasoning step as a str, got {type(action).__name__}")
        data: dict[str, Any] = {"step": action}
        if state.snapshot != self._server_at:
            data["restore"] = state.snapshot
        reply = self._request({"type": "step", "data": data})
        observation, reward, terminated, truncated, info = self._unpack(reply)
        after = RemoteState(
            state.task,
            (*state.steps, action),
            tuple(info.get("process_rewards") or ()),
            (*state.rewards, reward),
            terminated or truncated,
            reply["observation"]["snapshot"],
        )
        self._server_at = after.snapshot
        runs = 0
        if terminated and not info.get("verdict_cached", True):
            runs = 1 if info.get("visible_source") == "hidden" or info.get("paid_by") == "hidden" else 2
        return after, (observation, reward, terminated, truncated, info, runs)

    def _unpack(self, reply: dict[str, Any]) -> tuple[str, float, bool, bool, dict]:
        from codegym.sandbox.report import ExecutionReport, TestResult, TestStatus

        observation = reply["observation"]
        info = dict(observation.get("info") or {})
        for key in ("test_report", "hidden_report"):
            report = info.get(key)
            if isinstance(report, dict):
                info[key] = ExecutionReport(
                    compiled=report["compiled"],
                    tests=tuple(
                        TestResult(
                            TestStatus(test["status"]),
                            test.get("error_type"),
                            test.get("message", ""),
                            test.get("duration_s", 0.0),
                            test.get("returned"),
                        )
                        for test in report["tests"]
                    ),
                    stdout=report.get("stdout", ""),
                    stderr=report.get("stderr", ""),
                    duration_s=report.get("duration_s", 0.0),
                    backend=report.get("backend", ""),
                )
        reward = float(reply.get("reward") or 0.0)
        return (
            observation["state"],
            reward,
            bool(observation["terminated"]),
            bool(observation["truncated"]),
            info,
        )

    def _connect(self) -> None:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            # __enter__ opens it: the form every websockets version since 13 accepts without a warning.
            self._connection = connect(
                self.ws_url, additional_headers=headers, open_timeout=self.timeout_s, max_size=None
            ).__enter__()
        except InvalidStatus as exc:
            status = exc.response.status_code
            hint = " (missing or wrong bearer token: pass token=)" if status in (401, 403) else ""
            raise RemoteEnvError(
                f"{self.ws_url} refused the session: HTTP {status}{hint}", "REFUSED"
            ) from None
        except OSError as exc:
            raise RemoteEnvError(
                f"cannot reach {self.ws_url}: {exc}; is `codegym serve` running there?", "UNREACHABLE"
            ) from None

    def _request(self, message: dict[str, Any], *, reconnect: bool = False) -> dict[str, Any]:
        """Send one message and return the reply's ``data``; raises :class:`RemoteEnvError` on an error."""
        from websockets.exceptions import ConnectionClosed

        if self._connection is None:
            if not reconnect:
                raise RemoteEnvError("the session has ended; call reset() to start a new one", "NO_SESSION")
            self._connect()
        # A server that refuses a new session (at capacity) sends its error and closes at once, so the
        # send can fail while the error waits to be read: read it either way.
        with contextlib.suppress(ConnectionClosed):
            self._connection.send(json.dumps(message))
        try:
            reply = json.loads(self._connection.recv(timeout=self.timeout_s))
        except ConnectionClosed as exc:
            self._connection, self._state = None, None
            raise RemoteEnvError(
                f"the server closed the session ({exc}); call reset() to start a new one", "SESSION_GONE"
            ) from None
        except TimeoutError:
            self._connection.close()
            self._connection, self._state = None, None
            raise RemoteEnvError(
                f"no reply within {self.timeout_s} s; the session was dropped (raise timeout_s?)", "TIMEOUT"
            ) from None
        if reply.get("type") == "error":
            data = reply.get("data") or {}
            text = str(data.get("message", "unknown error"))
            # Our own errors lead with their code ("STEP_BEFORE_RESET: ..."); OpenEnv's carry it beside.
            leading = _LEADING_CODE.match(text)
            code = leading.group(1) if leading else str(data.get("code"))
            if code in ("SESSION_CLOSED", "CAPACITY_REACHED") or data.get("code") == "CAPACITY_REACHED":
                self._connection.close()
                self._connection, self._state = None, None
            errors = data.get("errors")
            raise RemoteEnvError(text + (f" {errors}" if errors else ""), code)
        return reply.get("data") or {}
