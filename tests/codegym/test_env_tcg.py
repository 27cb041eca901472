"""CodeReason-v0 with visible tests from a test case generator (visible_tests="tcg" or an instance)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import codegym  # noqa: F401  (registers CodeReason-v0)
from codegym.sandbox import CallTest
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tcg import OracleTCG, Proposal, TestCaseGenerator, UnsupportedTask, arguments_key, mutate_program

CODE = "```python\n{}\n```"


class CountingTCG(TestCaseGenerator):
    """Proposes x = 1..4 for `double` (one with a wrong claim); counts its calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def propose(self, task, n, rng):
        self.calls += 1
        return [Proposal((1,), expected=3), *(Proposal((x,)) for x in (2, 3, 4))]


class RefusingTCG(TestCaseGenerator):
    def propose(self, task, n, rng):
        raise UnsupportedTask("no signature here")


class BuggyTCG(TestCaseGenerator):
    """A generator with a bug on some tasks, as a user's own may have: it raises what it did not mean to."""

    def propose(self, task, n, rng):
        raise ValueError("high is out of bounds for int64")


@pytest.fixture
def make_env(sandbox_factory):
    made = []

    def make(**kwargs):
        kwargs.setdefault("sandbox", sandbox_factory("local"))
        env = gym.make("CodeReason-v0", **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


@pytest.fixture(scope="module")
def synthetic_tasks():
    return SyntheticTasks("test", max_ops=2).tasks(3, seed=11)


def test_tcg_tests_pay_and_the_reference_passes_them(make_env, synthetic_tasks):
    env = make_env(tasks=synthetic_tasks, visible_tests="tcg", visible_tests_n=6)
    task = synthetic_tasks[0]
    env.reset(seed=0, options={"task_id": task.task_id})
    generated = env.unwrapped.task.visible_tests
    assert len(generated) == 6 and all(isinstance(t, CallTest) for t in generated)
    assert not {arguments_key(t.args) for t in generated} & {arguments_key(t.args) for t in task.hidden_tests}
    _, reward, terminated, _, info = env.step(CODE.format(task.reference_solution))
    assert terminated and reward == pytest.approx(1.0)
    assert info["visible_source"] == "tcg" and "visible_note" not in info
    assert info["test_report"].total == 6 and info["test_report"].all_passed
    assert info["hidden_all_passed"]


def test_tcg_tests_catch_a_wrong_program(make_env, synthetic_tasks):
    env = make_env(tasks=synthetic_tasks, visible_tests="tcg")
    task = synthetic_tasks[2]  # keep_even>sum ([1] is `len(nums)`, with nothing to mutate)
    mutant = next(
        m
        for m in mutate_program(task.reference_solution, entry_point=task.entry_point)
        if not env.unwrapped.sandbox.run(m.program, task.hidden_tests).all_passed
    )
    env.reset(options={"task_id": task.task_id})
    _, _, _, _, info = env.step(CODE.format(mutant.program))
    assert info["visible_source"] == "tcg"
    assert info["test_report"].pass_rate < 1.0 and not info["hidden_all_passed"]


def test_generated_tests_are_made_once_per_task_and_survive_snapshots(make_env, double_task, sandbox_factory):
    tcg = CountingTCG(sandbox=sandbox_factory("local"))
    env = make_env(tasks=[double_task], visible_tests=tcg)
    env.reset(seed=0)
    first = env.unwrapped.task.visible_tests
    state = env.unwrapped.get_state()
    env.reset(seed=1)
    assert env.unwrapped.task.visible_tests is first and tcg.calls == 1
    # the wrong claim (double(1) == 3) was dropped; the others carry the reference's outputs
    assert [(t.args, t.expected) for t in first] == [((2,), 4), ((3,), 6), ((4,), 8)]
    env.unwrapped.set_state(state)
    _, _, _, _, info = env.step(CODE.format("def double(x):\n    return 4 if x == 2 else 0"))
    assert info["visible_source"] == "tcg"
    assert info["test_report"].passed == 1 and info["test_report"].total == 3
    assert info["hidden_pass_rate"] == pytest.approx(0.5)


def test_a_task_the_generator_cannot_serve_keeps_its_own_tests_and_says_why(
    make_env, double_task, sandbox_factory
):
    env = make_env(tasks=[double_task], visible_tests=RefusingTCG(sandbox=sandbox_factory("local")))
    env.reset(seed=0)
    assert env.unwrapped.task.visible_tests == double_task.visible_tests
    _, _, _, _, info = env.step(CODE.format("def double(x):\n    return 2 * x"))
    assert info["visible_source"] == "task" and info["test_report"].total == 1
    assert "RefusingTCG wrote no visible tests (no signature here)" in info["visible_note"]


def test_a_generator_that_crashes_on_a_task_degrades_to_the_hidden_tests_and_warns(
    make_env, sandbox_factory, caplog
):
    from codegym.tasks.humaneval import load_humaneval

    task = load_humaneval()[0]  # no visible tests of its own: the hidden ones pay
    env = make_env(tasks=[task], visible_tests=BuggyTCG(sandbox=sandbox_factory("local")))
    with caplog.at_level("WARNING", logger="codegym"):
        env.reset(seed=0)
    assert [r.getMessage() for r in caplog.records if task.task_id in r.getMessage()] == [
        f"task {task.task_id}: BuggyTCG wrote no visible tests (it failed on this task (ValueError: high is out "
        "of bounds for int64)); the task's own tests pay"
    ]
    _, _, _, _, info = env.step(CODE.format(task.reference_solution))
    assert info["visible_source"] == "hidden"
    assert info["test_report"] is info["hidden_report"] and info["hidden_pass_rate"] == 1.0
    assert "ValueError" in info["visible_note"]


def test_default_has_no_generator(make_env, double_task):
    env = make_env(tasks=[double_task])
    env.reset(seed=0)
    assert env.unwrapped.test_generator is None
    _, _, _, _, info = env.step(CODE.format("def double(x):\n    return 2 * x"))
    assert info["visible_source"] == "task" and "visible_note" not in info


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"visible_tests": "oracle"}, "visible_tests must be None"),
        ({"visible_tests": OracleTCG}, "visible_tests must be None"),
        ({"visible_tests": "tcg", "visible_tests_n": 0}, "visible_tests_n must be a positive int"),
    ],
)
def test_bad_visible_tests_arguments_are_named(sandbox_factory, double_task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("CodeReason-v0", tasks=[double_task], sandbox=sandbox_factory("local"), **kwargs)


def test_vector_env_passes_visible_tests_to_every_env(sandbox_factory, synthetic_tasks):
    envs = gym.make_vec(
        "CodeReason-v0",
        num_envs=2,
        tasks=synthetic_tasks,
        sandbox=sandbox_factory("local"),
        visible_tests="tcg",
    )
    try:
        envs.reset(seed=0)
        tasks = [env.task for env in envs.unwrapped.envs]
        _, rewards, terminated, _, infos = envs.step([CODE.format(t.reference_solution) for t in tasks])
        assert terminated.all() and rewards == pytest.approx([1.0, 1.0])
        assert list(infos["visible_source"]) == ["tcg", "tcg"]
        assert all(isinstance(env.test_generator, OracleTCG) for env in envs.unwrapped.envs)
    finally:
        envs.close()
