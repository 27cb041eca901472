"""``connect``: a docker-py client for the local Docker daemon, shared by the Docker sandbox and the
image builder."""

from __future__ import annotations

from codegym.sandbox.base import SandboxUnavailable


def connect():
    """A docker-py client for the local daemon, or SandboxUnavailable saying how to start one."""
    try:
        import docker
    except ImportError:
        raise SandboxUnavailable("the docker SDK is not installed: pip install docker") from None
    client = None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        if client is not None:
            client.close()
        raise SandboxUnavailable(
            f"cannot reach the Docker daemon ({type(exc).__name__}: {exc}). Start it (as root: dockerd, or "
            "systemctl start docker; set DOCKER_HOST if it listens elsewhere), or use sandbox='local'."
        ) from None
    return client
