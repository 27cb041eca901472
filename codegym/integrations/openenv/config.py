"""The options of ``codegym serve`` (light: no server library is imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from codegym.env_config import DEFAULTS, EnvConfig
from codegym.errors import UserError


@dataclass(frozen=True)
class ServeConfig:
    """How ``codegym serve`` runs (every field is a command-line option).

    Attributes:
        host: the address to bind; 127.0.0.1 (loopback) unless you mean to expose it.
        port: the TCP port; 0 picks a free one (printed at start).
        tasks: the env's task source (``"synthetic"``, ``"humaneval"``, ``"jsonl:PATH"``, ...).
        split: the task source's split.
        sandbox: ``"auto"``, ``"local"`` or ``"docker"``: one sandbox shared by every session.
        sandbox_workers: its workers (the number of programs run at once, across sessions).
        reward: the env's reward scheme.
        process_reward: a PRM scoring every step (``"tiny"``, a folder or a hub id), shared by all
            sessions, or None; its score reaches clients as ``info["process_reward"]``.
        outcome: how a test report becomes the outcome.
        max_steps: steps per episode, the code step included.
        timeout_s: per-test time limit.
        visible_tests: None, or ``"tcg"`` for generated visible tests.
        max_sessions: concurrent WebSocket sessions; one more gets a CAPACITY_REACHED error.
        idle_timeout_s: a session idle this long is closed (checked every max(timeout/4, 5) s).
        max_step_chars: the longest step the env accepts.
        max_body_bytes: the largest HTTP body or WebSocket message.
        token: a bearer token every request must carry (``/health`` excepted), or None.
        snapshots_per_session: snapshots a session keeps for ``restore``.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    tasks: str = "synthetic"
    split: str | None = None
    sandbox: str = "auto"
    # The env's options default to the env's own (codegym.env_config), never written again here.
    sandbox_workers: int = DEFAULTS.sandbox_workers
    reward: str = DEFAULTS.reward
    process_reward: str | None = None
    outcome: str = DEFAULTS.outcome
    max_steps: int = DEFAULTS.max_steps
    timeout_s: float = DEFAULTS.timeout_s
    visible_tests: str | None = None
    max_sessions: int = 16
    idle_timeout_s: float = 600.0
    max_step_chars: int = DEFAULTS.max_step_chars
    max_body_bytes: int = 1 << 20
    token: str | None = None
    snapshots_per_session: int = 4096

    def __post_init__(self) -> None:
        self.env_config()  # the env's options are refused here, before the server loads
        if not (isinstance(self.max_sessions, int) and self.max_sessions >= 1):
            raise UserError(f"max_sessions must be an int >= 1, got {self.max_sessions!r}")
        if not self.idle_timeout_s > 0:
            raise UserError(f"idle_timeout_s must be positive, got {self.idle_timeout_s!r}")
        if self.max_body_bytes < 1024:
            raise UserError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")

    def env_config(self) -> EnvConfig:
        """The options every session's env is made with (the rest are the env's defaults)."""
        return EnvConfig(
            reward=self.reward,
            outcome=self.outcome,
            max_steps=self.max_steps,
            timeout_s=self.timeout_s,
            max_step_chars=self.max_step_chars,
            sandbox_workers=self.sandbox_workers,
        )
