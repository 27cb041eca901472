"""What does the loop's SFT stage learn from: the policy's own solved paths, or the replayed reference
episodes? One search, several training sets, each fine-tuned from the same starting policy.

What it runs: with ``start_episodes`` > 0, first the starting policy: the shipped tiny policy fine-tuned on
that many reference episodes (a policy near its supervised plateau; ``start_episodes = 0`` starts from the
shipped policy itself). Then the loop's first search with that policy (``codegym loop --until 1/search``
with the demo's configuration and ``train_tasks`` k = 2 training tasks; skipped when ``run_dir`` already
has it), then one SFT per arm and training seed, from the starting policy, with the given learning rate
and epochs:

- ``start``: no training (the shipped policy);
- ``replay``: ``replay`` reference episodes of fresh training-split tasks only;
- ``paths``: the search's solved paths only;
- ``paths+replay``: both;
- ``correct_paths+replay``: only the solved paths whose outline is the reference's, with the replay: an
  oracle filter (the loop cannot use it) that says what the paths would be worth if their reasoning
  were right;
- ``prm_paths``: the solved paths the starting PRM rates in its top half (their lowest reasoning-step
  score), alone: a filter the loop could use;
- ``heldout_half_paths``: the solved paths of a second search, on ``train_tasks`` test-split k = 2 tasks
  (never evaluation tasks) whose compositions, by op names, fall in one half (a hash); paid by their
  hidden tests. These are problems of the held-out kind with no reference reasoning anywhere, O1-Coder's
  own setting. Every arm's held-out figures are also split into the tasks of that half ("searched half")
  and of the other ("other half"), so this arm shows whether what the loop learns from such problems
  reaches compositions it never searched.
- ``heldout_half_paths+replay``: those paths with the replay, which keeps up what the policy knew.

Each model plays greedy episodes on ``eval_tasks`` held-out k = 2 tasks (test-split compositions, the
loop's evaluation tasks and more) and on ``indist_tasks`` in-distribution ones (training-split k = 2
tasks the search did not see); hidden tests judge, and the 95% intervals count functions, not tasks
(``codegym.loop.stats``). It also reports how many solved paths have the reference's outline and
refinement, and how often the trees' hard labels call a wrong outline good.

Output: JSON (stdout and --out) and a bar plot (--plot).

Run it (about 2 minutes per arm and seed on 2 cores at the defaults, and 3 for each search):
    .venv/bin/python benchmarks/studies/loop_sft_data.py
    .venv/bin/python benchmarks/studies/loop_sft_data.py --learning-rate 1e-4 --epochs 1 --replay 256   # the old SFT
    .venv/bin/python benchmarks/studies/loop_sft_data.py --arms start,replay,paths --start-episodes 4000 \
        --run-dir runs/loop_sft_data_plateau --out benchmarks/results/loop_sft_data_plateau.json \
        --plot benchmarks/results/loop_sft_data_plateau.png   # from a policy near its plateau
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
from datasets import load_from_disk

from codegym.agents import MCTSAgent, rollout, solved_paths
from codegym.env import CodeReasonEnv
from codegym.loop import run_loop
from codegym.loop.config import SFTConfig, from_dict
from codegym.loop.context import iteration_seed
from codegym.loop.demo import DEMO_SETTINGS
from codegym.loop.stats import pass_rate
from codegym.loop.task_sets import eval_tasks, task_group
from codegym.models import load_policy, load_prm
from codegym.models.tiny import tiny_checkpoint
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks
from codegym.training.policy_sft import synthetic_episodes, train_policy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

ARMS = (
    "start",
    "replay",
    "paths",
    "paths+replay",
    "correct_paths+replay",
    "prm_paths",
    "heldout_half_paths",
    "heldout_half_paths+replay",
)
START_SEED = 20_000  # the starting policy's reference episodes: other tasks than the replay's


@dataclass
class Args:
    arms: str = ",".join(ARMS)
    """comma-separated arms to train and evaluate"""
    train_tasks: int = 512
    """k = 2 training tasks the search runs on"""
    replay: int = 1000
    """reference episodes in the replay arms"""
    learning_rate: float = 3e-4
    """SFT's peak learning rate"""
    epochs: float = 3.0
    """SFT's passes over its data"""
    train_seeds: str = "0"
    """comma-separated training seeds (data order, dropout) per arm"""
    eval_tasks: int = 1000
    """held-out k = 2 tasks greedy plays"""
    indist_tasks: int = 600
    """in-distribution k = 2 tasks (training split, not searched) greedy plays; 0 skips them"""
    start_episodes: int = 0
    """reference episodes the starting policy is fine-tuned on first (0: the shipped tiny policy)"""
    seed: int = 0
    """the loop's seed: the search's tasks and the evaluation's"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    run_dir: str = "runs/loop_sft_data"
    """the loop run whose first search supplies the paths (made if missing), and the trained models"""
    out: str = "benchmarks/results/loop_sft_data.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/loop_sft_data.png"
    """where to write the plot"""


def main() -> None:
    args = parse_args(Args, __doc__)
    arms = [arm for arm in args.arms.split(",") if arm]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {list(ARMS)}")
    started = time.perf_counter()
    run_dir = Path(args.run_dir)
    start = starting_policy(args, run_dir)
    settings = json.loads(json.dumps(DEMO_SETTINGS))  # a deep copy
    settings["tasks"].update(train_tasks=args.train_tasks, eval_tasks=args.eval_tasks)
    policy = start if args.start_episodes else "tiny"  # "tiny": the run directories made before this option
    config = from_dict({**settings, "seed": args.seed, "sandbox": args.sandbox, "policy": policy})
    run_loop(config, run_dir, progress=False, until=(1, "search"))
    search = run_dir / "iter-1" / "2-search"
    paths = [json.loads(line) for line in (search / "solved_paths.jsonl").read_text().splitlines()]
    source = SyntheticTasks("train")
    searched = [source.get(tree["task_id"]) for tree in json.loads((search / "trees.json").read_text())]
    references = {task.problem: task.reference_steps for task in searched}
    searched_ids = {task.task_id for task in searched}
    quality = {
        **path_quality(paths, references),
        **outline_labels(load_from_disk(str(search / "trees")), {t.task_id: t for t in searched}),
    }
    correct = [row for row in paths if same_step(row["steps"], references[row["problem"]], 0)]
    held_out = eval_tasks(config)
    groups = [task_group(task) for task in held_out]
    halves = {"searched_half": [], "other_half": []}
    for index, task in enumerate(held_out):
        halves["searched_half" if composition_half(task) == 0 else "other_half"].append(index)
    candidates = SyntheticTasks("train", min_ops=2, max_ops=2).tasks(
        3 * args.indist_tasks, seed=10_000 + args.seed
    )
    indist = [t for t in {t.task_id: t for t in candidates if t.task_id not in searched_ids}.values()]
    indist = indist[: args.indist_tasks]
    replay = synthetic_episodes(args.replay, seed=iteration_seed(args.seed, 1))
    own = [(row["problem"], row["steps"]) for row in paths]
    right = [(row["problem"], row["steps"]) for row in correct]
    data = {
        "replay": lambda: replay,
        "paths": lambda: own,
        "paths+replay": lambda: own + replay,
        "correct_paths+replay": lambda: right + replay,
        "prm_paths": lambda: prm_top_half(paths),
        "heldout_half_paths": lambda: heldout_half_paths(args, config, start, run_dir),
        "heldout_half_paths+replay": lambda: heldout_half_paths(args, config, start, run_dir) + replay,
    }
    results: dict = {}
    with make_sandbox(args.sandbox) as box:

        def score(spec: str, tasks: list) -> list[int]:
            episodes = rollout(
                load_policy(spec), tasks, max_steps=config.max_steps, sandbox=box, seed=args.seed
            )
            return [int(e.hidden_all_passed) for e in episodes]

        for arm in arms:
            seeds = [0] if arm == "start" else [int(s) for s in args.train_seeds.split(",")]
            episodes = [] if arm == "start" else data[arm]()
            runs = []
            for train_seed in seeds:
                t0 = time.perf_counter()
                if arm == "start":
                    spec = start
                else:
                    spec = str(run_dir / "sft" / f"{arm}-seed{train_seed}")
                    train_policy(
                        spec,
                        base=start,
                        episodes=episodes,
                        epochs=args.epochs,
                        learning_rate=args.learning_rate,
                        batch_size=config.sft.batch_size,
                        seed=train_seed,
                        progress=False,
                    )
                passed = score(spec, held_out)
                run = {"train_seed": train_seed, "held_out": pass_rate(passed, groups)}
                for half, indices in halves.items():
                    run[half] = pass_rate([passed[i] for i in indices], [groups[i] for i in indices])
                if indist:
                    run["in_distribution"] = pass_rate(score(spec, indist), [task_group(t) for t in indist])
                run["seconds"] = round(time.perf_counter() - t0, 1)
                runs.append(run)
                print(f"{arm} seed {train_seed}: {json.dumps(run)}", file=sys.stderr, flush=True)
            results[arm] = {"episodes": len(episodes), "runs": runs}
    output = {
        "start": {"policy": start, "reference_episodes": args.start_episodes},
        "search": {"tasks": args.train_tasks, "solved_paths": len(paths), **quality},
        "arms": results,
        "args": asdict(args),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_json(args.out, output)
    print(json.dumps(output, indent=2))
    plot(output, args)


def starting_policy(args: Args, run_dir: Path) -> str:
    """The shipped tiny policy, or it fine-tuned on ``start_episodes`` reference episodes (made once)."""
    shipped = str(tiny_checkpoint("policy"))
    if not args.start_episodes:
        return shipped
    out = run_dir / f"start-{args.start_episodes}"
    if not (out / "config.json").is_file():
        print(f"fine-tuning the starting policy on {args.start_episodes} reference episodes", file=sys.stderr)
        train_policy(
            out,
            base=shipped,
            episodes=synthetic_episodes(args.start_episodes, seed=START_SEED + args.seed),
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            batch_size=SFTConfig.batch_size,  # the arms' batch size: the loop's default
            seed=args.seed,
            progress=False,
        )
    return str(out)


def composition_half(task) -> int:
    """0 or 1, from a hash of the task's op names (parameters ignored): the same in every run."""
    names = ">".join(task.metadata["ops"]).encode()
    return hashlib.blake2b(names, digest_size=1, person=b"loop_sft_data").digest()[0] % 2


def prm_top_half(paths: list[dict]) -> list[tuple[str, list[str]]]:
    """The solved paths whose lowest reasoning-step score under the shipped PRM is at or above the median."""
    prm = load_prm(str(tiny_checkpoint("prm")))
    scores = prm.score_batch([(row["problem"], row["steps"]) for row in paths])
    lowest = [min(step_scores[:-1] or step_scores) for step_scores in scores]
    median = sorted(lowest)[len(lowest) // 2]
    return [(row["problem"], row["steps"]) for row, low in zip(paths, lowest, strict=True) if low >= median]


def heldout_half_paths(args: Args, config, start: str, run_dir: Path) -> list[tuple[str, list[str]]]:
    """MCTS (the search's settings) on test-split k = 2 tasks of the searched half, none an evaluation
    task, paid by their hidden tests; the distinct solved paths (cached in ``run_dir``)."""
    cache = run_dir / "heldout_half_paths.jsonl"
    if not cache.exists():
        evaluated = {task.task_id for task in eval_tasks(config)}
        source = SyntheticTasks("test", min_ops=2, max_ops=2)
        tasks: dict[str, object] = {}
        for task in source.tasks(8 * args.train_tasks, seed=30_000 + args.seed):
            if task.task_id not in evaluated and composition_half(task) == 0:
                tasks.setdefault(task.task_id, task)
        chosen = list(tasks.values())[: args.train_tasks]
        search = config.search
        agent = MCTSAgent(
            load_policy(start),
            simulations=search.simulations,
            expansions=search.expansions,
            temperature=search.temperature,
            seed=args.seed,
        )
        with make_sandbox(args.sandbox) as box:
            env = CodeReasonEnv(tasks=chosen, sandbox=box, max_steps=config.max_steps)
            episodes = agent.solve_many(env, [task.task_id for task in chosen])
            env.close()
        found = solved_paths([episode.tree for episode in episodes])
        cache.write_text("".join(json.dumps({"problem": p, "steps": list(s)}) + "\n" for p, s in found))
        print(
            f"held-out half: {len(chosen)} tasks searched, {len(found)} solved paths",
            file=sys.stderr,
            flush=True,
        )
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    return [(row["problem"], row["steps"]) for row in rows]


def outline_labels(trees, tasks: dict) -> dict:
    """How the trees' hard labels (a path through the step passed) judge first steps (outlines): the share
    of outlines labelled good, and of those, how many are not the reference's."""
    good = wrong_good = 0
    outlines = [row for row in trees if row["depth"] == 1]
    for row in outlines:
        if row["hard_label"] > 0.5:
            good += 1
            wrong_good += row["step"].strip() != tasks[row["task_id"]].reference_steps[0].strip()
    return {
        "outline_nodes": len(outlines),
        "outlines_labelled_good": good / max(1, len(outlines)),
        "good_labelled_outlines_not_the_reference": wrong_good / max(1, good),
    }


def same_step(steps: list[str], reference: tuple[str, ...], index: int) -> bool:
    return len(steps) > index and steps[index].strip() == reference[index].strip()


def path_quality(paths: list[dict], references: dict[str, tuple[str, ...]]) -> dict:
    """The share of solved paths whose outline (and refinement) is the reference's, word for word."""
    n = len(paths) or 1
    return {
        "outline_is_reference": sum(same_step(r["steps"], references[r["problem"]], 0) for r in paths) / n,
        "refine_is_reference": sum(same_step(r["steps"], references[r["problem"]], 1) for r in paths) / n,
    }


def plot(output: dict, args: Args) -> None:
    arms = list(output["arms"])
    splits = [
        s
        for s in ("held_out", "searched_half", "other_half", "in_distribution")
        if s in output["arms"][arms[0]]["runs"][0]
    ]
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(arms)), 4.5))
    width = 0.8 / len(splits)
    for offset, split in enumerate(splits):
        means = []
        for arm in arms:
            runs = output["arms"][arm]["runs"]
            means.append(sum(r[split]["pass@1"] for r in runs) / len(runs))
        bars = ax.bar(
            [i + offset * width for i in range(len(arms))], means, width, label=split.replace("_", " ")
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([i + width * (len(splits) - 1) / 2 for i in range(len(arms))], arms, fontsize=8)
    ax.set(ylabel="greedy pass@1, k = 2 (hidden tests)", ylim=(0, 1))
    start = "the shipped tiny policy"
    if args.start_episodes:
        start += f" + {args.start_episodes} reference episodes"
    ax.set_title(f"SFT from {start}: lr {args.learning_rate}, {args.epochs} epochs", fontsize=10)
    ax.legend()
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
