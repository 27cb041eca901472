"""``make_node_sandbox``: a sandbox on this machine ("local", "docker" or "auto"), by name.

:func:`~codegym.sandbox.factory.make_sandbox` uses it for those three kinds, and each Ray actor of
:class:`~codegym.sandbox.ray_sandbox.RaySandbox` uses it to start the sandbox it owns on its node.
"""

from __future__ import annotations

import logging

from codegym.errors import UserError
from codegym.sandbox.base import Sandbox, SandboxUnavailable
from codegym.sandbox.local_sandbox import LocalSandbox

logger = logging.getLogger("codegym.sandbox")

NODE_BACKENDS = ("local", "docker", "auto")
_COMMON_OPTIONS = ("workers", "report_bytes", "max_output_bytes", "pin_cpus")


def make_node_sandbox(kind: str, **options) -> Sandbox:
    """Start a sandbox on this machine: "local", "docker" or "auto" (see
    :func:`~codegym.sandbox.factory.make_sandbox`, which documents the kinds and ``options``).

    Raises:
        UserError: a kind that is not one of :data:`NODE_BACKENDS`.
        SandboxUnavailable: "docker" was asked for and cannot run (the message says how to fix it).
    """
    if kind == "local":
        return LocalSandbox(**options)
    if kind == "docker":
        from codegym.sandbox.docker_sandbox import DockerSandbox

        return DockerSandbox(**options)
    if kind == "auto":
        from codegym.sandbox.docker_sandbox import DockerSandbox

        try:
            sandbox = DockerSandbox(**options)
        except SandboxUnavailable as exc:
            logger.warning("sandbox='auto' chose local: Docker is not usable here (%s)", exc)
            return LocalSandbox(**{k: v for k, v in options.items() if k in _COMMON_OPTIONS})
        logger.info("sandbox='auto' chose docker (image %s)", sandbox.image)
        return sandbox
    raise UserError(f"unknown sandbox {kind!r} on a node: choose one of {', '.join(NODE_BACKENDS)}")
