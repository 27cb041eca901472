"""Rejection-sampling fine-tuning: which episodes are kept, what a round trains, resuming and bad input."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from codegym.agents import Episode, Spend  # noqa: E402
from codegym.errors import UserError  # noqa: E402
from codegym.models import load_policy  # noqa: E402
from codegym.models.tiny import tiny_checkpoint  # noqa: E402
from codegym.training.rejection_sampling import kept_episodes, train_rejection_sampling  # noqa: E402

# A budget that runs in seconds: 4 tasks x 2 episodes, short steps.
BUDGET = {
    "tasks_per_round": 4,
    "samples_per_task": 2,
    "batch_size": 2,  # several optimizer steps: the first, warming up, takes a learning rate of 0
    "max_steps": 3,
    "max_new_tokens": 48,
    "task_options": {"max_ops": 2},
    "progress": False,
}


def _episode(task_id: str, steps: tuple[str, ...], rewards: tuple[float, ...]) -> Episode:
    return Episode(task_id, steps, None, rewards, None, 0.0, False, "code", Spend(), "sampling")


def _weights(path) -> dict[str, torch.Tensor]:
    return load_policy(str(path), device="cpu").model.state_dict()


def _same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def test_episodes_are_kept_by_their_whole_return_and_each_distinct_one_once():
    episodes = [
        _episode("a", ("plan", "code"), (0.25, 0.75)),  # return 1.0: kept
        _episode("a", ("plan", "code"), (0.25, 0.75)),  # the same steps again: kept once
        _episode("a", ("other", "code"), (0.0, 0.5)),  # return 0.5: dropped
        _episode("b", ("plan", "code"), (0.0, 1.0)),  # the same steps for another task: kept
    ]
    problems = {"a": "Problem A", "b": "Problem B"}
    assert kept_episodes(episodes, problems, 1.0) == [
        ("Problem A", ("plan", "code")),
        ("Problem B", ("plan", "code")),
    ]
    assert len(kept_episodes(episodes, problems, 0.5)) == 3
    assert kept_episodes(episodes, problems, 1.5) == []
    # Tasks greedy decoding already solves keep nothing under greedy_failures_only.
    assert kept_episodes(episodes, problems, 1.0, skip_tasks=frozenset({"a"})) == [
        ("Problem B", ("plan", "code"))
    ]


@pytest.mark.slow
def test_a_round_trains_on_what_it_kept_and_a_resumed_run_goes_on(tmp_path, sandbox_factory):
    box = sandbox_factory("local")
    run = tmp_path / "run"
    first = train_rejection_sampling(run, rounds=1, min_return=-math.inf, seed=1, sandbox=box, **BUDGET)
    (only,) = first.rounds
    # Everything was kept: each distinct episode once, every task represented.
    assert only.episodes == 8 and 1 <= only.kept <= 8 and only.tasks_kept == 4
    assert first.policy == str(run / "round-1")
    assert not _same(_weights(first.policy), _weights(tiny_checkpoint("policy")))
    learnt = json.loads((run / "round-1" / "kept.json").read_text())
    assert len(learnt) == only.kept and all(set(entry) == {"problem", "steps"} for entry in learnt)
    saved = json.loads((run / "rounds.json").read_text())
    assert saved["settings"]["min_return"] == -math.inf and len(saved["rounds"]) == 1

    (run / ".round-2.partial").mkdir()  # what a crash mid-round leaves
    resumed = train_rejection_sampling(run, rounds=2, min_return=-math.inf, seed=1, sandbox=box, **BUDGET)
    assert resumed.resumed_from == 1 and [r.round for r in resumed.rounds] == [1, 2]
    assert resumed.rounds[0] == only  # round 1 was not rerun
    assert resumed.policy == str(run / "round-2") and not (run / ".round-2.partial").exists()
    assert not _same(_weights(run / "round-1"), _weights(run / "round-2"))  # round 2 went on from round 1

    with pytest.raises(UserError, match="other settings"):
        train_rejection_sampling(run, rounds=3, min_return=0.5, seed=1, sandbox=box, **BUDGET)


@pytest.mark.slow
def test_a_round_that_keeps_nothing_leaves_the_policy_as_it_was(tmp_path, sandbox_factory):
    result = train_rejection_sampling(
        tmp_path / "run", rounds=1, min_return=2.0, sandbox=sandbox_factory("local"), **BUDGET
    )
    (only,) = result.rounds
    assert only.kept == 0 and only.tasks_kept == 0 and only.final_loss is None
    assert json.loads((tmp_path / "run" / "round-1" / "kept.json").read_text()) == []
    assert _same(_weights(result.policy), _weights(tiny_checkpoint("policy")))


@pytest.mark.slow
def test_greedy_failures_only_keeps_nothing_of_tasks_the_greedy_episode_solves(tmp_path, sandbox_factory):
    # Every return reaches -inf, so every task's greedy episode "solves" it and no task may keep anything.
    result = train_rejection_sampling(
        tmp_path / "run",
        rounds=1,
        min_return=-math.inf,
        greedy_failures_only=True,
        sandbox=sandbox_factory("local"),
        **BUDGET,
    )
    (only,) = result.rounds
    assert only.episodes == 8 and only.tasks_greedy_kept_out == 4 and only.kept == 0
    assert _same(_weights(result.policy), _weights(tiny_checkpoint("policy")))
    saved = json.loads((tmp_path / "run" / "rounds.json").read_text())
    assert saved["settings"]["greedy_failures_only"] is True
    assert saved["rounds"][0]["tasks_greedy_kept_out"] == 4


@pytest.mark.slow
def test_from_start_fine_tunes_the_start_policy_on_every_episode_kept_so_far(tmp_path, sandbox_factory):
    box, run = sandbox_factory("local"), tmp_path / "run"
    options = {"min_return": -math.inf, "from_start": True, "seed": 3, "sandbox": box, **BUDGET}
    first = train_rejection_sampling(run, rounds=1, **options)
    assert first.rounds[0].trained_on == first.rounds[0].kept
    resumed = train_rejection_sampling(run, rounds=2, **options)  # the pool comes back from kept.json
    kept = [
        {
            (e["problem"], tuple(e["steps"]))
            for e in json.loads((run / f"round-{k}" / "kept.json").read_text())
        }
        for k in (1, 2)
    ]
    assert resumed.rounds[1].trained_on == len(kept[0] | kept[1]) > resumed.rounds[1].kept
    assert json.loads((run / "rounds.json").read_text())["settings"]["from_start"] is True


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"rounds": 0}, "rounds must be an int >= 1"),
        ({"samples_per_task": 1.5}, "samples_per_task must be an int >= 1"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"learning_rate": -1.0}, "learning_rate must be > 0"),
        ({"policy": object()}, "policy must be a spec"),
        ({"policy": "no/such/folder"}, 'not "tiny", a built-in model'),
        ({"reward": "no-such-scheme"}, "no-such-scheme"),
        ({"task_options": {"max_ops": 0}}, "max_ops"),
        ({"env_options": {"reward": "dense"}}, "env_options must not set \\['reward'\\]"),
        ({"greedy_failures_only": "yes"}, "greedy_failures_only must be True or False"),
        ({"from_start": 1}, "from_start must be True or False"),
    ],
)
def test_bad_arguments_raise_before_anything_runs(tmp_path, overrides, match):
    with pytest.raises(UserError, match=match):
        train_rejection_sampling(tmp_path / "run", **{**BUDGET, **overrides})
    assert not (tmp_path / "run").exists()
