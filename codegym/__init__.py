"""CodeGym: code generation as a Gymnasium environment, after O1-Coder.

``import codegym`` registers ``CodeReason-v0``::

    import gymnasium as gym
    import codegym

    env = gym.make("CodeReason-v0", tasks="humaneval", sandbox="auto", reward="o1coder", max_steps=8)
"""

from __future__ import annotations

import gymnasium as gym

from codegym.lazy import lazy_exports

__version__ = "0.1.0"

ENV_IDS = ("CodeReason-v0",)

if "CodeReason-v0" not in gym.registry:
    gym.register(
        id="CodeReason-v0",
        entry_point="codegym.env:CodeReasonEnv",
        # make_vec's default: one process, one sandbox, every env's code in one batch (codegym.vector).
        vector_entry_point="codegym.vector:CodeReasonVectorEnv",
    )

# The env pulls in the sandbox and reward modules; they load on first use so `import codegym` is quick.
__getattr__, __dir__ = lazy_exports(
    "codegym",
    {
        "CodeReasonEnv": "codegym.env",
        "EnvConfig": "codegym.env_config",
        "EpisodeState": "codegym.env",
        "Transition": "codegym.env",
        "CodeReasonVectorEnv": "codegym.vector",
    },
)


__all__ = [
    # the environment
    "ENV_IDS",
    "CodeReasonEnv",
    "CodeReasonVectorEnv",
    "EnvConfig",
    "EpisodeState",
    "Transition",
    "__version__",
]
