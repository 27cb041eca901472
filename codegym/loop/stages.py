"""The six stages of O1-Coder's loop, each a function that writes its outputs into one folder.

Each stage reads what earlier stages wrote (through :class:`StageContext`), writes into ``ctx.out``, and
returns its metrics (the runner saves them as ``metrics.json``, which marks the stage finished):

1. ``tcg``: new training tasks, visible tests generated and validated against the references
   (``tests.jsonl``).
2. ``search``: MCTS with the current policy on those tasks (``trees/`` a step-label dataset, ``trees.json``,
   ``solved_paths.jsonl``: the paths whose code passed every visible test, ``html/``).
3. ``sft``: the policy fine-tuned on the solved paths (``model/``).
4. ``prm``: the PRM trained on the trees' step values (``model/``).
5. ``rl``: policy gradient in the env with the new PRM's process rewards and the outcome (``run/``,
   resumable from its own checkpoints).
6. ``eval``: pass@1 of greedy, best-of-N and MCTS on held-out tasks with the new policy. The next
   iteration's search (new reasoning data with the updated policy) closes the loop.

SFT, PRM and RL are checked before their output is used (:mod:`codegym.loop.checks`): a stage that scores
worse than its input reports ``"rolled_back": true`` and leaves ``"model"`` out of its metrics, so the
runner hands the next stage the input instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegym.loop.config import policy_options
from codegym.loop.context import StageContext
from codegym.loop.task_sets import eval_tasks, task_source, training_tasks
from codegym.sandbox import CallTest
from codegym.sandbox.plain import decode_plain, encode_plain

if TYPE_CHECKING:
    from codegym.tasks import Task


# -- tests on disk ----------------------------------------------------------------------------------------


def tests_to_row(task_id: str, tests: tuple[CallTest, ...]) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "tests": [
            {
                "entry_point": t.entry_point,
                "args": encode_plain(list(t.args)),
                "kwargs": encode_plain(dict(t.kwargs or {})),
                "expected": encode_plain(t.expected),
                "equality": t.equality,
            }
            for t in tests
        ],
    }


def tests_from_row(row: dict[str, Any]) -> tuple[CallTest, ...]:
    return tuple(
        CallTest(
            t["entry_point"],
            args=tuple(decode_plain(t["args"])),
            kwargs=decode_plain(t["kwargs"]) or None,
            expected=decode_plain(t["expected"]),
            equality=t["equality"],
        )
        for t in row["tests"]
    )


def _generator(ctx: StageContext):
    from codegym.tcg import ModelTCG, OracleTCG

    name = ctx.config.tcg.generator
    if name == "oracle":
        return OracleTCG(sandbox=ctx.sandbox, seed=ctx.config.seed)
    return ModelTCG(name, sandbox=ctx.sandbox, seed=ctx.config.seed)


def with_generated_tests(ctx: StageContext, tasks: list[Task]) -> list[Task]:
    """``tasks`` with visible tests from the configured generator (the task keeps its own if it fails)."""
    from codegym.tcg.base import with_visible_tests

    generator = _generator(ctx)
    out = []
    for task in tasks:
        tests = generator.generate(task, ctx.config.tcg.tests_per_task)
        out.append(with_visible_tests(task, tests, source="tcg") if tests else task)
    return out


# -- the stages --------------------------------------------------------------------------------------------


def stage_tcg(ctx: StageContext) -> dict[str, Any]:
    """1. Draw this iteration's training tasks and generate their visible tests."""
    from tqdm.auto import tqdm

    generator = _generator(ctx)
    tasks = training_tasks(ctx.config, ctx.seed)
    rows, proposed, valid, kept = [], 0, 0, 0
    for task in tqdm(tasks, desc="tcg", unit="task", disable=not ctx.progress):
        report = generator.generate_report(task, ctx.config.tcg.tests_per_task)
        proposed += report.proposed
        valid += report.valid
        kept += len(report.tests)
        rows.append(tests_to_row(task.task_id, report.tests))
    with open(ctx.out / "tests.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return {
        "tasks": len(tasks),
        "tests_kept": kept,
        "tests_proposed": proposed,
        "validity_rate": valid / proposed if proposed else 0.0,  # proposals the reference answered
        "tasks_without_tests": sum(not row["tests"] for row in rows),
    }


def _tasks_with_tests(ctx: StageContext) -> list[Task]:
    from codegym.tcg.base import with_visible_tests

    source = task_source(ctx.config, "train")
    tasks = []
    for line in (ctx.done["tcg"] / "tests.jsonl").read_text().splitlines():
        row = json.loads(line)
        task, tests = source.get(row["task_id"]), tests_from_row(row)
        tasks.append(with_visible_tests(task, tests, source="tcg") if tests else task)
    return tasks


def stage_search(ctx: StageContext) -> dict[str, Any]:
    """2. MCTS with the current policy; every tree as step-label rows, and the solved paths."""
    from codegym.agents import Spend, solved_paths, trees_dataset, write_html, write_json

    tasks = _tasks_with_tests(ctx)
    search = ctx.config.search
    needs_prm = search.evaluation in ("prm", "mix")
    factory = functools.partial(_search_agent, search, ctx.seed)
    episodes = solve_in_batches(ctx, tasks, factory, search.batch_size, needs_prm=needs_prm, env_kind="raw")[
        "mcts"
    ]
    trees = [episode.tree for episode in episodes]
    dataset = trees_dataset(trees)
    dataset.save_to_disk(str(ctx.out / "trees"))
    write_json(trees, ctx.out / "trees.json")
    for episode in episodes[:8]:  # a few pages to read; all trees are in trees.json
        write_html(episode.tree, ctx.out / "html" / (episode.task_id.replace("/", "_") + ".html"))
    paths = solved_paths(trees)
    with open(ctx.out / "solved_paths.jsonl", "w") as handle:
        handle.writelines(json.dumps({"problem": p, "steps": list(s)}) + "\n" for p, s in paths)
    spend = sum((e.spend for e in episodes), Spend())
    return {
        "tasks": len(tasks),
        "solved_visible": sum(t.solved_by is not None for t in trees) / len(trees),
        "solved_hidden": sum(e.hidden_all_passed for e in episodes) / len(episodes),
        "solved_paths": len(paths),
        "nodes": len(dataset),
        "positive_steps": int(sum(dataset["hard_label"])),
        "spend": spend.as_dict(),
    }


def stage_sft(ctx: StageContext) -> dict[str, Any]:
    """3. Fine-tune the policy on the paths whose code passed every visible test."""
    from codegym.models.tiny import tiny_checkpoint
    from codegym.training.policy_sft import synthetic_episodes, train_policy

    sft = ctx.config.sft
    episodes, own = _solved_paths(ctx) if sft.solved_paths else ([], 0)
    if not episodes and not sft.replay:
        return {"skipped": "no solved path and no replay: nothing to fine-tune on", "episodes": 0}
    # from_start (STaR's restart): every iteration fine-tunes the policy the loop started from, on the
    # replay and (with accumulate) every path kept so far; the current policy only searched for the paths.
    start = ctx.config.policy if sft.from_start else ctx.policy
    base = str(tiny_checkpoint("policy")) if start == "tiny" else start
    # The shipped tiny policy is under-trained: reference episodes of fresh tasks raise it far more than
    # its own solved paths do, most of which pass with a wrong outline (benchmarks/studies/loop_sft_data.py and
    # the README's loop figures). Real datasets have no reference reasoning: there, set sft.replay = 0.
    replay = synthetic_episodes(sft.replay, seed=ctx.seed) if sft.replay else []
    result = train_policy(
        ctx.out / "model",
        base=base,
        episodes=episodes + replay,
        epochs=sft.epochs,
        learning_rate=sft.learning_rate,
        batch_size=sft.batch_size,
        seed=ctx.seed,
        progress=ctx.progress,
        protocol=_protocol_name(ctx),
        lora_r=ctx.config.lora_r,
        dtype=ctx.config.dtype,
    )
    metrics = {
        "base": start,
        "episodes": len(episodes),
        "new_episodes": own,
        "replay_episodes": len(replay),
        "steps": result.steps,
        "final_loss": result.final_loss,
    }
    return {**metrics, **_checked_policy(ctx, "model")}


def _solved_paths(ctx: StageContext) -> tuple[list[tuple[str, list[str]]], int]:
    """The distinct solved paths SFT trains on: this iteration's search, and with ``sft.accumulate`` every
    earlier iteration's too (expert iteration: what the policy once solved stays in its data); and how
    many came from this iteration."""
    search = f"{list(STAGES).index('search') + 1}-search"
    run_dir = ctx.out.parent.parent
    earlier = range(1, ctx.iteration) if ctx.config.sft.accumulate else range(0)
    folders = [run_dir / f"iter-{i}" / search for i in earlier] + [ctx.done["search"]]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    episodes, own = [], 0
    for folder in folders:
        for row in map(json.loads, (folder / "solved_paths.jsonl").read_text().splitlines()):
            key = (row["problem"], tuple(row["steps"]))
            if key not in seen:
                seen.add(key)
                episodes.append((row["problem"], row["steps"]))
                own += folder == ctx.done["search"]
    return episodes, own


def _checked_policy(ctx: StageContext, model: str) -> dict[str, Any]:
    """``{"model": model}`` (the stage's output, relative to its folder) unless its check rolled it back,
    with the check's figures under ``"check"``."""
    if not ctx.config.check_tasks:
        return {"model": model}
    from codegym.loop.checks import policy_check

    check = policy_check(ctx, ctx.policy, str(ctx.out / model))
    return {"check": check, **({"trained_model": model} if check["rolled_back"] else {"model": model})}


def stage_prm(ctx: StageContext) -> dict[str, Any]:
    """4. Train the PRM on the trees' step values (labels from the visible tests; as many good rows as bad
    with ``balance``), with replayed execution-labelled steps, and check it against the PRM it started
    from on held-out steps."""
    from datasets import concatenate_datasets

    from codegym.loop.checks import prm_check
    from codegym.models.prm_data import balance_labels, load_step_labels, synthetic_step_labels
    from codegym.models.tiny import tiny_checkpoint

    base = str(tiny_checkpoint("prm")) if ctx.prm == "tiny" else ctx.prm
    config = ctx.config.prm_training
    trees = load_step_labels(ctx.done["search"] / "trees")
    tree_rows = len(trees)
    if config.balance:
        trees = balance_labels(trees, seed=ctx.seed)
    data = trees
    if config.replay:
        # The replay is what raises the PRM above its start (benchmarks/studies/loop_prm_data.py, two seeds: 400 tasks alone,
        # +0.014 held-out AUC; the balanced trees with them, +0.011; every tree row with them, +0.005).
        # Of every difficulty the starting PRM was trained on (synthetic_step_labels' defaults).
        replay = synthetic_step_labels("train", n_tasks=config.replay, seed=ctx.seed, sandbox=ctx.sandbox)
        data = concatenate_datasets([trees, replay.cast(trees.features)])
    result = train_loop_prm(ctx.out / "model", config, data, base, seed=ctx.seed, progress=ctx.progress)
    held_out = synthetic_step_labels("test", n_tasks=PRM_CHECK_TASKS, seed=ctx.seed + 1, sandbox=ctx.sandbox)
    check = prm_check(ctx, ctx.prm, str(ctx.out / "model"), held_out)
    return {
        "examples": result.examples,
        "tree_rows": tree_rows,
        "tree_rows_trained": len(trees),
        "replay_rows": len(data) - len(trees),
        "final_loss": result.final_loss,
        "heldout_auc": check["after"],
        "check": check,
        **({"trained_model": "model"} if check["rolled_back"] else {"model": "model"}),
    }


def train_loop_prm(out_dir: Path, config: Any, data: Any, base: str, *, seed: int, progress: bool) -> Any:
    """Train a PRM from ``base`` on step-label ``data`` the way the loop's PRM stage does, with the
    ``PRMConfig`` ``config``; returns :func:`~codegym.training.prm.train_prm`'s result."""
    from codegym.training.prm import train_prm

    return train_prm(
        out_dir,
        data=data,
        base=base,
        objective=config.objective,
        labels=config.labels,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        eval_tasks=0,
        seed=seed,
        progress=progress,
    )


def stage_rl(ctx: StageContext) -> dict[str, Any]:
    """5. Policy gradient from the fine-tuned policy, with the new PRM's process rewards and the outcome."""
    from codegym.training.policy_gradient import train_policy_gradient
    from codegym.training.policy_sft import synthetic_episodes

    rl = ctx.config.rl
    if rl.iterations == 0:
        return {"skipped": "rl.iterations = 0"}
    result = train_policy_gradient(
        ctx.out / "run",
        policy=ctx.policy,
        tasks=task_source(ctx.config, "train"),
        split=None,
        iterations=rl.iterations,
        tasks_per_iteration=rl.tasks_per_iteration,
        group_size=rl.group_size,
        reward=rl.reward,
        process_reward=ctx.prm,
        advantage=rl.advantage,
        learning_rate=rl.learning_rate,
        kl_coef=rl.kl_coef,
        replay=synthetic_episodes(rl.replay, seed=ctx.seed) if rl.replay else (),
        replay_coef=rl.replay_coef,
        max_steps=ctx.config.max_steps,
        seed=ctx.seed,
        sandbox=ctx.sandbox,
        progress=ctx.progress,
        protocol=ctx.config.protocol or None,
        lora_r=ctx.config.lora_r,
        device=ctx.config.device or None,
        dtype=ctx.config.dtype,
    )
    metrics = result.metrics
    curve = {
        "mean_reward": [m.mean_reward for m in metrics],
        "solve_rate": [m.solve_rate for m in metrics],
        "kl": [m.kl for m in metrics],
    }
    return {
        "iterations": result.iterations,
        "replay_episodes": rl.replay,
        "first_mean_reward": metrics[0].mean_reward,
        "last_mean_reward": metrics[-1].mean_reward,
        # Each iteration draws its own tasks_per_iteration tasks: the curve is noisy; the check is not.
        "curve": curve,
        **_checked_policy(ctx, str(Path(result.checkpoint).relative_to(Path(result.out_dir).parent))),
    }


def stage_eval(ctx: StageContext) -> dict[str, Any]:
    """6. pass@1 on held-out tasks (hidden tests) of greedy, best-of-N and MCTS with the current policy.

    Greedy plays every evaluation task; best-of-N and MCTS the first ``eval.search_tasks`` (0: all), since
    they cost several times more. Each agent's per-task verdicts are kept (``passed``, in task order), so
    two evaluations of the same tasks compare task by task.
    """
    from codegym.agents import Spend
    from codegym.evaluation import aspr

    tasks = with_generated_tests(ctx, eval_tasks(ctx.config))
    limit = ctx.config.eval.search_tasks or len(tasks)
    groups = {"greedy": (tasks, _greedy_agent), "search": (tasks[:limit], _search_agents)}
    results = {}
    for group, agents_for in groups.values():
        factory = functools.partial(agents_for, ctx.config.eval, ctx.config.seed)
        for name, episodes in solve_in_batches(ctx, group, factory, ctx.config.eval.batch_size).items():
            spend = sum((e.spend for e in episodes), Spend())
            results[name] = {
                "pass@1": sum(e.hidden_all_passed for e in episodes) / len(episodes),
                "tasks": len(episodes),
                "aspr": aspr(episodes),
                "steps_per_task": spend.steps_generated / len(episodes),
                "passed": [int(e.hidden_all_passed) for e in episodes],
            }
    return {"tasks": len(tasks), "policy": ctx.policy, "agents": results}


# -- solving in batches, here or on Ray workers ------------------------------------------------------------


def _search_agent(search: Any, seed: int, policy: Any, prm: Any) -> dict[str, Any]:
    from codegym.agents import MCTSAgent

    agent = MCTSAgent(
        policy,
        prm=prm,
        simulations=search.simulations,
        expansions=search.expansions,
        selection=search.selection,
        evaluation=search.evaluation,
        temperature=search.temperature,
        seed=seed,
    )
    return {"mcts": agent}


def _greedy_agent(config: Any, seed: int, policy: Any, prm: Any) -> dict[str, Any]:
    from codegym.agents import GreedyAgent

    # The same seed before and after, so only the policy changes.
    return {"greedy": GreedyAgent(policy, seed=seed)}


def _search_agents(config: Any, seed: int, policy: Any, prm: Any) -> dict[str, Any]:
    from codegym.agents import BestOfNAgent, MCTSAgent

    return {
        f"best-of-{config.best_of_n}": BestOfNAgent(policy, n=config.best_of_n, seed=seed),
        f"mcts-{config.mcts_simulations}": MCTSAgent(policy, simulations=config.mcts_simulations, seed=seed),
    }


def solve_in_batches(
    ctx: StageContext,
    tasks: list[Task],
    agents_for: Callable[[Any, Any], dict[str, Any]],
    batch_size: int,
    *,
    needs_prm: bool = False,
    env_kind: str = "gym",
) -> dict[str, list]:
    """Each agent's episodes on ``tasks``, solved ``batch_size`` at a time (0: all at once), in this process
    on the run's sandbox or, with ``ray_address`` set, on Ray workers (:func:`codegym.play.play_tasks`);
    the same batches give the same episodes either way."""
    from codegym.play import Players, load_players, play_tasks

    players = Players(
        ctx.policy, policy_options(ctx.config), prm=ctx.prm if needs_prm else None, sandbox=ctx.config.sandbox
    )
    options = {
        "batch_size": batch_size,
        "env_kind": env_kind,
        "env_options": {"max_steps": ctx.config.max_steps},
    }
    if ctx.config.ray_address:
        return play_tasks(tasks, agents_for, players, ray_address=ctx.config.ray_address, **options)
    return play_tasks(tasks, agents_for, load_players(players, sandbox=ctx.sandbox), **options)


STAGES: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "tcg": stage_tcg,
    "search": stage_search,
    "sft": stage_sft,
    "prm": stage_prm,
    "rl": stage_rl,
    "eval": stage_eval,
}
RESUMABLE = {"rl"}
PRM_CHECK_TASKS = 40  # held-out (test-split) tasks whose execution-labelled steps check the PRM  # stages that resume from their own checkpoints inside a half-written folder


def _protocol_name(ctx: StageContext) -> str:
    """The protocol SFT trains in: the configured one, else the one the current policy is prompted with."""
    if ctx.config.protocol:
        return ctx.config.protocol
    from codegym.models.builtin import BUILTIN_MODELS
    from codegym.models.protocol import read_protocol

    if ctx.policy in BUILTIN_MODELS:
        return "think"
    saved = read_protocol(ctx.policy) if Path(ctx.policy).is_dir() else None
    return saved.name if saved is not None else "native"
