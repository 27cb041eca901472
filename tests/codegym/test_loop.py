"""The O1-Coder loop end to end on a tiny budget: every stage's outputs, resume, a stage killed midway,
stale stages after a rerun, and the configuration file."""

from __future__ import annotations

import json
import shutil
import tomllib

import pytest

from codegym.loop import load_config, run_loop, stage_folder, to_toml
from codegym.loop.config import from_dict
from codegym.loop.runner import STAGES
from codegym.loop.task_sets import eval_tasks
from codegym.models.prm_data import load_step_labels

TINY = {
    "sandbox": "local",
    "max_steps": 4,
    "tasks": {"train_tasks": 6, "min_ops": 1, "max_ops": 1, "eval_tasks": 4, "eval_ops": 1},
    "search": {"simulations": 2},
    "sft": {"epochs": 1.0, "replay": 8},
    "prm_training": {"replay": 8},
    "rl": {"iterations": 1, "tasks_per_iteration": 2, "group_size": 2, "replay": 4},
    "eval": {"best_of_n": 2, "mcts_simulations": 1, "search_tasks": 3},
    "check_tasks": 4,
    "rollback": False,  # the stages' outputs are used whatever their checks say (tested on its own below)
}
ALL = ["iter-0/6-eval"] + [f"iter-1/{i}-{name}" for i, name in enumerate(STAGES, 1)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One iteration of the loop, run once for the module."""
    run_dir = tmp_path_factory.mktemp("loop") / "run"
    events = []
    result = run_loop(from_dict(TINY), run_dir, progress=False, on_stage=lambda *e: events.append(e[:2]))
    return run_dir, result, events


@pytest.mark.slow
def test_every_stage_writes_its_outputs(finished):
    run_dir, result, events = finished
    assert list(result.ran) == ALL and result.skipped == ()
    assert [label for label, event in events if event == "done"] == ALL
    tcg = stage_folder(run_dir, 1, "tcg")
    rows = [json.loads(line) for line in (tcg / "tests.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(row["tests"] for row in rows)
    search = stage_folder(run_dir, 1, "search")
    labels = load_step_labels(search / "trees")  # what PRM training reads
    metrics = json.loads((search / "metrics.json").read_text())
    assert len(labels) == metrics["nodes"] > 0 and metrics["solved_paths"] >= 1
    assert len((search / "solved_paths.jsonl").read_text().splitlines()) == metrics["solved_paths"]
    assert json.loads((search / "trees.json").read_text())[0]["root"]["visits"] > 0
    assert list((search / "html").glob("*.html"))
    assert (stage_folder(run_dir, 1, "sft") / "model" / "model.safetensors").is_file()
    sft = json.loads((stage_folder(run_dir, 1, "sft") / "metrics.json").read_text())
    assert sft["episodes"] == metrics["solved_paths"] and sft["replay_episodes"] == 8
    assert (stage_folder(run_dir, 1, "prm") / "model" / "model.safetensors").is_file()
    rl = json.loads((stage_folder(run_dir, 1, "rl") / "metrics.json").read_text())
    assert rl["iterations"] == 1 and rl["model"] == "run/checkpoint-1" and rl["replay_episodes"] == 4
    assert len(rl["curve"]["mean_reward"]) == len(rl["curve"]["kl"]) == 1
    prm = json.loads((stage_folder(run_dir, 1, "prm") / "metrics.json").read_text())
    assert prm["tree_rows"] == metrics["nodes"] and prm["replay_rows"] > 0
    assert prm["tree_rows_trained"] % 2 == 0 and prm["tree_rows_trained"] <= prm["tree_rows"]  # balanced
    # The PRM it started from (the shipped one) is measured on the same held-out steps as the new one.
    assert prm["heldout_auc"] == prm["check"]["after"] and prm["check"]["before"] > 0.8
    for check in (sft["check"], rl["check"], prm["check"]):
        assert check["worse"] == (check["after"] < check["before"]) and check["rolled_back"] is False
    assert sft["check"]["size"] == rl["check"]["size"] == 4
    assert result.policy == str(stage_folder(run_dir, 1, "rl") / "run" / "checkpoint-1")
    assert result.prm == str(stage_folder(run_dir, 1, "prm") / "model")
    # The evaluation before and after, in the summary and its plot.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["pass@1_by_iteration"]) == {"0", "1"}
    assert set(summary["pass@1_by_iteration"]["1"]) == {"greedy", "best-of-2", "mcts-1"}
    after = json.loads((stage_folder(run_dir, 1, "eval") / "metrics.json").read_text())
    assert after["policy"] == result.policy and after["tasks"] == 4
    assert [after["agents"][name]["tasks"] for name in ("greedy", "best-of-2", "mcts-1")] == [4, 3, 3]
    before = json.loads((stage_folder(run_dir, 0, "eval") / "metrics.json").read_text())
    for name, gain in summary["gain_by_iteration"]["1"].items():
        passed = after["agents"][name]["passed"], before["agents"][name]["passed"]
        assert gain["mean"] == pytest.approx((sum(passed[0]) - sum(passed[1])) / len(passed[0]))
        assert gain["low"] <= gain["mean"] <= gain["high"] and gain["tasks"] == len(passed[0])
        # The interval counts the distinct functions among the tasks the agent played.
        played = eval_tasks(from_dict(TINY))[: len(passed[0])]
        assert gain["groups"] == len({task.metadata["composition"] for task in played})
    assert (run_dir / "summary.png").stat().st_size > 1000
    assert load_config(run_dir / "config.toml") == from_dict(TINY)


@pytest.mark.slow
def test_a_second_run_skips_every_finished_stage(finished):
    run_dir, first, _ = finished
    again = run_loop(from_dict(TINY), run_dir, progress=False)
    assert again.ran == () and list(again.skipped) == ALL
    assert again.policy == first.policy and again.summary == first.summary


@pytest.mark.slow
def test_a_stage_killed_midway_restarts_cleanly(finished, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    for name in ("prm", "rl", "eval"):
        shutil.rmtree(stage_folder(run_dir, 1, name))
    real_prm = STAGES["prm"]

    def killed(ctx):
        (ctx.out / "half-written").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setitem(STAGES, "prm", killed)
    with pytest.raises(KeyboardInterrupt):
        run_loop(from_dict(TINY), run_dir, progress=False)
    prm = stage_folder(run_dir, 1, "prm")
    partial = prm.with_name(prm.name + ".partial")
    assert (partial / "half-written").exists() and not prm.exists()
    monkeypatch.setitem(STAGES, "prm", real_prm)
    resumed = run_loop(from_dict(TINY), run_dir, progress=False)
    assert list(resumed.ran) == ["iter-1/4-prm", "iter-1/5-rl", "iter-1/6-eval"]
    assert list(resumed.skipped) == ALL[:4]
    assert not partial.exists() and not (prm / "half-written").exists()
    assert (prm / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_rerunning_a_stage_sets_later_ones_aside_and_reruns_them(finished, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    shutil.rmtree(stage_folder(run_dir, 1, "rl"))
    events = []
    result = run_loop(from_dict(TINY), run_dir, progress=False, on_stage=lambda *e: events.append(e[:2]))
    assert list(result.ran) == ["iter-1/5-rl", "iter-1/6-eval"]
    assert ("iter-1/6-eval", "stale") in events
    assert len(list((run_dir / "iter-1").glob("6-eval.stale-*"))) == 1  # kept, not deleted


@pytest.mark.slow
def test_a_stage_that_makes_its_check_worse_is_rolled_back(tmp_path):
    # Learning rates that wreck both models: the checks must see it and keep the models they started from.
    config = from_dict(
        {
            **TINY,
            "rollback": True,
            "check_tasks": 8,
            "sft": {"epochs": 1.0, "replay": 8, "learning_rate": 0.5},
            "prm_training": {"replay": 8, "learning_rate": 0.5},
        }
    )
    result = run_loop(config, tmp_path / "run", progress=False, until=(1, "prm"))
    sft = json.loads((stage_folder(tmp_path / "run", 1, "sft") / "metrics.json").read_text())
    prm = json.loads((stage_folder(tmp_path / "run", 1, "prm") / "metrics.json").read_text())
    assert sft["check"]["before"] > sft["check"]["after"] and sft["check"]["rolled_back"] is True
    assert prm["check"]["before"] > prm["check"]["after"] and prm["check"]["rolled_back"] is True
    assert "model" not in sft and sft["trained_model"] == "model"
    assert (result.policy, result.prm) == ("tiny", "tiny")  # what the next stages get


@pytest.mark.slow
def test_a_run_directory_refuses_a_different_configuration(finished):
    changed = from_dict({**TINY, "seed": 1})
    with pytest.raises(ValueError, match=r"different configuration \(seed differ"):
        run_loop(changed, finished[0], progress=False)


def test_the_configuration_file_shows_every_default_and_round_trips(tmp_path):
    text = to_toml(load_config())
    assert "[search]" in text and "simulations = 6" in text and "# MCTS simulations per task" in text
    assert from_dict(tomllib.loads(text)) == load_config()
    path = tmp_path / "loop.toml"
    path.write_text(text.replace("simulations = 6", "simulations = 9"))
    assert load_config(path, iterations=3).search.simulations == 9
    assert load_config(path, iterations=3).iterations == 3


@pytest.mark.parametrize(
    "data, match",
    [
        ({"iteratons": 2}, r"unknown loop configuration key\(s\) \['iteratons'\]"),
        ({"search": {"sims": 2}}, r"unknown key\(s\) \['sims'\] in \[search\]"),
        ({"search": {"simulations": "many"}}, "search.simulations must be of type int"),
        ({"search": {"selection": "random"}}, "bad loop configuration value.*search.selection"),
        ({"tasks": {"min_ops": 3, "max_ops": 1}}, "tasks.min_ops <= tasks.max_ops"),
        ({"rl": {"replay": -1}}, "bad loop configuration value.*rl.replay"),
        ({"rl": {"reward": "sparse"}}, "bad loop configuration value.*rl.reward"),
        ({"tasks": {"source": "mbpp"}}, "bad loop configuration value.*tasks.source"),
        ({"tasks": {"train_split": "dev"}}, "bad loop configuration value.*tasks.train_split"),
        ({"tasks": {"train_split": "test", "max_ops": 3}}, "eval_ops outside tasks.min_ops..tasks.max_ops"),
        (
            {"tasks": {"train_split": "test", "source": "codeio", "min_ops": 3, "max_ops": 3}},
            'needs tasks.source = "synthetic"',
        ),
    ],
)
def test_bad_configurations_are_named(data, match):
    with pytest.raises(ValueError, match=match):
        from_dict(data)


def test_a_missing_configuration_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="codegym loop --print-config"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.slow
def test_sft_trains_on_every_iteration_s_distinct_solved_paths(tmp_path):
    from codegym.loop.context import StageContext
    from codegym.loop.stages import _solved_paths

    def write(iteration: int, rows: list[tuple[str, list[str]]]) -> None:
        folder = tmp_path / f"iter-{iteration}" / "2-search"
        folder.mkdir(parents=True)
        lines = [json.dumps({"problem": p, "steps": s}) + "\n" for p, s in rows]
        (folder / "solved_paths.jsonl").write_text("".join(lines))

    write(1, [("p1", ["a", "b"]), ("p2", ["c"])])
    write(2, [("p1", ["a", "b"]), ("p3", ["d"])])  # p1's path again, and a new one
    for accumulate, expected, expected_new in ((True, 3, 1), (False, 2, 2)):
        config = from_dict({**TINY, "sft": {"accumulate": accumulate}})
        done = {"search": tmp_path / "iter-2" / "2-search"}
        ctx = StageContext(config, 2, tmp_path / "iter-2" / "3-sft.partial", None, "tiny", "tiny", done)
        episodes, new = _solved_paths(ctx)
        assert len(episodes) == expected and new == expected_new  # with the past, p1's path is not new
        assert ("p3", ["d"]) in episodes and (("p2", ["c"]) in episodes) == accumulate


@pytest.mark.slow
def test_sft_without_solved_paths_trains_on_the_replay_alone(tmp_path):
    """The control arm: the same SFT with the search's paths left out, so a run says what they add."""
    from codegym.loop.context import StageContext
    from codegym.loop.stages import stage_sft

    search = tmp_path / "iter-1" / "2-search"
    search.mkdir(parents=True)
    (search / "solved_paths.jsonl").write_text(json.dumps({"problem": "p", "steps": ["a"]}) + "\n")
    config = from_dict({**TINY, "check_tasks": 0, "sft": {"epochs": 1.0, "replay": 8, "solved_paths": False}})
    out = tmp_path / "iter-1" / "3-sft.partial"
    out.mkdir(parents=True)
    ctx = StageContext(config, 1, out, None, "tiny", "tiny", {"search": search}, progress=False)
    metrics = stage_sft(ctx)
    assert metrics["episodes"] == 0 and metrics["replay_episodes"] == 8 and metrics["model"] == "model"
    assert (out / "model" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="solved_paths or replay"):
        from_dict({**TINY, "sft": {"replay": 0, "solved_paths": False}})


@pytest.mark.slow
def test_sft_from_start_fine_tunes_the_loop_s_starting_policy_not_the_current_one(tmp_path):
    """sft.from_start (STaR's restart): iteration 2 trains the policy the loop started from; the current
    policy, which only searched, is never loaded (here it does not exist, so loading it would fail)."""
    from codegym.loop.context import StageContext
    from codegym.loop.stages import stage_sft

    search = tmp_path / "iter-2" / "2-search"
    search.mkdir(parents=True)
    (search / "solved_paths.jsonl").write_text(json.dumps({"problem": "p", "steps": ["a"]}) + "\n")
    out = tmp_path / "iter-2" / "3-sft.partial"
    out.mkdir(parents=True)
    missing = str(tmp_path / "iter-1" / "5-rl" / "no-such-policy")
    sft = {"epochs": 1.0, "replay": 8}
    for from_start in (True, False):
        config = from_dict({**TINY, "check_tasks": 0, "sft": {**sft, "from_start": from_start}})
        ctx = StageContext(config, 2, out, None, missing, "tiny", {"search": search}, progress=False)
        if from_start:
            metrics = stage_sft(ctx)
            assert metrics["base"] == "tiny" and metrics["episodes"] == 1 and metrics["replay_episodes"] == 8
            assert (out / "model" / "model.safetensors").is_file()
        else:
            with pytest.raises(Exception, match="no-such-policy"):
                stage_sft(ctx)


@pytest.mark.slow
def test_the_loop_can_search_held_out_compositions_the_evaluation_never_sees(tmp_path):
    """tasks.train_split = "test": the TCG, search and RL stages work on held-out compositions of
    other ops than the evaluation's, so no reference episode covers them and the evaluation's stay unseen."""
    from codegym.loop.context import iteration_seed
    from codegym.loop.task_sets import task_group, training_tasks

    settings = {**TINY, "tasks": {**TINY["tasks"], "train_split": "test", "min_ops": 2, "max_ops": 2}}
    config = from_dict(settings)
    trained = training_tasks(config, iteration_seed(config.seed, 1))
    held_out = eval_tasks(config)
    assert all(t.metadata["split"] == "test" and len(t.metadata["ops"]) == 2 for t in trained)
    assert not {task_group(t) for t in trained} & {task_group(t) for t in held_out}
    run_loop(config, tmp_path / "run", progress=False, until=(1, "search"))
    rows = (stage_folder(tmp_path / "run", 1, "tcg") / "tests.jsonl").read_text().splitlines()
    searched = [json.loads(row)["task_id"] for row in rows]
    assert searched == [t.task_id for t in trained] and all(i.startswith("synthetic/test/") for i in searched)
    assert (stage_folder(tmp_path / "run", 1, "search") / "metrics.json").is_file()


@pytest.mark.slow
def test_the_loop_draws_codeio_tasks_when_configured(tmp_path, monkeypatch):
    """With tasks.source = "codeio" every stage's tasks come from CodeIO's splits (built into the cache
    once: about 20 s for the test split, 2 minutes for the train split, on 2 cores)."""
    from importlib import metadata

    try:
        metadata.distribution("reasoning-gym")  # never imported: only its data file is read
    except metadata.PackageNotFoundError:
        pytest.skip("reasoning-gym is not installed; `make install` installs it (pip --no-deps)")
    from codegym.loop.checks import check_tasks
    from codegym.loop.context import StageContext
    from codegym.loop.task_sets import training_tasks

    monkeypatch.setenv("CODEGYM_CACHE", str(tmp_path / "cache"))
    config = from_dict({"tasks": {"source": "codeio", "train_tasks": 5, "eval_tasks": 4}, "check_tasks": 3})
    held_out = eval_tasks(config)
    assert len(held_out) == 4 and len({t.task_id for t in held_out}) == 4
    assert all(t.task_id.startswith("codeio/") and t.metadata["split"] == "test" for t in held_out)
    assert [t.task_id for t in eval_tasks(config)] == [t.task_id for t in held_out]  # the same every time
    first, second = training_tasks(config, seed=1), training_tasks(config, seed=2)
    assert len(first) == 5 and all(t.metadata["split"] == "train" for t in first)
    assert {t.task_id for t in first} != {t.task_id for t in second}  # new ones every iteration
    ctx = StageContext(config, 1, tmp_path / "stage", sandbox=None, policy="tiny", prm="tiny")
    checks = check_tasks(ctx)
    assert len(checks) == 3 and not {t.task_id for t in checks} & {t.task_id for t in held_out}
