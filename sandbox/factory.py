"""``make_sandbox``: the one way to get a sandbox by name."""

from __future__ import annotations

from codegym.errors import UserError
from codegym.sandbox.base import Sandbox
from codegym.sandbox.node_sandbox import (
    NODE_BACKENDS,
    check_options,
    keywords,
    make_node_sandbox,
    valid_options,
)

BACKENDS = (*NODE_BACKENDS, "ray")


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
        UserError: an unknown kind.
        SandboxUnavailable: "docker" was asked for and cannot run (the message says how to fix it).
    """
    if isinstance(kind, Sandbox):
        return kind
    if kind == "ray":
        from codegym.sandbox.ray_sandbox import RaySandbox

        # The options RaySandbox does not take go to the sandbox each actor owns, which checks them there.
        check_options(
            "ray", options, valid_options("auto") | valid_options("local") | keywords(RaySandbox.__init__)
        )
        return RaySandbox(**options)
    if kind in NODE_BACKENDS:
        return make_node_sandbox(kind, **options)
    raise UserError(f"unknown sandbox {kind!r}: choose one of {', '.join(BACKENDS)}")
