"""An ASGI middleware in front of the OpenEnv app: bearer token and request-size limits.

OpenEnv's app validates messages and keeps each WebSocket session alive through bad ones; what it does
not bound is who may connect and how big a request may be. This layer adds both, for plain HTTP and
for WebSocket messages, and answers with JSON errors that name the limit and the fix.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from codegym.errors import UserError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("codegym.serve")

# Paths open without a token: orchestrators probe health before they hold any secret.
OPEN_PATHS = frozenset({"/health"})
# WebSocket close code for a refused handshake (RFC 6455: policy violation).
WS_POLICY_VIOLATION = 1008


class Guard:
    """Wraps an ASGI app with an optional bearer token and a limit on request bodies and messages.

    - HTTP: a missing or wrong ``Authorization: Bearer <token>`` gets 401; a body over
      ``max_body_bytes`` gets 413 (read no further than the limit). ``/health`` is always open.
    - WebSocket: a missing or wrong token refuses the handshake (HTTP 403, close code 1008). A message
      over ``max_body_bytes`` never reaches the env: the session gets an error response that names the
      limit and stays open.

    Args:
        app: the OpenEnv FastAPI app.
        max_body_bytes: the largest HTTP body or WebSocket message accepted.
        token: the bearer token clients must send, or None for none.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, token: str | None = None) -> None:
        if max_body_bytes < 1024:
            raise UserError(f"max_body_bytes must be at least 1024, got {max_body_bytes}")
        if token is not None and not token.strip():
            raise UserError("the bearer token must not be empty; pass None to serve without one")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None or scope.get("path") in OPEN_PATHS:
            return True
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                scheme, _, given = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await _json(
                send,
                401,
                "UNAUTHORIZED",
                "missing or wrong bearer token: send the header "
                "'Authorization: Bearer <token>' with the token the server was started with",
            )
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _json(send, 413, "BODY_TOO_LARGE", self._too_large(int(declared)))
            return
        # Read the body here (bounded), then hand it to the app: a body without Content-Length
        # (chunked) is held to the same limit.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _json(send, 413, "BODY_TOO_LARGE", self._too_large(size, at_least=True))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, delivered = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await receive()  # websocket.connect
            await send(
                {
                    "type": "websocket.close",
                    "code": WS_POLICY_VIOLATION,
                    "reason": "missing or wrong bearer token",
                }
            )
            return

        async def bounded() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive":
                data = message.get("text") if message.get("text") is not None else message.get("bytes") or b""
                size = len(data.encode() if isinstance(data, str) else data)
                if size > self.max_body_bytes:
                    # OpenEnv answers an unknown message type with an error and keeps the session: the
                    # "type" carries our explanation to the client.
                    return {"type": "websocket.receive", "text": json.dumps({"type": self._too_large(size)})}
            return message

        from starlette.websockets import WebSocketDisconnect

        try:
            await self.app(scope, bounded, send)
        except WebSocketDisconnect:
            # OpenEnv closes the socket of a client that already vanished, which raises here; the
            # session was cleaned up before that, and a client that left is not a server error.
            logger.debug("a WebSocket client disconnected without closing its session")

    def _too_large(self, size: int, at_least: bool = False) -> str:
        return (
            f"request too large: {'more than ' if at_least else ''}{size} bytes, the server's limit is "
            f"{self.max_body_bytes} (codegym serve --max-body-bytes); send a shorter step"
        )


async def _json(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": message, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
