"""``codegym serve``: ``CodeReason-v0`` as an OpenEnv server, built on ``openenv-core``.

OpenEnv's app provides the protocol: ``POST /reset``, ``POST /step`` (``{"action": {"step": ...}}``),
``GET /state``, ``GET /health``, ``GET /schema`` and the WebSocket ``/ws``, where each connection is a
session with its own env. Plain HTTP ``/reset`` and ``/step`` are stateless in OpenEnv (every request
gets a fresh env), so episodes are played over ``/ws``: OpenEnv's ``EnvClient`` and
:class:`~codegym.integrations.openenv.CodeReasonClient` both do.

What this module adds: the session env (:class:`~codegym.integrations.openenv.session.CodeReasonSession`)
over one sandbox and one task source shared by every session; limits on sessions, idle time, step
length and request size; an optional bearer token; and JSON error responses for our own errors.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from codegym.integrations.openenv.config import ServeConfig
from codegym.integrations.openenv.guard import Guard

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from codegym.integrations.openenv.session import CodeReasonSession
    from codegym.sandbox import Sandbox

logger = logging.getLogger("codegym.serve")

# uvicorn's own cap on one WebSocket message, past which it closes the connection (code 1009). It sits
# above the Guard's limit so that an oversized message normally gets the Guard's error and the session
# lives on.
WS_HARD_LIMIT_FACTOR = 4


class SerializedPRM:
    """A process reward model whose ``score`` one thread at a time may call: the sessions of a server
    run on their own threads, and one model in memory serves them all."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._lock = threading.Lock()

    def score(self, problem: str, steps: Sequence[str]) -> list[float]:
        with self._lock:
            return self.model.score(problem, steps)


def session_factory(config: ServeConfig, sandbox: Sandbox) -> Callable[[], CodeReasonSession]:
    """A factory of session envs that share ``sandbox`` and one loaded task source."""
    from codegym.env import CodeReasonEnv
    from codegym.integrations.openenv.session import CodeReasonSession
    from codegym.tasks import load_tasks

    task_source = load_tasks(config.tasks, split=config.split)
    process_reward = None
    if config.process_reward is not None:
        from codegym.models import load_prm

        process_reward = SerializedPRM(load_prm(config.process_reward))

    def make_session() -> CodeReasonSession:
        env = CodeReasonEnv(
            task_source,
            sandbox=sandbox,
            process_reward=process_reward,
            visible_tests=config.visible_tests,
            **config.env_config().env_kwargs(),
        )
        return CodeReasonSession(env, snapshots=config.snapshots_per_session)

    make_session.__name__ = "CodeReasonSession"
    return make_session


def build_app(config: ServeConfig, sandbox: Sandbox | None = None) -> Any:
    """The ASGI app: OpenEnv's FastAPI app for ``CodeReason-v0`` behind the :class:`Guard`.

    Args:
        config: the limits and env options.
        sandbox: a running sandbox to share (left running at shutdown); None starts one from
            ``config.sandbox`` and stops it at shutdown.

    Returns:
        The guarded ASGI app; ``app.fastapi`` is OpenEnv's FastAPI app inside it.
    """
    from fastapi.responses import JSONResponse
    from openenv.core.env_server.http_server import create_fastapi_app
    from openenv.core.env_server.types import ConcurrencyConfig

    from codegym.integrations.openenv.session import RequestError
    from codegym.integrations.openenv.wire import CodeReasonAction, CodeReasonObservation
    from codegym.sandbox import make_sandbox

    owned = sandbox is None
    shared = make_sandbox(config.sandbox, workers=config.sandbox_workers) if owned else sandbox
    try:
        factory = session_factory(config, shared)
        app: FastAPI = create_fastapi_app(
            factory,
            CodeReasonAction,
            CodeReasonObservation,
            concurrency_config=ConcurrencyConfig(
                max_concurrent_envs=config.max_sessions, session_timeout=config.idle_timeout_s
            ),
        )
    except BaseException:
        if owned:
            shared.close()
        raise

    async def request_error(request: Any, exc: Exception) -> JSONResponse:
        if isinstance(exc, RequestError):
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=exc.status)
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return JSONResponse({"error": str(message), "code": "BAD_REQUEST"}, status_code=400)

    # The env raises these with a message naming the fix (an unknown task id, an over-long step, a step
    # after the episode ended); over HTTP they become 4xx JSON instead of a bare 500.
    for error in (RequestError, ValueError, KeyError, TypeError, RuntimeError):
        app.add_exception_handler(error, request_error)
    if owned:
        app.router.on_shutdown.append(shared.close)
    guarded = Guard(app, max_body_bytes=config.max_body_bytes, token=config.token)
    guarded.fastapi = app  # type: ignore[attr-defined]
    return guarded


def serve(config: ServeConfig, *, ready: Callable[[str], None] | None = None) -> None:
    """Run the server until interrupted; ``ready(url)`` is called once it listens.

    The socket is bound here, so ``port=0`` resolves to a real port before ``ready`` is called.
    """
    import asyncio

    import uvicorn

    app = build_app(config)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    host, port = sock.getsockname()[:2]
    uvicorn_config = uvicorn.Config(
        app,
        log_level="warning",
        ws_max_size=config.max_body_bytes * WS_HARD_LIMIT_FACTOR,
        timeout_keep_alive=5,
        lifespan="on",
    )
    server = uvicorn.Server(uvicorn_config)
    url = f"http://{host}:{port}"

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and ready is not None:
            ready(url)
        await task

    try:
        asyncio.run(run())
    finally:
        sock.close()


__all__ = ["ServeConfig", "build_app", "serve", "session_factory"]
