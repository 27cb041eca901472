"""CodeGym where researchers already train: TRL, OpenEnv and verl.

Each integration is its own subpackage or module and loads its framework only when used, so
``import codegym`` stays light:

- :mod:`codegym.integrations.trl`: reward functions and an ``environment_factory`` for TRL's
  ``GRPOTrainer``;
- :mod:`codegym.integrations.openenv`: an OpenEnv server for ``CodeReason-v0`` (``codegym serve``) and
  :class:`~codegym.integrations.openenv.CodeReasonClient`, a ``gymnasium.Env`` over it (extra ``serve``);
- :mod:`codegym.integrations.verl`: ``compute_score`` for verl's ``custom_reward_function.path``.
"""

from __future__ import annotations

__all__: list[str] = []
