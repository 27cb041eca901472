"""Test case generation (O1-Coder's TCG): generators propose tests, the reference solution validates them.

- :class:`TestCaseGenerator`: the contract; subclasses implement ``propose``, the base class runs the
  reference in the sandbox, keeps only what it passes and drops duplicates.
- :class:`OracleTCG`: inputs from the signature's types and the task's examples, outputs from the
  reference (no model).
- :class:`ModelTCG` (:mod:`codegym.tcg.model_tcg`): a language model writes input/output cases.
- :func:`known_wrong_mutants` / :func:`judge_mutants`: small mutations of a reference that its tests
  tell apart, to measure how well a test set discriminates.

Example:
    >>> from codegym.tcg import OracleTCG, TestCaseGenerator
    >>> issubclass(OracleTCG, TestCaseGenerator)
    True
"""

from __future__ import annotations

from codegym.lazy import lazy_exports
from codegym.tcg.base import (
    Generation,
    Proposal,
    TestCaseGenerator,
    UnsupportedTask,
    arguments_key,
    with_visible_tests,
)
from codegym.tcg.oracle import OracleTCG

# ModelTCG pulls in the model stack (torch, transformers) when it loads a policy; mutants need nothing
# heavy but are measurement tools, so both load on first use.
__getattr__, __dir__ = lazy_exports(
    "codegym.tcg",
    {
        "ModelTCG": "codegym.tcg.model_tcg",
        "Mutant": "codegym.tcg.mutants",
        "MutantVerdict": "codegym.tcg.mutants",
        "judge_mutants": "codegym.tcg.mutants",
        "known_wrong_mutants": "codegym.tcg.mutants",
        "mutate_program": "codegym.tcg.mutants",
    },
)

__all__ = [
    # the contract
    "Generation",
    "Proposal",
    "TestCaseGenerator",
    "UnsupportedTask",
    "arguments_key",
    # generators
    "ModelTCG",
    "OracleTCG",
    # visible tests for the env
    "with_visible_tests",
    # known-wrong solutions, for measuring discrimination
    "Mutant",
    "MutantVerdict",
    "judge_mutants",
    "known_wrong_mutants",
    "mutate_program",
]
