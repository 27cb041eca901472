"""Consumers of the CodeReason env: greedy, best-of-N, beam search, MCTS and RL agents (to come).

Agents use only the public API of ``codegym`` and ``gymnasium``, like any user's own agent.
"""

from __future__ import annotations

__all__: list[str] = []
