"""Does O1-Coder's loop improve the tiny policy? Several iterations, several seeds, every stage measured.

What it runs: ``codegym loop`` with the demo's configuration (``codegym.loop.demo.DEMO_SETTINGS``: k = 2
training tasks, the tiny policy and PRM) for ``iterations`` iterations, once per seed, each seed in its own
run directory under ``run_root`` (resumable: run the script again and finished stages are skipped). Then
each iteration's policy is evaluated on an in-distribution set too: tasks of the training tasks' split and
ops (training-split k = 2 by default) that no iteration of that seed trained on. With ``--train-split test
--train-ops 3`` the search works on held-out compositions of 3 ops, which no reference episode covers,
and the evaluation's k = 2 compositions stay unseen by every stage.

What it reports (JSON on stdout and in --out, a four-panel plot in --plot):

- pass@1 (hidden tests) of greedy, best-of-N and MCTS before the loop and after each iteration, on
  ``eval_tasks`` held-out k = 2 tasks (greedy on all of them, best-of-N and MCTS on the first
  ``search_tasks``) and on the in-distribution set, each with a 95% interval (normal, cluster-robust
  over the tasks' functions: the same function recurs with other examples);
- the gain of each iteration over the start, paired by task, per seed and pooled over seeds, with 95%
  intervals (``codegym.loop.stats.paired_gain``), and the seeds' mean and spread;
- ASPR of every agent; the PRM's held-out step AUC per iteration (the one the loop trained, the one it
  started from, and the one it kept); the RL stage's reward curve and its check; seconds per stage;
  which stages were rolled back by their checks;
- the issue's targets, each as measured: met or not.

The JSON is written after each seed, over the seeds done so far (``seeds_done``): a run that fails
in a later seed keeps the earlier ones, and each seed's loop resumes from its folder under --run-root.

Run it (the full configuration takes hours on 2 cores; the smaller ones say what they ran):
    .venv/bin/python benchmarks/studies/loop_iterations.py
    .venv/bin/python benchmarks/studies/loop_iterations.py --seeds 0 --iterations 2 --eval-tasks 300 --search-tasks 100
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

import codegym  # noqa: F401  (registers CodeReason-v0)
from codegym.agents import BestOfNAgent, GreedyAgent, MCTSAgent
from codegym.evaluation import aspr
from codegym.loop import run_loop
from codegym.loop.config import from_dict
from codegym.loop.context import iteration_seed
from codegym.loop.demo import DEMO_SETTINGS
from codegym.loop.stats import paired_gain, pass_rate
from codegym.loop.task_sets import eval_groups, task_group, task_source, training_tasks
from codegym.models import load_policy
from codegym.options import parse_args
from codegym.sandbox import make_sandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    seeds: str = "0,1,2"
    """comma-separated loop seeds"""
    iterations: int = 3
    """loop iterations per seed"""
    policy: str = "tiny"
    """the policy the loop starts from: "tiny" (the shipped one) or a checkpoint folder, e.g.
    sft_plateau.py's runs/sft_plateau/policy (the start at which the search's paths must beat the replay)"""
    eval_tasks: int = 300
    """held-out k = 2 tasks for the loop's evaluation (greedy plays all of them)"""
    search_tasks: int = 0
    """the first this many evaluation tasks also go to best-of-N and MCTS (0: all of them; the evaluation
    before the loop then takes about 3 minutes on 2 quiet cores, against 47 to 88 s with 100)"""
    indist_tasks: int = 100
    """in-distribution tasks (the training tasks' split and ops, never trained on) per evaluation; 0 skips them"""
    indist_search_tasks: int = 50
    """the first this many in-distribution tasks also go to best-of-N and MCTS"""
    train_tasks: int = 128
    """training tasks searched per iteration"""
    train_split: str = "train"
    """split of the training tasks: "train", or "test" (held-out compositions no reference episode covers;
    needs --train-ops other than 2)"""
    train_ops: int = 2
    """ops composed in a training task"""
    rl_iterations: int = 3
    """policy-gradient iterations per loop iteration"""
    solved_paths: bool = True
    """SFT trains on the search's solved paths (--no-solved-paths: on the replayed reference episodes
    alone, the control that says what the policy's own paths add)"""
    sft_from_start: bool = False
    """each SFT stage fine-tunes --policy afresh, not the current policy (the loop's sft.from_start)"""
    sft_accumulate: bool = False
    """each SFT stage trains on the solved paths of every iteration so far (the loop's sft.accumulate)"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    run_root: str = "runs/loop_iterations"
    """one run directory per seed under this folder (resumed when run again)"""
    out: str = "benchmarks/results/loop_iterations.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/loop_iterations.png"
    """where to write the plot"""


def main() -> None:
    args = parse_args(Args, __doc__)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    started = time.perf_counter()
    per_seed = {}
    for seed in seeds:
        config = loop_config(args, seed)
        run_dir = Path(args.run_root) / f"seed-{seed}"
        result = run_loop(config, run_dir, progress=False)
        per_seed[str(seed)] = seed_report(args, config, run_dir, result.summary)
        # After every seed, over the seeds done so far ("seeds_done"): a failure later keeps them.
        results = {
            "per_seed": per_seed,
            "seeds_done": len(per_seed),
            "pooled": pooled(per_seed, args.iterations),
            "args": asdict(args),
            "seconds": round(time.perf_counter() - started, 1),
            "machine": machine(),
        }
        results["targets"] = targets(results, args.iterations)
        write_json(args.out, results)
    printed = {
        **results,
        "per_seed": {
            s: {k: v for k, v in r.items() if k not in ("verdicts", "groups")} for s, r in per_seed.items()
        },
    }
    print(json.dumps(printed, indent=2))
    plot(results, args)


def loop_config(args: Args, seed: int):
    settings = json.loads(json.dumps(DEMO_SETTINGS))  # a deep copy
    settings["iterations"] = args.iterations
    settings["policy"] = args.policy
    settings["tasks"].update(
        train_tasks=args.train_tasks,
        eval_tasks=args.eval_tasks,
        train_split=args.train_split,
        min_ops=args.train_ops,
        max_ops=args.train_ops,
    )
    settings["eval"]["search_tasks"] = args.search_tasks
    settings["rl"]["iterations"] = args.rl_iterations
    settings.setdefault("sft", {}).update(
        solved_paths=args.solved_paths, from_start=args.sft_from_start, accumulate=args.sft_accumulate
    )
    return from_dict({**settings, "seed": seed, "sandbox": args.sandbox})


def seed_report(args: Args, config, run_dir: Path, summary: dict) -> dict:
    stages = summary["stages"]
    evals = {i: stages[f"iter-{i}/6-eval"] for i in range(args.iterations + 1)}
    report: dict = {"held_out": {}, "in_distribution": {}, "gain": {}, "indist_gain": {}, "aspr": {}}
    # Per-task verdicts and functions (codegym.loop.stats: intervals count functions, not tasks), for
    # pooling seeds pair by pair (left out of the printed JSON).
    groups = eval_groups(config)
    report["verdicts"] = {
        "held_out": {str(i): {name: r["passed"] for name, r in m["agents"].items()} for i, m in evals.items()}
    }
    report["groups"] = {"held_out": groups}
    for i, metrics in evals.items():
        report["held_out"][str(i)] = {
            name: pass_rate(r["passed"], groups[: len(r["passed"])]) for name, r in metrics["agents"].items()
        }
        report["aspr"][str(i)] = {name: r["aspr"] for name, r in metrics["agents"].items()}
        if i:
            report["gain"][str(i)] = {
                name: asdict(
                    paired_gain(evals[0]["agents"][name]["passed"], r["passed"], groups[: len(r["passed"])])
                )
                for name, r in metrics["agents"].items()
            }
    if args.indist_tasks:
        indist, indist_groups = in_distribution(
            args, config, run_dir, {i: m["policy"] for i, m in evals.items()}
        )
        report["verdicts"]["in_distribution"] = indist
        report["groups"]["in_distribution"] = indist_groups
        for i, by_agent in indist.items():
            report["in_distribution"][i] = {
                name: pass_rate(passed, indist_groups[: len(passed)]) for name, passed in by_agent.items()
            }
            if i != "0":
                report["indist_gain"][i] = {
                    name: asdict(paired_gain(indist["0"][name], passed, indist_groups[: len(passed)]))
                    for name, passed in by_agent.items()
                }
    report["prm"] = {}
    for i in range(1, args.iterations + 1):
        check = stages[f"iter-{i}/4-prm"]["check"]
        report["prm"][str(i)] = {
            "starting_auc": check["before"],  # the PRM this iteration started from
            "trained_auc": check["after"],
            "kept_auc": check["before"] if check["rolled_back"] else check["after"],
            "rolled_back": check["rolled_back"],
        }
    report["rl"] = {
        str(i): {
            "curve": stages[f"iter-{i}/5-rl"].get("curve"),
            "check": stages[f"iter-{i}/5-rl"].get("check"),
        }
        for i in range(1, args.iterations + 1)
    }
    report["sft_check"] = {
        str(i): stages[f"iter-{i}/3-sft"].get("check") for i in range(1, args.iterations + 1)
    }
    report["search"] = {
        str(i): {key: stages[f"iter-{i}/2-search"][key] for key in ("solved_visible", "solved_paths")}
        for i in range(1, args.iterations + 1)
    }
    report["seconds_per_stage"] = {label: metrics.get("seconds") for label, metrics in stages.items()}
    report["rolled_back"] = summary["rolled_back"]
    return report


def in_distribution(
    args: Args, config, run_dir: Path, policies: dict[int, str]
) -> tuple[dict[str, dict], list[str]]:
    """Each iteration's policy on tasks of the training tasks' split and ops that no iteration of the run trained on
    (cached in the run directory: a rerun does not replay them), and the tasks' functions."""
    cache = run_dir / "in_distribution.json"
    done = json.loads(cache.read_text()) if cache.exists() else {}
    trained = {
        task.task_id
        for i in range(1, config.iterations + 1)
        for task in training_tasks(config, iteration_seed(config.seed, i))
    }
    source = task_source(config, "train")
    candidates = source.tasks(4 * args.indist_tasks, seed=10_000 + config.seed)
    tasks = list({t.task_id: t for t in candidates if t.task_id not in trained}.values())[: args.indist_tasks]
    with make_sandbox(args.sandbox) as box:
        for i, spec in policies.items():
            key = f"{i}:{spec}:{len(tasks)}:{args.indist_search_tasks}"
            if key in done:
                continue
            policy = load_policy(spec)
            agents = {
                "greedy": (GreedyAgent(policy, seed=config.seed), tasks),
                f"best-of-{config.eval.best_of_n}": (
                    BestOfNAgent(policy, n=config.eval.best_of_n, seed=config.seed),
                    tasks[: args.indist_search_tasks],
                ),
                f"mcts-{config.eval.mcts_simulations}": (
                    MCTSAgent(policy, simulations=config.eval.mcts_simulations, seed=config.seed),
                    tasks[: args.indist_search_tasks],
                ),
            }
            passed = {}
            for name, (agent, group) in agents.items():
                env = gym.make("CodeReason-v0", tasks=group, sandbox=box, max_steps=config.max_steps)
                episodes = agent.solve_many(env, [t.task_id for t in group])
                env.close()
                passed[name] = [int(e.hidden_all_passed) for e in episodes]
                passed[f"{name}:aspr"] = aspr(episodes)
            done[key] = passed
            cache.write_text(json.dumps(done))
    out = {}
    for i, spec in policies.items():
        entry = done[f"{i}:{spec}:{len(tasks)}:{args.indist_search_tasks}"]
        out[str(i)] = {name: value for name, value in entry.items() if not name.endswith(":aspr")}
    return out, [task_group(task) for task in tasks]


def pooled(per_seed: dict, iterations: int) -> dict:
    """Each iteration's gain over the start, pooled over seeds (paired by task), and the seeds' spread."""
    out: dict = {}
    for split in ("gain", "indist_gain"):
        out[split] = {}
        for i in range(1, iterations + 1):
            key = str(i)
            agents = per_seed[next(iter(per_seed))][split].get(key, {})
            out[split][key] = {}
            for name in agents:
                means = [report[split][key][name]["mean"] for report in per_seed.values()]
                before, after, groups = [], [], []
                for report in per_seed.values():  # each seed's tasks are its own pairs
                    which = "held_out" if split == "gain" else "in_distribution"
                    verdicts = report["verdicts"][which]
                    before += verdicts["0"][name]
                    after += verdicts[key][name]
                    # One function in several seeds is one group: its copies are solved alike.
                    groups += report["groups"][which][: len(verdicts[key][name])]
                entry = {
                    "mean_over_seeds": sum(means) / len(means),
                    "seeds_std": _std(means),
                    "per_seed": means,
                }
                if before and len(before) == len(after):
                    entry["pooled"] = asdict(paired_gain(before, after, groups))
                out[split][key][name] = entry
    return out


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def targets(results: dict, iterations: int) -> dict:
    per_seed, pooled_gain = results["per_seed"], results["pooled"]["gain"]
    last = str(iterations)
    greedy = pooled_gain[last]["greedy"]
    mcts = next(name for name in pooled_gain[last] if name.startswith("mcts"))
    mcts_never_lower = all(
        report["held_out"][str(i)][mcts]["pass@1"] >= report["held_out"][str(i - 1)][mcts]["pass@1"]
        for report in per_seed.values()
        for i in range(1, iterations + 1)
    )
    prm = [entry for report in per_seed.values() for entry in report["prm"].values()]
    rl = [entry["check"] for report in per_seed.values() for entry in report["rl"].values() if entry["check"]]
    pooled = greedy.get("pooled", {})
    return {
        "greedy_gain_at_least_0.10": {
            "mean_over_seeds": greedy["mean_over_seeds"],
            "pooled_interval": [pooled.get("low"), pooled.get("high")],
            "met": greedy["mean_over_seeds"] >= 0.10 and pooled.get("low", -1) > 0,
        },
        "mcts_never_lower_after_an_iteration": {"met": mcts_never_lower},
        # As trained, and as kept (a PRM or RL stage that got worse is rolled back by its check).
        "prm_at_least_as_good_as_start": {
            "met_as_trained": all(e["trained_auc"] >= e["starting_auc"] for e in prm),
            "met_as_kept": all(e["kept_auc"] >= e["starting_auc"] for e in prm),
        },
        "rl_does_not_lower_its_check": {
            "before_after": [[c["before"], c["after"]] for c in rl],
            "met_as_trained": all(c["after"] >= c["before"] for c in rl),
            "met_as_kept": all(c["after"] >= c["before"] or c["rolled_back"] for c in rl),
        },
    }


def plot(results: dict, args: Args) -> None:
    per_seed = results["per_seed"]
    iterations = list(range(args.iterations + 1))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, split, title in (
        (axes[0][0], "held_out", f"held-out k=2 (greedy {args.eval_tasks} tasks)"),
        (
            axes[0][1],
            "in_distribution",
            f"{args.train_split}-split k={args.train_ops}, not trained on (greedy {args.indist_tasks} tasks)",
        ),
    ):
        first = next(iter(per_seed.values()))[split]
        if not first:
            ax.set_visible(False)
            continue
        for name in first["0"]:
            values = [
                [report[split][str(i)][name]["pass@1"] for i in iterations] for report in per_seed.values()
            ]
            means = [sum(column) / len(column) for column in zip(*values, strict=True)]
            spread = [_std(list(column)) for column in zip(*values, strict=True)]
            ax.errorbar(iterations, means, yerr=spread, marker="o", capsize=3, label=name)
        ax.set(xlabel="loop iteration (0 = before)", ylabel="pass@1, mean over seeds (bars: seeds' std)")
        ax.set_xticks(iterations)
        ax.set_title(title)
        ax.legend()
    ax = axes[1][0]
    for index, (seed, report) in enumerate(per_seed.items()):
        trained = [report["prm"][str(i)]["trained_auc"] for i in iterations[1:]]
        kept = [report["prm"][str(i)]["kept_auc"] for i in iterations[1:]]
        color = f"C{index}"  # one colour per seed for both of its lines
        ax.plot(
            iterations[1:], trained, marker="x", linestyle=":", color=color, label=f"seed {seed}: trained"
        )
        ax.plot(iterations[1:], kept, marker="o", color=color, label=f"seed {seed}: kept")
        starting = [report["prm"][str(i)]["starting_auc"] for i in iterations[1:]]
        ax.scatter(iterations[1:], starting, color="grey", marker="_", s=200, zorder=3)
    # Each iteration draws its own held-out steps, so the same PRM scores differently from one to the next.
    ax.set(xlabel="loop iteration", ylabel="held-out step AUC (grey: the PRM it started from)")
    ax.set_xticks(iterations[1:])
    ax.legend(fontsize=7)
    ax = axes[1][1]
    for seed, report in per_seed.items():
        curve = [
            value
            for i in iterations[1:]
            for value in (report["rl"][str(i)]["curve"] or {}).get("mean_reward", [])
        ]
        ax.plot(range(len(curve)), curve, marker=".", label=f"seed {seed}")
    ax.set(xlabel="policy-gradient iteration (all loop iterations in a row)", ylabel="mean episode reward")
    ax.set_title("RL stage (each point: its own 8 tasks x 4 episodes)")
    ax.legend()
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
