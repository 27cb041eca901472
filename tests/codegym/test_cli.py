"""The codegym command, run for real (tiny models, the local sandbox, two tasks)."""

from __future__ import annotations

import json
import sys

import pytest

from codegym.cli import build_parser, main, print_table, run_command

# Two easy held-out synthetic tasks (one op each): the tiny policy solves some of them.
TASKS = ["--n-tasks", "2", "--task-options", '{"max_ops": 1}', "--sandbox", "local"]


def run(argv: list[str]) -> int:
    """main()'s exit status, whether it returned it or argparse exited."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def table_value(out: str, name: str) -> str:
    """The value of a key-value row of a summary table."""
    for line in out.splitlines():
        if line.startswith(name + "  "):
            return line[len(name) :].strip()
    raise AssertionError(f"no row {name!r} in:\n{out}")


# -- the existing sandbox command -------------------------------------------------------------------


def test_sandbox_humaneval_passes_canonical_and_fails_broken(capsys):
    assert main(["sandbox", "humaneval", "--sandbox", "local", "--limit", "4", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "canonical solutions passed  4/4" in out
    assert "broken solutions passed     0/4" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sandbox", "humaneval", "--workers", "0"], "--workers must be at least 1"),
        (["sandbox", "humaneval", "--sandbox", "kubernetes"], "invalid choice"),
        (["sandbox"], "required"),
    ],
)
def test_bad_arguments_get_a_message_not_a_traceback(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_print_table_aligns_columns_under_a_header(capsys):
    print_table([("a", 1, "x"), ("long name", 22, "")], ["name", "n", "note"])
    assert capsys.readouterr().out.splitlines() == [
        "name       n   note",
        "---------  --  ----",
        "a          1   x",
        "long name  22",
    ]


# -- solve ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_solve_greedy_matches_the_library_and_writes_episodes(capsys, tmp_path):
    import gymnasium as gym

    from codegym.agents import GreedyAgent
    from codegym.models import load_policy
    from codegym.tasks.synthetic import SyntheticTasks

    out_file = tmp_path / "episodes.jsonl"
    argv = ["solve", "--agent", "greedy", "--visible-tests", "task", *TASKS, "--out", str(out_file)]
    assert run(argv) == 0
    out = capsys.readouterr().out
    records = read_jsonl(out_file)

    tasks = SyntheticTasks("test", max_ops=1).tasks(2, seed=0)
    env = gym.make("CodeReason-v0", tasks=tasks, sandbox="local")
    expected = GreedyAgent(load_policy("tiny")).solve_many(env, [t.task_id for t in tasks])
    env.close()
    assert [r["task_id"] for r in records] == [t.task_id for t in tasks]
    for record, episode in zip(records, expected, strict=True):
        assert record["steps"] == list(episode.steps)
        assert record["code"] == episode.code
        assert record["solved"] == episode.hidden_all_passed
        assert record["visible_source"] == "hidden"  # synthetic tasks have no visible tests of their own
        assert record["spend"]["steps_generated"] == episode.spend.steps_generated == len(episode.steps)
        assert record["spend"]["tokens"] == episode.spend.tokens > 0
    solved = sum(r["solved"] for r in records)
    header, _rule, *rows, total = out.split("\n\n")[0].splitlines()
    assert header.split()[:3] == ["task", "solved", "visible"]
    assert [row.split()[0] for row in rows] == [r["task_id"] for r in records]
    assert total.split()[:2] == ["total", f"{solved}/2"]
    assert table_value(out, "agent") == "greedy"
    assert table_value(out, "solved (hidden tests)").startswith(f"{solved}/2")


def test_solve_beam_respects_the_budget(capsys, tmp_path):
    out_file = tmp_path / "beam.jsonl"
    argv = ["solve", "--agent", "beam", "--beam-width", "1", "--expansions", "2", "--budget-steps", "6"]
    assert run([*argv, *TASKS, "--out", str(out_file)]) == 0
    records = read_jsonl(out_file)
    assert len(records) == 2
    for record in records:
        assert record["agent"] == "beam(1x2)"
        assert 0 < record["spend"]["steps_generated"] <= 6
        assert record["spend"]["prm_calls"] > 0  # the PRM ranked the beams
        # The default visible tests are the oracle generator's (None: the budget ended it before code).
        assert record["visible_source"] == ("tcg" if record["code"] is not None else None)
    assert "beam(1x2)" in capsys.readouterr().out


def test_solve_mcts_writes_trees_as_html(capsys, tmp_path):
    out_file, html_dir = tmp_path / "mcts.jsonl", tmp_path / "html"
    argv = [
        "solve",
        "--agent",
        "mcts",
        "--simulations",
        "2",
        "--expansions",
        "2",
        "--html-dir",
        str(html_dir),
    ]
    assert run([*argv, *TASKS, "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    records = read_jsonl(out_file)
    pages = sorted(html_dir.glob("*.html"))
    assert len(pages) == 2
    assert all("<!DOCTYPE html>" in page.read_text() for page in pages)
    assert all(r["nodes"] > 1 and r["simulations"] <= 2 for r in records)
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[-1] == str(sum(r["nodes"] for r in records))


# -- eval -------------------------------------------------------------------------------------------


def test_eval_reports_unbiased_pass_at_k_from_the_counts(capsys, tmp_path):
    from codegym.evaluation import pass_at_k

    out_file = tmp_path / "results.json"
    argv = ["eval", "--samples", "2", "--k", "1,2", "--greedy", "--max-steps", "4", *TASKS]
    assert run([*argv, "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    results = json.loads(out_file.read_text())
    per_task = results["per_task"]
    assert len(per_task) == 2 and all(0 <= t["correct"] <= 2 for t in per_task)
    for k in (1, 2):
        expected = sum(pass_at_k(2, t["correct"], k) for t in per_task) / 2
        assert results["pass_at_k"][str(k)] == pytest.approx(expected)
    assert results["greedy_pass_at_1"] == sum(t["greedy_correct"] for t in per_task) / 2
    assert results["settings"]["split"] == "test"
    all_row = next(line for line in out.splitlines() if line.startswith("all "))
    assert all_row.split() == [
        "all",
        "2",
        f"{results['greedy_pass_at_1']:.3f}",
        f"{results['pass_at_k']['1']:.3f}",
        f"{results['pass_at_k']['2']:.3f}",
    ]


@pytest.mark.slow
def test_eval_runs_on_codeio_s_test_split_by_default(capsys, tmp_path, monkeypatch):
    from importlib import metadata

    try:
        metadata.distribution("reasoning-gym")
    except metadata.PackageNotFoundError:
        pytest.skip("reasoning-gym is not installed; `make install` installs it (pip --no-deps)")
    monkeypatch.setenv("CODEGYM_CACHE", str(tmp_path / "cache"))
    out_file = tmp_path / "results.json"
    argv = [
        "eval",
        "--tasks",
        "codeio",
        "--task-options",
        '{"limit": 2, "progress": false}',
        "--temperature",
        "0",
    ]
    assert run([*argv, "--max-steps", "2", "--sandbox", "local", "--out", str(out_file)]) == 0
    results = json.loads(out_file.read_text())
    assert results["settings"]["split"] == "test"
    from codegym.tasks.codeio import load_codeio

    built = [task.task_id for task in load_codeio("test", limit=2, sandbox="cached-only", progress=False)]
    assert [t["task_id"] for t in results["per_task"]] == built and built[0].startswith("codeio/")
    assert all(t["correct"] in (0, 1) for t in results["per_task"])
    assert f"{len(built)} (codeio, split test)" in capsys.readouterr().out


# -- tcg --------------------------------------------------------------------------------------------


def test_tcg_oracle_keeps_tests_the_reference_passes(capsys, tmp_path):
    from codegym.sandbox import CallTest, make_sandbox
    from codegym.sandbox.plain import decode_plain
    from codegym.tasks import load_tasks

    out_file = tmp_path / "tests.jsonl"
    argv = ["tcg", "--tasks", "humaneval", "--n-tasks", "3", "--n", "5", "--sandbox", "local"]
    assert run([*argv, "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    records = read_jsonl(out_file)
    assert [r["task_id"] for r in records] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(0 < len(r["tests"]) <= 5 for r in records)
    kept = sum(len(r["tests"]) for r in records)
    assert table_value(out, "tests kept").startswith(f"{kept} ")
    proposed, valid = sum(r["proposed"] for r in records), sum(r["valid"] for r in records)
    assert table_value(out, "validity rate") == f"{valid / proposed:.1%}"
    # The written tests are real: rebuilt from the file, the reference passes every one.
    source = load_tasks("humaneval")
    with make_sandbox("local", workers=1) as box:
        for record in records:
            tests = [
                CallTest(
                    t["entry_point"],
                    decode_plain(t["args"]),
                    decode_plain(t["kwargs"]),
                    decode_plain(t["expected"]),
                )
                for t in record["tests"]
            ]
            assert box.run(source.get(record["task_id"]).reference_solution, tests).all_passed


# -- search -----------------------------------------------------------------------------------------


def test_search_writes_trees_paths_and_pages(capsys, tmp_path):
    from datasets import load_from_disk

    out_dir = tmp_path / "search"
    argv = ["search", "--simulations", "2", "--expansions", "2", *TASKS, "--out", str(out_dir)]
    assert run(argv) == 0
    out = capsys.readouterr().out
    dataset = load_from_disk(str(out_dir / "trees"))
    trees = json.loads((out_dir / "trees.json").read_text())
    episodes = read_jsonl(out_dir / "episodes.jsonl")
    paths = read_jsonl(out_dir / "solved_paths.jsonl")
    assert len(trees) == 2 and len(episodes) == 2
    assert len(dataset) == sum(e["nodes"] - 1 for e in episodes)  # every node but the roots
    assert set(dataset["origin"]) == {"mcts"}
    assert table_value(out, "step rows (DIR/trees)") == str(len(dataset))
    assert table_value(out, "rows with hard_label 1") == str(sum(x == 1.0 for x in dataset["hard_label"]))
    assert table_value(out, "solved paths (visible tests)") == str(len(paths))
    assert all(path["steps"] and "```python" in path["steps"][-1] for path in paths)
    assert len(list((out_dir / "html").glob("*.html"))) == 2


# -- rl ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rl_ppo_trains_and_summarizes(capsys, tmp_path):
    argv = ["rl", "ppo", "--out", str(tmp_path / "ppo"), "--total-timesteps", "8", "--n-steps", "8"]
    argv += ["--n-epochs", "1", "--candidates", "2", "--max-new-tokens", "64"]
    assert run([*argv, "--task-options", '{"max_ops": 1}']) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "ppo" / "metrics.json").read_text())
    assert (tmp_path / "ppo" / "model.zip").is_file()
    assert table_value(out, "timesteps") == "8"
    assert table_value(out, "episodes") == str(len(metrics["episodes"]))


@pytest.mark.slow
def test_rl_pg_trains_and_summarizes(capsys, tmp_path):
    argv = ["rl", "pg", "--out", str(tmp_path / "pg"), "--iterations", "1", "--tasks-per-iteration", "2"]
    argv += ["--group-size", "2", "--max-steps", "3", "--max-new-tokens", "64", "--sandbox", "local"]
    assert run([*argv, "--task-options", '{"max_ops": 1}', "--no-progress"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "pg" / "metrics.json").read_text())
    assert table_value(out, "iterations") == "1"
    assert table_value(out, "checkpoint") == str(tmp_path / "pg" / "checkpoint-1")
    [first] = metrics["iterations"]
    assert table_value(out, "mean reward, first iteration") == f"{first['mean_reward']:.3f}"
    assert table_value(out, "mean reward, last iteration") == f"{first['mean_reward']:.3f}"


@pytest.mark.slow
def test_rl_rft_trains_and_summarizes(capsys, tmp_path):
    argv = ["rl", "rft", "--out", str(tmp_path / "rft"), "--rounds", "1", "--tasks-per-round", "3"]
    argv += ["--samples-per-task", "2", "--max-steps", "3", "--max-new-tokens", "64", "--sandbox", "local"]
    assert run([*argv, "--min-return", "0", "--task-options", '{"max_ops": 1}', "--no-progress"]) == 0
    out = capsys.readouterr().out
    [only] = json.loads((tmp_path / "rft" / "rounds.json").read_text())["rounds"]
    assert table_value(out, "rounds") == "1"
    assert table_value(out, "policy") == str(tmp_path / "rft" / "round-1")
    assert table_value(out, "episodes kept per round") == f"{only['kept']}/6"
    assert table_value(out, "solve rate per round") == f"{only['solve_rate']:.3f}"


# -- bench ------------------------------------------------------------------------------------------


def test_bench_lists_the_checkout_scripts(capsys):
    assert run(["bench"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines()[2:] if line.strip() and not line[0].isdigit()]
    assert "search_vs_sampling" in names and "policy_sft" in names
    assert "Search against sampling at equal spend" in out


def test_bench_runs_a_script_with_its_arguments(capsys, tmp_path, monkeypatch):
    from codegym.cli import bench

    folder = tmp_path / "benchmarks"
    (folder / "perf").mkdir(parents=True)  # scripts sit in benchmarks/perf/ and benchmarks/studies/
    (folder / "perf" / "echo.py").write_text(
        '"""Echo the arguments."""\nimport pathlib, sys\n'
        'pathlib.Path("echoed.txt").write_text(" ".join(sys.argv[1:]) + " " + sys.executable)\n'
        "sys.exit(3)\n"
    )
    monkeypatch.setattr(bench, "candidate_dirs", lambda: [folder])
    assert run(["bench"]) == 0
    assert "echo       Echo the arguments." in capsys.readouterr().out.splitlines()
    assert run(["bench", "echo", "--", "--tasks", "3"]) == 3  # the script's own exit status
    assert (
        tmp_path / "echoed.txt"
    ).read_text() == f"--tasks 3 {sys.executable}"  # run from the checkout root
    assert table_value(capsys.readouterr().out, "exit status") == "3"


def test_bench_without_a_checkout_says_where_benchmarks_live(capsys, tmp_path, monkeypatch):
    from codegym.cli import bench

    monkeypatch.setattr(bench, "candidate_dirs", lambda: [tmp_path / "missing"])
    assert run(["bench"]) == 2
    assert "clone the repository" in capsys.readouterr().err


# -- help and bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        (
            ["solve"],
            ["--agent", "--policy", "--prm", "--budget-steps", "--visible-tests", "--task-id", "--out"],
        ),
        (["eval"], ["--samples", "--temperature", "--k", "--greedy", "--n-tasks", "--out"]),
        (["tcg"], ["--generator", "--n", "--tasks", "--n-tasks", "--out"]),
        (["search"], ["--simulations", "--selection", "--evaluation", "--out"]),
        (["rl", "ppo"], ["--out", "--total-timesteps", "--candidates", "--task-options"]),
        (["rl", "pg"], ["--out", "--iterations", "--group-size", "--advantage", "--reward"]),
        (["rl", "rft"], ["--out", "--rounds", "--tasks-per-round", "--min-return", "--reward"]),
        (["train", "policy"], ["--out", "--epochs", "--learning-rate"]),
        (["bench"], ["NAME", "ARGS"]),
        (["sandbox", "build-image"], ["--offline", "--tag"]),
    ],
)
def test_help_explains_each_option(capsys, argv, options):
    assert run([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    for option in options:
        assert option in out
    assert "(default:" in out


def test_top_level_help_lists_every_command(capsys):
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("solve", "eval", "tcg", "search", "train", "rl", "sandbox", "bench"):
        assert f"    {name} " in out


@pytest.mark.parametrize(
    ("argv", "fix"),
    [
        (["solve", "--agent", "wizard"], "invalid choice: 'wizard' (choose from"),
        (["solve", "--budget-steps", "-3"], "--budget-steps: must be at least 1, got -3"),
        (["solve", "--agent", "greedy", "--simulations", "4"], "it is an option of mcts"),
        (["solve", "--agent", "mcts", "--temperature", "0"], "--temperature must be > 0"),
        (["solve", "--task-id", "synthetic/test/nope/1"], "--task-id 'synthetic/test/nope/1' is not in"),
        (["solve", "--task-options", "[1]"], "expected a JSON object"),
        (["solve", "--policy", "/no/such/model"], "pass tiny, the folder of a saved model"),
        (["search", "--agent", "beam"], "invalid choice: 'beam'"),
        (["eval", "--samples", "2", "--k", "1,4"], "raise --samples to 4"),
        (["eval", "--temperature", "0", "--samples", "4"], "use --samples 1"),
        (["tcg", "--n", "0"], "--n: must be at least 1"),
        (["tcg", "--tasks", "humaneval", "--split", "train"], "humaneval has one split, 'test'"),
        (["rl", "ppo", "--total-timesteps", "0"], "total_timesteps must be an int >= 1"),
        (["bench", "nope"], "choose one of"),
        # Options forwarded as JSON: an unknown key is named with the valid ones, before anything loads.
        (["solve", "--task-options", '{"max_opps": 1}'], "no option 'max_opps': the valid ones are "),
        (["tcg", "--task-options", '{"max_opps": 1}'], "no option 'max_opps': the valid ones are "),
        (["rl", "ppo", "--task-options", '{"max_opps": 1}'], "no option 'max_opps': the valid ones are "),
        (["rl", "ppo", "--env-options", '{"max_stepz": 2}'], "no option 'max_stepz': the valid ones are "),
        (["rl", "pg", "--env-options", '{"max_stepz": 2}'], "no option 'max_stepz': the valid ones are "),
        (
            ["rl", "pg", "--reward-options", '{"gama": 1}'],
            "no option 'gama': the valid ones are alpha, gamma",
        ),
        (["serve", "--max-steps", "2000"], "max_steps must be an int in [1, 1000], got 2000"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_the_fix(capsys, tmp_path, monkeypatch, argv, fix):
    monkeypatch.chdir(tmp_path)  # rl ppo would make runs/ here before refusing
    assert run(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("codegym")
    assert fix in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_verbose_shows_the_traceback_even_beside_a_commands_own_verbose(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(["-v", "rl", "ppo", "--total-timesteps", "0", "--verbose", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().splitlines()[-1] == "codegym: error: total_timesteps must be an int >= 1, got 0"


def test_a_missing_configuration_file_is_the_users_to_fix(capsys, tmp_path):
    assert run(["loop", "--config", str(tmp_path / "none.toml"), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"codegym: error: no loop configuration at {tmp_path / 'none.toml'}; write one with "
        "`codegym loop --print-config`"
    ]


def test_a_broken_model_folder_crashes_with_its_traceback_not_a_usage_line(capsys, tmp_path):
    # The folder exists (so it is no typo), but its config.json is not JSON: the error comes from
    # transformers, deep in loading, and nothing says the user's arguments were wrong.
    (tmp_path / "config.json").write_text("{not json")
    status = run(["solve", "--policy", str(tmp_path), *TASKS])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback (most recent call last)" in err
    assert "codegym solve: crashed" in err and "codegym: error:" not in err


@pytest.mark.parametrize(
    "error", [MemoryError(), RuntimeError("CUDA error"), KeyError("k"), OSError(28, "full")]
)
def test_a_failure_that_is_not_the_users_is_a_crash_with_exit_1(capsys, error):
    def failing(args):
        raise error

    args = build_parser().parse_args(["bench"])
    args.run = failing
    assert run_command(args) == 1
    err = capsys.readouterr().err
    assert f"{type(error).__name__}" in err and "Traceback (most recent call last)" in err
    assert "codegym: error:" not in err


def test_a_user_error_from_the_library_is_one_line_with_exit_2(capsys):
    from codegym.errors import UserError

    def refusing(args):
        raise UserError("n_tasks must be an int >= 1, got 0")

    args = build_parser().parse_args(["bench"])
    args.run = refusing
    assert run_command(args) == 2
    assert capsys.readouterr().err == "codegym: error: n_tasks must be an int >= 1, got 0\n"


# -- loop and demo ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_loop_prints_its_configuration_and_runs_one_stage_at_a_time(tmp_path, capsys):
    import tomllib

    from codegym.loop import load_config, to_toml
    from codegym.loop.config import from_dict

    assert run(["loop", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "# MCTS simulations per task" in text
    config = tomllib.loads(text)
    config.update(sandbox="local", max_steps=4)
    config["tasks"].update(train_tasks=3, min_ops=1, max_ops=1, eval_tasks=2, eval_ops=1)
    config["search"]["simulations"] = 1
    config["eval"].update(best_of_n=2, mcts_simulations=1)
    path = tmp_path / "loop.toml"
    path.write_text(to_toml(from_dict(config)))
    assert load_config(path).tasks.train_tasks == 3
    run_dir = tmp_path / "run"
    argv = ["loop", "--config", str(path), "--run-dir", str(run_dir), "--no-progress"]
    assert run([*argv, "--until", "1/tcg"]) == 0
    captured = capsys.readouterr()
    assert "[iter-0/6-eval] done" in captured.err and "[iter-1/1-tcg] done" in captured.err
    assert "pass@1 (held-out, hidden tests)" in captured.out and "greedy" in captured.out
    assert (run_dir / "iter-1" / "1-tcg" / "tests.jsonl").is_file()
    assert not (run_dir / "iter-1" / "2-search").exists()
    assert run([*argv, "--until", "1/search"]) == 0
    captured = capsys.readouterr()
    assert "[iter-1/1-tcg] finished before, skipped" in captured.err
    assert "[iter-1/2-search] done" in captured.err and "1 stages run, 2 skipped" in captured.out


def test_loop_refuses_a_bad_configuration_with_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[search]\nsims = 3\n")
    assert run(["loop", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['sims'] in [search]" in err and "Traceback" not in err
    assert run(["loop", "--until", "one/search", "--run-dir", str(tmp_path / "run")]) == 2
    assert "--until takes ITERATION/STAGE" in capsys.readouterr().err


def test_demo_prints_its_configuration(capsys):
    import tomllib

    from codegym.loop.demo import DEMO_SETTINGS

    assert run(["demo", "--print-config", "--seed", "3"]) == 0
    config = tomllib.loads(capsys.readouterr().out)
    assert config["seed"] == 3 and config["tasks"] == {**config["tasks"], **DEMO_SETTINGS["tasks"]}


def test_a_command_whose_extra_is_missing_names_the_extra(capsys, monkeypatch):
    # None in sys.modules makes an import fail as for an uninstalled package.
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    assert run(["rl", "ppo", "--help"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'codegym[rl]'" in err[0]
