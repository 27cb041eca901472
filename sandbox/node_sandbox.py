"""``make_node_sandbox``: a sandbox on this machine ("local", "docker" or "auto"), by name.

:func:`~codegym.sandbox.factory.make_sandbox` uses it for those three kinds, and each Ray actor of
:class:`~codegym.sandbox.ray_sandbox.RaySandbox` uses it to start the sandbox it owns on its node.
"""

from __future__ import annotations

import inspect
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
    if kind in NODE_BACKENDS:
        check_options(kind, options)
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


def keywords(function) -> set[str]:
    """The keyword arguments ``function`` (an ``__init__``) names, ``self`` left out."""
    return {
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self"
        and parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def valid_options(kind: str) -> set[str]:
    """The options a node sandbox of ``kind`` takes ("auto" tries Docker with every option first)."""
    valid = keywords(Sandbox.__init__)
    if kind == "local":
        return valid | keywords(LocalSandbox.__init__)
    from codegym.sandbox.docker_sandbox import DockerSandbox

    return valid | keywords(DockerSandbox.__init__)


def check_options(kind: str, options: dict, valid: set[str] | None = None) -> None:
    """Refuse an option no backend of ``kind`` takes (``valid``: those it takes, by default a node
    kind's), naming the ones it does: the backends forward ``**kwargs`` to :class:`Sandbox`, so a typo
    would otherwise be a TypeError from deep inside.

    Raises:
        UserError: an unknown option.
    """
    valid = valid_options(kind) if valid is None else valid
    unknown = sorted(set(options) - valid)
    if unknown:
        raise UserError(
            f"make_sandbox({kind!r}) takes no option {', '.join(map(repr, unknown))}: "
            f"the valid ones are {', '.join(sorted(valid))}"
        )
