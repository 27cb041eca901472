"""``make_sandbox``: the one way to get a sandbox by name."""

from __future__ import annotations

import logging

from codegym.sandbox.base import Sandbox, SandboxUnavailable
from codegym.sandbox.local_sandbox import LocalSandbox

logger = logging.getLogger("codegym.sandbox")

BACKENDS = ("local", "docker", "auto", "ray")
_COMMON_OPTIONS = ("workers", "report_bytes", "max_output_bytes", "pin_cpus")


def make_sandbox(kind: str | Sandbox = "auto", **options) -> Sandbox:
    """Start a sandbox.

    Args:
        kind: "local" (fork server on this machine), "docker" (warm container pool), "auto" (Docker
            when the daemon and the image are there, else local; it logs which it chose), or "ray" (Ray
            actors over a cluster, each owning a local or Docker sandbox on its node). A Sandbox
            instance is returned as it is.
        **options: passed to :class:`~codegym.sandbox.local_sandbox.LocalSandbox` or
            :class:`~codegym.sandbox.docker_sandbox.DockerSandbox` (``workers``, ``image``, ...), or
            :class:`~codegym.sandbox.ray_sandbox.RaySandbox` (``address``, ``actors``, ``backend``, ...).

    Raises:
        ValueError: an unknown kind.
        SandboxUnavailable: "docker" was asked for and cannot run (the message says how to fix it).
    """
    if isinstance(kind, Sandbox):
        return kind
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
    if kind == "ray":
        from codegym.sandbox.ray_sandbox import RaySandbox

        return RaySandbox(**options)
    raise ValueError(f"unknown sandbox {kind!r}: choose one of {', '.join(BACKENDS)}")
