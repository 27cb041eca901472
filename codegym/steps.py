"""The one text format that the policy, the PRM and the env share: a problem and its reasoning steps.

An observation is the problem, then each step under a numbered header::

    ### Problem
    Write a function `solve(xs: list[int]) -> int` that ...

    ### Step 1
    Outline: 1. sort the list 2. ...

    ### Step 2
    ```python
    def solve(xs): ...
    ```

A policy continues an observation with :func:`next_step_header` and stops at :data:`STEP_STOP` (the start
of the next header). A chat template, if a model has one, is the policy's business; this format is what
the env emits and what a PRM scores.

Step kinds follow O1-Coder: an *outline* (first line starts with ``Outline:``), a *refine* step
(``Refine:``), and the *code* action (any step holding a fenced ``python`` block). Any other text is a
*free* step, still allowed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from enum import StrEnum

from codegym.errors import UserError

PROBLEM_HEADER = "### Problem"
STEP_STOP = "\n### Step"  # where a policy's generated step ends

# ```python, ```py or ```python3 (any case: real models write ```Python) opens a code block; the closing
# fence is optional (a generation cut at its token limit still counts as a code action, and info says the
# fence was not closed).
_CODE_BLOCK = re.compile(
    r"```(?:python3?|py)[ \t]*\r?\n(.*?)(?:\r?\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE
)
# A step's kind word, after whatever real models put before it: markdown (``**Outline:**``, ``## Refine``,
# ``- ``), and a ``Step 2:`` label of their own.
_KIND_WORD = re.compile(
    r"\A[\s#*_>`-]*(?:step\s*\d+\s*[:.)-]?[\s#*_`-]*)?(outline|pseudocode|refinement|refined|refine)\b",
    re.IGNORECASE,
)
_KINDS = {
    "outline": "outline",
    "pseudocode": "outline",
    "refine": "refine",
    "refinement": "refine",
    "refined": "refine",
}
_STEP_HEADER = re.compile(r"^### Step (\d+)\n", re.MULTILINE)


class StepKind(StrEnum):
    """O1-Coder's step kinds, plus free text."""

    OUTLINE = "outline"
    REFINE = "refine"
    CODE = "code"
    FREE = "free"


def step_header(index: int) -> str:
    """The header line of step ``index`` (1-based)."""
    return f"### Step {index}"


def render_state(problem: str, steps: Sequence[str]) -> str:
    """The observation text for ``problem`` after ``steps``.

    Example:
        >>> print(render_state("Add two numbers.", ["Outline: return a + b"]))
        ### Problem
        Add two numbers.
        <BLANKLINE>
        ### Step 1
        Outline: return a + b
    """
    parts = [f"{PROBLEM_HEADER}\n{problem.strip()}"]
    parts += [f"{step_header(index)}\n{step.strip()}" for index, step in enumerate(steps, start=1)]
    return "\n\n".join(parts)


def next_step_header(steps_so_far: int) -> str:
    """What a policy appends to an observation before generating the next step."""
    return f"\n\n{step_header(steps_so_far + 1)}\n"


def policy_prompt(observation: str, steps_so_far: int) -> str:
    """The observation followed by the next step's header: the prompt a completion policy continues."""
    return observation + next_step_header(steps_so_far)


def parse_state(observation: str) -> tuple[str, list[str]]:
    """Split an observation back into its problem and steps (the inverse of :func:`render_state`).

    Raises:
        UserError: the text does not start with the problem header.
    """
    if not observation.startswith(PROBLEM_HEADER + "\n"):
        raise UserError(f"an observation starts with {PROBLEM_HEADER!r}, got {observation[:40]!r}")
    body = observation[len(PROBLEM_HEADER) + 1 :]
    pieces = _STEP_HEADER.split(body)
    problem, steps = pieces[0], pieces[2::2]
    return problem.strip(), [step.strip() for step in steps]


def extract_code(step: str) -> tuple[str, bool] | None:
    """The first fenced ``python`` block in ``step`` and whether its fence was closed, or None.

    Example:
        >>> extract_code("Now the code:\\n```python\\nprint(1)\\n```")
        ('print(1)', True)
    """
    match = _CODE_BLOCK.search(step)
    if match is None:
        return None
    closed = match.group(0).rstrip().endswith("```")
    return match.group(1), closed


def whole_statements(code: str) -> str:
    """The code of a block cut by the token limit without its unfinished tail: the longest prefix that
    ends before a top-level line and parses. Code that parses whole, or has no such prefix, comes back
    as it is (a cut tail can only be a syntax error, so the statements before it are what the model wrote).

    Only the last :data:`MAX_CUTS` top-level lines are tried, so a long step costs a bounded number of parses.

    Example:
        >>> whole_statements("def f():\\n    return 1\\n\\nprint(f(), [1, 2")
        'def f():\\n    return 1'
    """
    if _parses(code):
        return code
    lines = code.split("\n")
    # A top-level statement starts at column 0 (not a blank line, not a comment or a continuation).
    starts = [
        i for i, line in enumerate(lines) if i > 0 and line[:1] not in ("", " ", "\t", "#", ")", "]", "}")
    ]
    for index in reversed(starts[-MAX_CUTS:]):
        prefix = "\n".join(lines[:index]).rstrip()
        if prefix and _parses(prefix):
            return prefix
    return code


MAX_CUTS = 64  # top-level lines whole_statements tries, from the end


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: a null byte
        return False
    return True


def classify_step(step: str) -> StepKind:
    """Which of O1-Coder's step kinds ``step`` is, read the way real models write it.

    A step holding a ```` ```python ```` block (any case, ``py``, ``python3``) is code; one whose first
    word, after markdown and an optional ``Step N:`` label, is ``Outline`` or ``Pseudocode`` is an outline;
    ``Refine``/``Refinement`` a refinement; anything else is free text.

    Example:
        >>> classify_step("**Outline:** sort, then scan"), classify_step("Step 2: Refine: skip blanks")
        (<StepKind.OUTLINE: 'outline'>, <StepKind.REFINE: 'refine'>)
        >>> classify_step("```Python\\nprint(1)\\n```")
        <StepKind.CODE: 'code'>
    """
    if extract_code(step) is not None:
        return StepKind.CODE
    match = _KIND_WORD.match(step)
    if match is None:
        return StepKind.FREE
    return StepKind(_KINDS[match.group(1).lower()])
