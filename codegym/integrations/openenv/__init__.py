"""CodeGym on OpenEnv: ``codegym serve`` and :class:`CodeReasonClient`.

- The server (:func:`serve`, :func:`build_app`, :class:`ServeConfig`) is built on ``openenv-core``
  (``pip install "codegym[serve]"``): OpenEnv's HTTP and WebSocket protocol, one ``CodeReason-v0`` env per
  WebSocket session over one shared sandbox, with limits and an optional bearer token.
- :class:`CodeReasonClient` is a ``gymnasium.Env`` over a server's WebSocket session; it needs only
  ``websockets``, and every agent in :mod:`codegym.agents` plays it as it plays the local env.

OpenEnv's own clients work too: ``GenericEnvClient(base_url=url).sync()`` with actions
``{"step": "..."}``.
"""

from __future__ import annotations

from codegym.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    "codegym.integrations.openenv",
    {
        "CodeReasonClient": "codegym.integrations.openenv.client",
        "RemoteEnvError": "codegym.integrations.openenv.client",
        "RemoteState": "codegym.integrations.openenv.client",
        "ServeConfig": "codegym.integrations.openenv.config",
        "build_app": "codegym.integrations.openenv.server",
        "serve": "codegym.integrations.openenv.server",
        "CodeReasonSession": "codegym.integrations.openenv.session",
        "RequestError": "codegym.integrations.openenv.session",
        "CodeReasonAction": "codegym.integrations.openenv.wire",
        "CodeReasonObservation": "codegym.integrations.openenv.wire",
        "CodeReasonState": "codegym.integrations.openenv.wire",
    },
)

__all__ = [
    # the client (light: needs websockets only)
    "CodeReasonClient",
    "RemoteEnvError",
    "RemoteState",
    # the server (needs openenv-core: pip install "codegym[serve]")
    "ServeConfig",
    "build_app",
    "serve",
    "CodeReasonSession",
    "RequestError",
    # wire types
    "CodeReasonAction",
    "CodeReasonObservation",
    "CodeReasonState",
]
