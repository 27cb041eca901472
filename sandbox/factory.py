"""``make_sandbox``: the one way to get a sandbox by name."""

from __future__ import annotations

import inspect

from codegym.errors import UserError
from codegym.sandbox.base import Sandbox
from codegym.sandbox.local_sandbox import LocalSandbox
from codegym.sandbox.node_sandbox import NODE_BACKENDS, make_node_sandbox

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
    if kind in BACKENDS:
        _check_options(kind, options)
    if kind == "ray":
        from codegym.sandbox.ray_sandbox import RaySandbox

        return RaySandbox(**options)
    if kind in NODE_BACKENDS:
        return make_node_sandbox(kind, **options)
    raise UserError(f"unknown sandbox {kind!r}: choose one of {', '.join(BACKENDS)}")


def _keywords(function) -> set[str]:
    return {
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self"
        and parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def _check_options(kind: str, options: dict) -> None:
    """Refuse an option no backend of ``kind`` takes, naming the ones it does (the backends forward
    ``**kwargs`` to :class:`Sandbox`, so a typo would otherwise be a TypeError from deep inside)."""
    valid = _keywords(Sandbox.__init__)
    if kind in ("local", "ray"):
        valid |= _keywords(LocalSandbox.__init__)
    if kind != "local":  # "auto" tries Docker with every option first
        from codegym.sandbox.docker_sandbox import DockerSandbox

        valid |= _keywords(DockerSandbox.__init__)
    if kind == "ray":  # the rest go to the sandbox each actor owns, checked there again
        from codegym.sandbox.ray_sandbox import RaySandbox

        valid |= _keywords(RaySandbox.__init__)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise UserError(
            f"make_sandbox({kind!r}) takes no option {', '.join(map(repr, unknown))}: "
            f"the valid ones are {', '.join(sorted(valid))}"
        )
