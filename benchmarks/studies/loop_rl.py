"""Does the loop's RL stage help the policy, and what keeps it from hurting? RL arms, each started where
the loop's own RL stage started, each checked the way the stage is checked.

What it runs: for each seed and loop iteration of an existing ``benchmarks/studies/loop_iterations.py`` run
(``run_root/seed-S/iter-I``), the policy and PRM the RL stage of that iteration started from (the SFT
stage's output, or its input where the SFT check rolled it back; the same for the PRM), then one
``train_policy_gradient`` run per arm from them, with the stage's seed, tasks and sandbox. Every arm's
policy is checked like the stage's: greedy on the loop's check tasks (``codegym.loop.checks``: held-out
k = 2 compositions, none an evaluation task), hidden tests, against the policy it started from.

An arm is ``stage`` (the run's own ``[rl]`` settings, so it repeats the loop's RL stage) or parts joined by
``+``, each overriding one of those settings:

- ``lrX``: learning rate X (``lr1e-4``); ``itersN``: N iterations; ``tasksN``: N tasks per iteration;
  ``groupN``: N episodes per task; ``klX``: the KL penalty's weight;
- ``replayN``: N reference episodes whose log-likelihood joins each update (``rl.replay``: InstructGPT's
  PPO-ptx); ``coefX``: that term's weight (``rl.replay_coef``);
- ``rewardNAME``: the env's reward scheme (``rewardterminal``: the outcome alone, no PRM term);
- ``nopg``: every reward 0, so every advantage is 0 and only the replay term trains: the control that
  says what the policy gradient adds to the replay;
- ``oracle``: the outcome only when every reasoning step is the task's reference step, else 0: a reward
  the loop cannot have (real tasks have no reference reasoning) that says whether reinforcing wrong
  reasoning whose code passed is what hurts;
- ``noise``: a reward drawn uniformly from [0, 1) on the last step, fixed by the task and the steps: a
  policy gradient with no signal at all, the yardstick for what an update's noise alone does.

What it reports (JSON on stdout and in --out, a bar plot in --plot): per arm and start, the check before
and after, the episodes' solve rate per RL iteration (each iteration draws new tasks: read it as noise
around the policy's rate), the mean log-ratio to the start, seconds; pooled over the starts, the paired
gain on the check with its 95% interval (cluster-robust over (start, function)) and how many starts it
lowered and raised; with ``--in-distribution N``, the same gain on N fresh training-split tasks.

Run it (about 1 to 3 minutes per arm and start on 2 cores; needs the loop_iterations run):
    .venv/bin/python benchmarks/studies/loop_rl.py     # 7 arms from iteration 2 of seeds 0 to 2 (about 40 min)
    .venv/bin/python benchmarks/studies/loop_rl.py --iterations 1,2,3 --arms stage,lr3e-5+iters6+tasks16+replay1000 \
        --out benchmarks/results/loop_rl_starts9.json --plot benchmarks/results/loop_rl_starts9.png
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

from codegym.loop.checks import check_tasks, greedy_verdicts
from codegym.loop.config import LoopConfig, RLConfig, load_config
from codegym.loop.context import StageContext
from codegym.loop.stats import paired_gain
from codegym.loop.task_sets import task_group
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks
from codegym.training.policy_gradient import train_policy_gradient
from codegym.training.policy_sft import synthetic_episodes

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

OVERRIDES = {
    "lr": ("learning_rate", float),
    "iters": ("iterations", int),
    "tasks": ("tasks_per_iteration", int),
    "group": ("group_size", int),
    "kl": ("kl_coef", float),
    "replay": ("replay", int),
    "coef": ("replay_coef", float),
    "reward": ("reward", str),
}


@dataclass
class Args:
    arms: str = (
        "stage,lr1e-4+iters6+tasks16,lr1e-4+iters6+tasks16+rewardterminal,lr1e-4+iters6+tasks16+replay1000,"
        "lr1e-4+iters6+tasks16+rewardterminal+replay1000,lr1e-4+iters6+tasks16+replay1000+nopg,"
        "lr3e-5+iters6+tasks16+replay1000"
    )
    """comma-separated arms: "stage", or parts joined by "+" (lrX, itersN, tasksN, groupN, klX, replayN, coefX, rewardNAME, nopg, oracle, noise)"""
    run_root: str = "runs/loop_iterations"
    """a benchmarks/studies/loop_iterations.py run: its seed-S/iter-I folders supply the starts"""
    seeds: str = "0,1,2"
    """comma-separated loop seeds (run_root/seed-S)"""
    iterations: str = "2"
    """comma-separated loop iterations whose RL stage's start each arm starts from"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    in_distribution: int = 0
    """also check every arm by greedy on this many fresh training-split tasks (the RL stage's own kind, new
    draws): does the policy gradient improve what it trains on? (0: no such check)"""
    out_root: str = "runs/loop_rl"
    """where the arms' RL runs go (resumable: a finished run is not repeated)"""
    out: str = "benchmarks/results/loop_rl.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/loop_rl.png"
    """where to write the plot"""


def parse_arm(arm: str, base: RLConfig) -> tuple[RLConfig, Callable | None]:
    """The arm's RL settings and the reward function that replaces its scheme (``nopg``, ``oracle``, ``noise``)."""
    if arm == "stage":
        return base, None
    settings, custom = base, None
    for part in arm.split("+"):
        if part in REWARD_FUNCTIONS:
            custom = REWARD_FUNCTIONS[part]
            continue
        prefix = next((p for p in OVERRIDES if part.startswith(p) and part[len(p) :]), None)
        if prefix is None:
            raise SystemExit(
                f"unknown part {part!r} in arm {arm!r}; parts: {sorted(OVERRIDES)} + a value, "
                f"{', '.join(REWARD_FUNCTIONS)}"
            )
        field, kind = OVERRIDES[prefix]
        try:
            value = kind(part[len(prefix) :])
        except ValueError:
            raise SystemExit(
                f"part {part!r} of arm {arm!r}: {part[len(prefix) :]!r} is not a {kind.__name__}"
            ) from None
        settings = replace(settings, **{field: value})
    return settings, custom


def no_reward(context, **kwargs) -> float:
    """Every step's reward is 0: every GRPO advantage is 0, so only the replay term trains."""
    return 0.0


def reference_reasoning_reward(context, **kwargs) -> float:
    """The outcome on the last step when every step before the code is the reference's, else 0."""
    if not context.is_last:
        return 0.0
    reasoning = context.steps[:-1] if context.terminated else context.steps
    reference = context.task.reference_steps[:-1]
    same = [step.strip() for step in reasoning] == [step.strip() for step in reference]
    return context.outcome if same else 0.0


def noise_reward(context, **kwargs) -> float:
    """On the last step, a number in [0, 1) hashed from the task and the steps: pure noise, but the
    same for the same episode, so a resumed run sees what it saw."""
    if not context.is_last:
        return 0.0
    digest = hashlib.blake2b("\x00".join((context.task.task_id, *context.steps)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2**64


REWARD_FUNCTIONS: dict[str, Callable] = {
    "nopg": no_reward,
    "oracle": reference_reasoning_reward,
    "noise": noise_reward,
}


def rl_start(seed_dir: Path, iteration: int, config: LoopConfig) -> tuple[str, str]:
    """The policy and PRM the RL stage of ``iteration`` started from: each stage's output unless its check
    rolled it back (then its input), walked from the loop's start."""
    policy, prm = config.policy, config.prm
    for i in range(1, iteration + 1):
        folder = seed_dir / f"iter-{i}"
        stages = (
            {"sft": "3-sft", "prm": "4-prm"}
            if i == iteration
            else {"sft": "3-sft", "prm": "4-prm", "rl": "5-rl"}
        )
        for stage, name in stages.items():
            metrics = json.loads((folder / name / "metrics.json").read_text())
            if "model" in metrics:
                if stage == "prm":
                    prm = str(folder / name / metrics["model"])
                else:
                    policy = str(folder / name / metrics["model"])
    return policy, prm


IN_DISTRIBUTION_SEED = 104_729  # mixed with the loop's seed and iteration: draws apart from the RL stage's


def in_distribution_tasks(config: LoopConfig, seed: int, iteration: int, n: int) -> list:
    """``n`` fresh training-split tasks of the loop's training difficulty (distinct ids; none if ``n`` is 0)."""
    if not n:
        return []
    source = SyntheticTasks("train", min_ops=config.tasks.min_ops, max_ops=config.tasks.max_ops)
    drawn = source.tasks(n, seed=IN_DISTRIBUTION_SEED + 1_000 * seed + iteration)
    return list({task.task_id: task for task in drawn}.values())


def main() -> None:
    args = parse_args(Args, __doc__)
    started = time.perf_counter()
    box = make_sandbox(args.sandbox)
    arms = [arm for arm in args.arms.split(",") if arm]
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    verdicts: dict[str, tuple[list[int], list[int], list[str]]] = {arm: ([], [], []) for arm in arms}
    in_verdicts: dict[str, tuple[list[int], list[int], list[str]]] = {arm: ([], [], []) for arm in arms}
    try:
        for seed in [int(s) for s in args.seeds.split(",")]:
            seed_dir = Path(args.run_root) / f"seed-{seed}"
            if not (seed_dir / "config.toml").exists():
                raise SystemExit(
                    f"{seed_dir} holds no loop run: run benchmarks/studies/loop_iterations.py first"
                )
            config = load_config(seed_dir / "config.toml")
            for iteration in [int(i) for i in args.iterations.split(",")]:
                policy, prm = rl_start(seed_dir, iteration, config)
                ctx = StageContext(
                    config, iteration, seed_dir / f"iter-{iteration}", box, policy, prm, progress=False
                )
                tasks = check_tasks(ctx)
                groups = [f"{seed}/{iteration}/{task_group(task)}" for task in tasks]
                before = greedy_verdicts(ctx, policy, tasks)
                own_kind = in_distribution_tasks(config, seed, iteration, args.in_distribution)
                own_groups = [f"{seed}/{iteration}/{task_group(task)}" for task in own_kind]
                own_before = greedy_verdicts(ctx, policy, own_kind) if own_kind else []
                # What the loop's own RL stage measured from this start: the "stage" arm repeats it.
                loop_check = json.loads((ctx.out / "5-rl" / "metrics.json").read_text()).get("check")
                for arm in arms:
                    settings, custom = parse_arm(arm, config.rl)
                    result = train_policy_gradient(
                        Path(args.out_root) / f"seed-{seed}" / f"iter-{iteration}" / arm,
                        policy=policy,
                        split="train",
                        task_options={"min_ops": config.tasks.min_ops, "max_ops": config.tasks.max_ops},
                        iterations=settings.iterations,
                        tasks_per_iteration=settings.tasks_per_iteration,
                        group_size=settings.group_size,
                        reward=custom or settings.reward,
                        process_reward=prm,
                        advantage=settings.advantage,
                        learning_rate=settings.learning_rate,
                        kl_coef=settings.kl_coef,
                        replay=synthetic_episodes(settings.replay, seed=ctx.seed) if settings.replay else (),
                        replay_coef=settings.replay_coef,
                        max_steps=config.max_steps,
                        seed=ctx.seed,
                        sandbox=box,
                        progress=False,
                    )
                    after = greedy_verdicts(ctx, result.checkpoint, tasks)
                    run = {
                        "seed": seed,
                        "iteration": iteration,
                        "before": sum(before) / len(before),
                        "after": sum(after) / len(after),
                        "solve_rate": [m.solve_rate for m in result.metrics],
                        "kl": [m.kl for m in result.metrics],
                        # The iterations' own times: a resumed (finished) run still reports what it took.
                        "train_seconds": round(sum(m.seconds for m in result.metrics), 1),
                        **({"loop_check": loop_check} if arm == "stage" else {}),
                    }
                    if own_kind:
                        own_after = greedy_verdicts(ctx, result.checkpoint, own_kind)
                        run["in_distribution"] = {
                            "before": sum(own_before) / len(own_before),
                            "after": sum(own_after) / len(own_after),
                        }
                        for kept, new in zip(
                            in_verdicts[arm], (own_before, own_after, own_groups), strict=True
                        ):
                            kept.extend(new)
                    runs[arm].append(run)
                    for kept, new in zip(verdicts[arm], (before, after, groups), strict=True):
                        kept.extend(new)
                    print(
                        f"{arm} seed {seed} iter {iteration}: {json.dumps(run)}", file=sys.stderr, flush=True
                    )
    finally:
        box.close()
    results = {}
    for arm in arms:
        before, after, groups = verdicts[arm]
        results[arm] = {
            "gain": asdict(paired_gain(before, after, groups)),
            "lowered": sum(r["after"] < r["before"] for r in runs[arm]),
            "raised": sum(r["after"] > r["before"] for r in runs[arm]),
            "starts": len(runs[arm]),
            "runs": runs[arm],
        }
        if args.in_distribution:
            results[arm]["in_distribution_gain"] = asdict(paired_gain(*in_verdicts[arm]))
    output = {
        "arms": results,
        "check_tasks_per_start": len(tasks),
        "args": asdict(args),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_json(args.out, output)
    print(json.dumps(output, indent=2))
    plot(output, args)


def plot(output: dict, args: Args) -> None:
    arms = list(output["arms"])
    fig, ax = plt.subplots(figsize=(max(8, 2.2 * len(arms)), 4.5))
    gains = [output["arms"][arm]["gain"] for arm in arms]
    means = [g["mean"] for g in gains]
    errors = [
        [m - g["low"] for m, g in zip(means, gains, strict=True)],
        [g["high"] - m for m, g in zip(means, gains, strict=True)],
    ]
    bars = ax.bar(range(len(arms)), means, yerr=errors, capsize=4, color="C0")
    ax.bar_label(bars, fmt="%+.3f", fontsize=8, padding=3)
    for i, arm in enumerate(arms):  # each start as a dot
        deltas = [r["after"] - r["before"] for r in output["arms"][arm]["runs"]]
        ax.scatter([i] * len(deltas), deltas, color="black", s=10, zorder=3)
    ax.axhline(0.0, color="grey", linewidth=1)
    ax.set_xticks(range(len(arms)), [a.replace("+", "+\n") for a in arms], fontsize=8)
    starts = output["arms"][arms[0]]["starts"]
    ax.set(ylabel="check: greedy solve rate, after - before")
    ax.set_title(
        f"RL stage arms from {starts} starts of the loop ({output['check_tasks_per_start']} check tasks each; "
        "bars: pooled gain, 95% interval; dots: starts)",
        fontsize=10,
    )
    fig.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
