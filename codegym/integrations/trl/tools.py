"""A ``CodeReason-v0`` episode as tools, for ``GRPOTrainer(environment_factory=...)``.

TRL makes one instance per rollout (and reuses it), calls ``reset(**row)`` with the dataset columns,
appends the string it returns to the last user message, exposes every other public method as a tool
(their type hints and docstrings are the tools' schemas, so they are written for the model), and adds
``get_reward()`` as a reward named after the class.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from codegym.env_config import DEFAULTS
from codegym.errors import UserError

if TYPE_CHECKING:
    from codegym.env import CodeReasonEnv
    from codegym.sandbox import ExecutionReport, Sandbox

# Tool results go back into the model's context: keep them short.
MAX_FAILURES_SHOWN = 3
MAX_MESSAGE_CHARS = 200


def _fence(code: str) -> str:
    """``code`` as the env's code action (a fenced python block), unless it already is one."""
    return code if "```" in code else f"```python\n{code.strip()}\n```"


def report_text(report: ExecutionReport, label: str) -> str:
    """A short, plain-text account of a test report for a model to read."""
    if not report.compiled:
        reason = report.tests[0].message.strip()[:MAX_MESSAGE_CHARS] if report.tests else ""
        return f"{label}: the code did not compile. {reason}".rstrip()
    lines = [f"{label}: {report.passed}/{report.total} passed."]
    failures = [result for result in report.tests if not result.passed]
    for number, result in enumerate(failures[:MAX_FAILURES_SHOWN], start=1):
        detail = result.message.strip().replace("\n", " ")[:MAX_MESSAGE_CHARS]
        lines.append(f"failure {number}: {result.status.value}{': ' + detail if detail else ''}")
    if len(failures) > MAX_FAILURES_SHOWN:
        lines.append(f"... and {len(failures) - MAX_FAILURES_SHOWN} more failures")
    return "\n".join(lines)


class CodeReasonToolEnv:
    """One ``CodeReason-v0`` episode behind two tools: ``run_tests`` and ``submit``.

    ``reset(task_id=...)`` starts an episode on the row's task and returns its problem. The model may
    call ``run_tests`` as often as it likes (each call runs the code on the visible tests and leaves the
    episode open; verdicts are cached, so submitting tested code costs no second run) and ends with
    ``submit``, the env's code action. ``get_reward()`` is the episode's return under the env's reward
    scheme (the visible tests pay); a rollout that never submits gets 0.0 and ``last_note`` says why.
    After ``submit``, ``hidden_pass_rate`` holds the hidden tests' verdict, which never pays.

    Make instances with :func:`environment_factory`, which shares one sandbox among them; a bare
    ``CodeReasonToolEnv()`` starts its own.

    Args:
        env: a running :class:`~codegym.CodeReasonEnv`, or None to make one from ``env_options``.
        **env_options: ``gym.make("CodeReason-v0", ...)`` arguments when ``env`` is None.
    """

    def __init__(self, env: CodeReasonEnv | None = None, **env_options: Any) -> None:
        if env is None:
            from codegym.env import CodeReasonEnv
            from codegym.options import check_keywords

            check_keywords(CodeReasonEnv, env_options, "CodeReasonToolEnv's env options")
            env = CodeReasonEnv(**env_options)
        elif env_options:
            raise UserError("pass either a running env or env options, not both")
        self._env = env
        self._reward: float | None = None
        self._started = False
        self.hidden_pass_rate: float | None = None
        self.last_note = ""

    def reset(self, task_id: str | None = None, **row: Any) -> str:
        """Start an episode on ``task_id`` (a dataset column); returns the text appended to the prompt."""
        self._env.reset(options={"task_id": task_id} if task_id is not None else None)
        self._reward, self._started, self.hidden_pass_rate = None, True, None
        self.last_note = "the rollout never called submit: reward 0"
        return (
            f"Problem:\n{self._env.task.problem.strip()}\n\nUse run_tests to try code on the tests, "
            "then submit your final code."
        )

    def run_tests(self, code: str) -> str:
        """Run Python code against the problem's tests, without ending the episode.

        Args:
            code: the complete Python solution to try.

        Returns:
            How many tests passed, and what the first failures were.
        """
        if error := self._check(code):
            return error
        # step_batch plays the code from the current state and leaves the episode where it was.
        [transition] = self._env.step_batch([self._env.get_state()], [_fence(code)])
        return report_text(transition.info["test_report"], "tests")

    def submit(self, code: str) -> str:
        """Submit the final Python solution; it is graded on the tests and the episode ends.

        Args:
            code: the complete Python solution.

        Returns:
            The test result and the reward.
        """
        if error := self._check(code):
            return error
        _, reward, _, _, info = self._env.step(_fence(code))
        self._reward, self.hidden_pass_rate, self.last_note = float(reward), info["hidden_pass_rate"], ""
        return f"{report_text(info['test_report'], 'submitted')}\nreward: {reward:.3f}"

    def get_reward(self) -> float:
        """The episode's reward: the env's return after ``submit``, else 0.0 (see ``last_note``)."""
        return self._reward if self._reward is not None else 0.0

    def _check(self, code: str) -> str | None:
        """An error message for the model when the call cannot be served, else None."""
        if not self._started:
            return "error: no episode; the trainer calls reset() first"
        if self._reward is not None:
            return "error: the solution was already submitted; the episode is over"
        if not isinstance(code, str) or not code.strip():
            return "error: code must be a non-empty string of Python"
        limit = self._env.max_step_chars - len("```python\n\n```")
        if len(code) > limit:
            return f"error: the code has {len(code)} characters, more than the limit of {limit}"
        return None


class ToolEnvFactory:
    """Makes :class:`CodeReasonToolEnv` instances over one shared sandbox (TRL's ``environment_factory``).

    Calling it takes no arguments, as TRL requires. The sandbox starts with the first instance and stops
    at :meth:`close` (or when the factory is used as a context manager).
    """

    def __init__(
        self,
        sandbox: str | Sandbox = "auto",
        sandbox_workers: int = DEFAULTS.sandbox_workers,
        **env_options: Any,
    ) -> None:
        if "env" in env_options:
            raise UserError("environment_factory makes its own envs; pass gym.make options instead of env=")
        from codegym.env import CodeReasonEnv
        from codegym.options import check_keywords

        check_keywords(CodeReasonEnv, env_options, "environment_factory's env options", taken=("sandbox",))
        self._sandbox_spec = sandbox
        self._workers = sandbox_workers
        self._env_options = env_options
        self._sandbox: Sandbox | None = None
        self._task_source: Any = None
        self._lock = threading.Lock()
        self.instances: list[CodeReasonToolEnv] = []

    def __call__(self) -> CodeReasonToolEnv:
        from codegym.env import CodeReasonEnv
        from codegym.sandbox import Sandbox, make_sandbox
        from codegym.tasks import load_tasks

        options = dict(self._env_options)
        tasks = options.pop("tasks", "synthetic")
        split, task_options = options.pop("split", None), options.pop("task_options", None)
        with self._lock:
            if self._task_source is None:  # loaded once (HumanEval, a file), shared by every rollout
                self._task_source = load_tasks(tasks, split=split, **(task_options or {}))
            if self._sandbox is None:
                spec = self._sandbox_spec
                self._sandbox = (
                    spec if isinstance(spec, Sandbox) else make_sandbox(spec, workers=self._workers)
                )
            instance = CodeReasonToolEnv(CodeReasonEnv(self._task_source, sandbox=self._sandbox, **options))
            self.instances.append(instance)
        return instance

    def close(self) -> None:
        """Close every env made here and the sandbox (unless it was passed in running)."""
        from codegym.sandbox import Sandbox

        with self._lock:
            for instance in self.instances:
                instance._env.close()
            self.instances.clear()
            if self._sandbox is not None and not isinstance(self._sandbox_spec, Sandbox):
                self._sandbox.close()
            self._sandbox = None

    def __enter__(self) -> ToolEnvFactory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def environment_factory(
    sandbox: str | Sandbox = "auto", sandbox_workers: int = DEFAULTS.sandbox_workers, **env_options: Any
) -> Callable[[], CodeReasonToolEnv]:
    """A factory for ``GRPOTrainer(environment_factory=...)``: every rollout's env shares one sandbox.

    Args:
        sandbox: ``"auto"``, ``"local"``, ``"docker"`` or a running sandbox.
        sandbox_workers: workers of the sandbox started here.
        **env_options: ``gym.make("CodeReason-v0", ...)`` arguments (``tasks``, ``reward``,
            ``visible_tests``, ...).

    Example:
        >>> factory = environment_factory(sandbox="local", tasks="synthetic")  # doctest: +SKIP
        >>> trainer = GRPOTrainer(model, args=args, train_dataset=rows, environment_factory=factory)  # doctest: +SKIP
    """
    return ToolEnvFactory(sandbox, sandbox_workers, **env_options)
