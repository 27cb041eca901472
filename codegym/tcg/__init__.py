"""Test case generation (O1-Coder's TCG): generators propose tests, the reference solution validates them.

- :class:`TestCaseGenerator`: the contract; subclasses implement ``propose``, the base class runs the
  reference in the sandbox, keeps only what it passes and drops duplicates.
"""

from __future__ import annotations

from codegym.tcg.base import Generation, Proposal, TestCaseGenerator, with_visible_tests

__all__ = [
    "Generation",
    "Proposal",
    "TestCaseGenerator",
    "with_visible_tests",
]
