"""Shared fixtures: sandboxes for every backend, started once per session."""

from __future__ import annotations

import os

import pytest

# Planted before any sandbox starts: a worker that inherited the host's environment would carry it.
CANARY = "codegym-canary-7f3a9c"
os.environ["CODEGYM_TEST_SECRET"] = CANARY

BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


def _unavailable(reason: str):
    if os.environ.get("CODEGYM_REQUIRE_DOCKER") == "1":
        pytest.fail(f"CODEGYM_REQUIRE_DOCKER=1 but the docker sandbox cannot run: {reason}")
    pytest.skip(f"docker sandbox unavailable: {reason}")


@pytest.fixture(scope="session")
def sandbox_factory():
    """Starts (once) and hands out a two-worker sandbox per backend; all are closed at the end."""
    from codegym.sandbox import SandboxUnavailable, make_sandbox

    started = {}

    def get(kind: str):
        if kind not in started:
            try:
                started[kind] = make_sandbox(kind, workers=2)
            except SandboxUnavailable as exc:
                started[kind] = exc
        if isinstance(started[kind], Exception):
            _unavailable(str(started[kind]))
        return started[kind]

    yield get
    for box in started.values():
        if not isinstance(box, Exception):
            box.close()


@pytest.fixture(params=BACKENDS)
def sandbox(request, sandbox_factory):
    return sandbox_factory(request.param)
