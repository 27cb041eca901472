"""CodeGym: code generation as a Gymnasium environment, after O1-Coder.

``import codegym`` registers ``CodeReason-v0``::

    import gymnasium as gym
    import codegym

    env = gym.make("CodeReason-v0", tasks="humaneval", sandbox="auto", reward="o1coder", max_steps=8)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

__version__ = "0.1.0"

ENV_IDS = ("CodeReason-v0",)

if "CodeReason-v0" not in gym.registry:
    gym.register(
        id="CodeReason-v0",
        entry_point="codegym.env:CodeReasonEnv",
        # make_vec's default: one process, one sandbox, every env's code in one batch (codegym.vector).
        vector_entry_point="codegym.vector:CodeReasonVectorEnv",
    )

_LAZY = {
    "CodeReasonEnv": "codegym.env",
    "EpisodeState": "codegym.env",
    "CodeReasonVectorEnv": "codegym.vector",
}


def __getattr__(name: str) -> Any:
    # The env pulls in the sandbox and reward modules; load them on first use so `import codegym` is quick.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codegym' has no attribute {name!r}")


__all__ = [
    # the environment
    "ENV_IDS",
    "CodeReasonEnv",
    "CodeReasonVectorEnv",
    "EpisodeState",
    "__version__",
]
