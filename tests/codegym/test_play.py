"""One way to play tasks (codegym.play): the same episodes in any batching, here as the agents' own."""

from __future__ import annotations

import functools

import gymnasium as gym
import pytest

import codegym  # noqa: F401  (registers CodeReason-v0)
from codegym.agents.registry import make_agent
from codegym.errors import UserError
from codegym.play import LoadedPlayers, Players, load_players, play_tasks
from codegym.sandbox import AssertTest, SandboxError
from codegym.tasks import load_tasks


def _agents(names: tuple[str, ...], policy, prm) -> dict:
    return {name: make_agent(name, policy, prm, seed=5) for name in names}


@pytest.fixture(scope="module")
def tasks():
    return load_tasks("synthetic", split="test", max_ops=2).tasks(5, seed=1)


@pytest.fixture(scope="module")
def loaded(sandbox_factory):
    return load_players(Players("tiny"), sandbox=sandbox_factory("local"))


def _summary(episodes) -> list[tuple]:
    return [(e.task_id, e.agent, e.steps, e.code, e.rewards, e.hidden_all_passed) for e in episodes]


def test_batches_give_the_episodes_one_solve_many_gives(tasks, loaded):
    agents_for = functools.partial(_agents, ("greedy", "sample"))
    whole = play_tasks(tasks, agents_for, loaded, env_options={"max_steps": 4})
    in_twos = play_tasks(
        tasks, agents_for, loaded, batch_size=2, env_options={"max_steps": 4}, env_kind="raw"
    )
    assert list(whole) == ["greedy", "sample"]
    assert [e.task_id for e in whole["greedy"]] == [t.task_id for t in tasks]
    assert _summary(whole["greedy"]) == _summary(in_twos["greedy"])  # greedy does not depend on batching
    env = gym.make("CodeReason-v0", tasks=tasks, sandbox=loaded.sandbox, max_steps=4)
    direct = make_agent("sample", loaded.policy, seed=5).solve_many(env, [t.task_id for t in tasks])
    env.close()
    assert _summary(whole["sample"]) == _summary(direct)  # one batch: exactly the agent's own solve_many
    assert any(e.code for e in whole["greedy"])


def test_progress_sees_every_batch_and_loaded_players_stay_open(tasks, loaded):
    seen: list[int] = []
    play_tasks(tasks, functools.partial(_agents, ("greedy",)), loaded, batch_size=2, on_batch=seen.append)
    assert seen == [2, 2, 1]
    report = loaded.sandbox.run("x = 1", (AssertTest("assert x == 1"),))
    assert report.passed == 1  # the caller's sandbox is still running


def test_players_by_name_load_and_close_their_own_sandbox(tasks, monkeypatch):
    opened: list[LoadedPlayers] = []
    real = load_players

    def recording(players, **options):
        opened.append(real(players, **options))
        return opened[-1]

    monkeypatch.setattr("codegym.play.load_players", recording)
    played = play_tasks(tasks[:2], functools.partial(_agents, ("greedy",)), Players("tiny", sandbox="local"))
    assert len(played["greedy"]) == 2
    assert opened[0].owns_sandbox
    with pytest.raises(SandboxError, match="this sandbox is closed"):
        opened[0].sandbox.run("x = 1", (AssertTest("assert x == 1"),))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": -1}, "batch_size must be an int >= 0"),
        ({"env_kind": "vector"}, "env_kind must be one of gym, raw"),
        ({"env_options": {"tasks": []}}, r"env_options must not set \['tasks'\]"),
        ({"ray_address": "auto"}, "loaded models cannot travel to Ray workers"),
    ],
)
def test_bad_arguments_are_named(tasks, loaded, options, message):
    with pytest.raises(UserError, match=message):
        play_tasks(tasks, functools.partial(_agents, ("greedy",)), loaded, **options)
