"""Prompts for GRPO from CodeGym tasks, and completions split back into the env's steps."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from codegym.errors import UserError
from codegym.steps import policy_prompt, render_state
from codegym.tasks import Task

if TYPE_CHECKING:
    from datasets import Dataset

# A completion's step headers, as the env renders them (codegym.steps.step_header).
_STEP_HEADER = re.compile(r"^[ \t]*### Step \d+[ \t]*$", re.MULTILINE)

CHAT_INSTRUCTIONS = (
    "Reason in short steps (an outline in pseudocode, then refinements), then write the solution as one "
    "```python code block."
)


def grpo_dataset(
    tasks: Sequence[Task], *, conversational: bool = False, instructions: str = CHAT_INSTRUCTIONS
) -> Dataset:
    """A ``datasets.Dataset`` of GRPO prompts, one row per task, with the columns ``prompt`` and ``task_id``.

    The ``task_id`` column reaches :class:`~codegym.integrations.trl.CodeTestReward` (TRL passes every
    dataset column to reward functions) and :meth:`CodeReasonToolEnv.reset
    <codegym.integrations.trl.CodeReasonToolEnv.reset>`.

    Args:
        tasks: the tasks, e.g. ``SyntheticTasks("train").tasks(64, seed=0)``.
        conversational: False (default): the prompt is the env's observation followed by the first
            step's header, the text a completion model such as the built-in tiny policy continues.
            True: one user message, ``instructions`` then the problem (for chat models and for
            ``environment_factory``, which needs conversational prompts).
        instructions: what a conversational prompt asks for.

    Example:
        >>> from codegym.tasks.synthetic import SyntheticTasks
        >>> rows = grpo_dataset(SyntheticTasks("train", max_ops=1).tasks(2, seed=0))
        >>> rows.column_names, rows[0]["prompt"].endswith("### Step 1\\n")
        (['prompt', 'task_id'], True)
    """
    from datasets import Dataset

    tasks = list(tasks)
    if not tasks:
        raise UserError("grpo_dataset needs at least one task")
    bad = [type(task).__name__ for task in tasks if not isinstance(task, Task)]
    if bad:
        raise TypeError(f"grpo_dataset takes codegym Task objects, got {bad[0]}")
    prompts: list[Any]
    if conversational:
        prompts = [
            [{"role": "user", "content": f"{instructions}\n\n{task.problem.strip()}"}] for task in tasks
        ]
    else:
        prompts = [policy_prompt(render_state(task.problem, []), 0) for task in tasks]
    return Dataset.from_dict({"prompt": prompts, "task_id": [task.task_id for task in tasks]})


def completion_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """The text of a TRL completion: the string itself, or the assistant messages' contents joined."""
    if isinstance(completion, str):
        return completion
    try:
        return "\n\n".join(
            str(message.get("content") or "") for message in completion if message.get("role") == "assistant"
        )
    except AttributeError:
        raise TypeError(
            "a completion is a str (standard prompts) or a list of chat messages (conversational prompts), "
            f"got {type(completion).__name__}"
        ) from None


def split_steps(completion: str) -> list[str]:
    """The env steps in a completion: the text between ``### Step N`` headers, blank pieces dropped.

    A completion model continues a prompt that ends in ``### Step 1``, so its first step has no header;
    a chat model's reply without headers is one step.

    Example:
        >>> split_steps("Outline: sort.\\n\\n### Step 2\\n```python\\ndef f(x):\\n    return x\\n```")
        ['Outline: sort.', '```python\\ndef f(x):\\n    return x\\n```']
    """
    return [piece.strip() for piece in _STEP_HEADER.split(completion) if piece.strip()]
