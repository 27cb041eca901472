"""Joining a Ray cluster from this process, shared by the ray sandbox and the distributed rollouts.

Ray is started or joined once per process. Whoever started it (a ray sandbox, a distributed run) holds a
share, and the last share released shuts it down; a Ray session the caller started itself is used and
never shut down.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from codegym.sandbox.base import SandboxUnavailable

REACH_TIMEOUT_S = 10.0

# A process-wide resource, so a process-wide count of who holds it.
_ray_lock = threading.Lock()
_ray_owners = 0


def import_ray() -> Any:
    """The ``ray`` module, or :class:`SandboxUnavailable` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SandboxUnavailable(
            "this needs Ray: pip install 'codegym[ray]' (or pip install 'ray[default]')"
        ) from None
    return ray


def join_ray(address: str | None = None) -> bool:
    """Connect this process to Ray unless it already is; True when this call did (call :func:`leave_ray`).

    Args:
        address: "auto" (the cluster this machine belongs to), "local" (start Ray here), "host:port",
            or "ray://host:10001"; default ``RAY_ADDRESS``, else "local". Ignored when Ray is initialised.

    Raises:
        SandboxUnavailable: Ray is not installed, or the cluster cannot be reached.
    """
    global _ray_owners
    ray = import_ray()
    with _ray_lock:
        if ray.is_initialized():
            if not _ray_owners:  # the caller's own Ray session: use it, never shut it down
                return False
            _ray_owners += 1
            return True
        target = address or os.environ.get("RAY_ADDRESS") or "local"
        _check_reachable(target)
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if target == "local":
            options["include_dashboard"] = False
        try:
            ray.init(address=target, **options)
        except ConnectionError as exc:
            raise SandboxUnavailable(
                f"cannot reach the Ray cluster at {target!r}: {exc}; start one with `ray start --head` "
                "(or give the address 'local' to run Ray on this machine alone)"
            ) from None
        _ray_owners += 1
        return True


def _check_reachable(target: str) -> None:
    """Fail fast on a ``host:port`` nobody answers at: Ray itself retries such an address for minutes."""
    if target in ("auto", "local"):
        return
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        raise SandboxUnavailable(
            f"Ray address {target!r} is not 'auto', 'local', 'host:port' or 'ray://host:port'"
        )
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise SandboxUnavailable(
            f"nothing answers at Ray address {target!r} ({exc}): start the head there with "
            "`ray start --head`, or check the address (`ray status` on the head prints it)"
        ) from None


def leave_ray() -> None:
    """Undo one :func:`join_ray` that returned True; the last one shuts this process's Ray down."""
    global _ray_owners
    with _ray_lock:
        _ray_owners -= 1
        if _ray_owners == 0:
            import_ray().shutdown()
