"""``codegym serve``: ``CodeReason-v0`` as an OpenEnv server (needs ``pip install "codegym[serve]"``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from codegym.cli import UsageError, command
from codegym.cli.common import add_sandbox_option, positive_int

TOKEN_VARIABLE = "CODEGYM_SERVE_TOKEN"


def add_commands(commands: argparse._SubParsersAction) -> None:
    from codegym.integrations.openenv.config import ServeConfig

    defaults = ServeConfig()
    serve = commands.add_parser(
        "serve",
        help="serve CodeReason-v0 over OpenEnv's HTTP/WebSocket protocol",
        description="Serve CodeReason-v0 as an OpenEnv environment (openenv-core): POST /reset, POST "
        '/step with {"action": {"step": "..."}}, GET /state, GET /health, and WebSocket sessions on /ws, '
        "each with its own env over one shared sandbox. Play it with "
        "codegym.integrations.openenv.CodeReasonClient (a gymnasium.Env) or OpenEnv's EnvClient.",
    )
    serve.add_argument(
        "--host", default=defaults.host, help="address to bind (default: %(default)s, loopback)"
    )
    serve.add_argument(
        "--port", type=int, default=defaults.port, help="0 picks a free port (default: %(default)s)"
    )
    serve.add_argument("--tasks", default=defaults.tasks, help="task source (default: %(default)s)")
    serve.add_argument("--split", default=None, help="the task source's split (default: its own)")
    add_sandbox_option(serve)
    serve.add_argument(
        "--sandbox-workers",
        type=positive_int,
        default=defaults.sandbox_workers,
        help="programs run at once, shared by all sessions (default: %(default)s)",
    )
    serve.add_argument("--reward", default=defaults.reward, help="reward scheme (default: %(default)s)")
    serve.add_argument(
        "--process-reward",
        default=None,
        help="a PRM scoring every step, shared by all sessions: tiny, a folder or a hub id (default: none)",
    )
    serve.add_argument(
        "--outcome", default=defaults.outcome, help="outcome of a test report (default: %(default)s)"
    )
    serve.add_argument(
        "--max-steps",
        type=positive_int,
        default=defaults.max_steps,
        help="steps per episode (default: %(default)s)",
    )
    serve.add_argument(
        "--timeout-s", type=float, default=defaults.timeout_s, help="per-test limit (default: %(default)s)"
    )
    serve.add_argument("--visible-tests", choices=("tcg",), default=None, help="tcg: generated tests pay")
    limits = serve.add_argument_group("limits")
    limits.add_argument(
        "--max-sessions",
        type=positive_int,
        default=defaults.max_sessions,
        help="concurrent WebSocket sessions (default: %(default)s)",
    )
    limits.add_argument(
        "--idle-timeout-s",
        type=float,
        default=defaults.idle_timeout_s,
        help="close a session idle this long (default: %(default)s)",
    )
    limits.add_argument(
        "--max-step-chars",
        type=positive_int,
        default=defaults.max_step_chars,
        help="longest step accepted (default: %(default)s)",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=defaults.max_body_bytes,
        help="largest HTTP body or WebSocket message (default: %(default)s)",
    )
    limits.add_argument(
        "--token-env",
        default=TOKEN_VARIABLE,
        help="environment variable holding a bearer token that every request must carry (/health "
        "excepted); unset or empty: no token (default: %(default)s)",
    )
    command(serve, _serve)


def _serve(args: argparse.Namespace) -> int:
    from codegym.integrations.openenv.config import ServeConfig

    # The token comes from the environment, never argv: argv is visible to every user in `ps`.
    token = os.environ.get(args.token_env) or None
    try:
        config = ServeConfig(
            host=args.host,
            port=args.port,
            tasks=args.tasks,
            split=args.split,
            sandbox=args.sandbox,
            sandbox_workers=args.sandbox_workers,
            reward=args.reward,
            process_reward=args.process_reward,
            outcome=args.outcome,
            max_steps=args.max_steps,
            timeout_s=args.timeout_s,
            visible_tests=args.visible_tests,
            max_sessions=args.max_sessions,
            idle_timeout_s=args.idle_timeout_s,
            max_step_chars=args.max_step_chars,
            max_body_bytes=args.max_body_bytes,
            token=token,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # Checked after the options, so a bad option is reported without loading the server (seconds).
    try:
        from codegym.integrations.openenv.server import serve
        from codegym.integrations.openenv.session import CodeReasonSession  # noqa: F401 (needs openenv-core)
    except ImportError as exc:
        raise UsageError(f"codegym serve needs openenv-core ({exc}): pip install 'codegym[serve]'") from None

    def ready(url: str) -> None:
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "token"}
        print(f"serving CodeReason-v0 (OpenEnv) on {url}", flush=True)
        print(
            f"sessions <= {fields['max_sessions']}, idle timeout {fields['idle_timeout_s']} s, body <= "
            f"{fields['max_body_bytes']} bytes, token {'required' if token else 'off'}",
            flush=True,
        )

    try:
        serve(config, ready=ready)
    except KeyboardInterrupt:
        print("codegym serve: stopped", file=sys.stderr)
    return 0
