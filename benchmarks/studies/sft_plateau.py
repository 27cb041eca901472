"""The tiny policy fine-tuned to its supervised plateau: the start that RL and the loop's search must beat.

Why: the shipped tiny policy is under-trained (2,000 reference episodes, built in a minute for the demo
and CI), so from it any training on reference episodes raises held-out pass@1, and a gain of RL or of
the search's paths cannot be told apart from "more supervised data". From a policy whose held-out greedy
pass@1 no longer rises with fresh reference episodes, it can.

What it runs: rounds of supervised fine-tuning (``codegym.training.policy_sft.train_policy``), each on
``--episodes-per-round`` reference episodes of fresh training-split synthetic tasks (1 to 3 ops, a new
draw each round, ``--epochs`` passes at ``--learning-rate``, continuing from the last round), starting from
the shipped tiny policy; after each round, greedy pass@1 on the held-out sets of
``benchmarks/studies/rl_diagnose.py`` (``train2``: training compositions of 2 ops, instances never trained
on; ``test2``: compositions never trained on; hidden tests, the local sandbox). It stops after
``--rounds`` rounds, or earlier once ``--patience`` rounds in a row raised neither set by more than
``--min-gain`` (so a plateau is a measured one), and keeps the round with the best train2 score.

What it reports (JSON in --out, a plot in --plot): per round the episodes seen so far, the training
loss, seconds, and each set's pass@1 with its paired gain over the previous round (95% interval,
cluster-robust over the task's composition); the kept round and its folder (``--policy-out``), which
``rl_diagnose.py --policy`` and ``reward_shaping.py --policy`` start from.

Run it (about 3 minutes a round on 2 cores):
    .venv/bin/python benchmarks/studies/sft_plateau.py
    .venv/bin/python benchmarks/studies/sft_plateau.py --rounds 1 --episodes-per-round 200 --eval-tasks 20 \\
        --out /tmp/plateau.json --plot /tmp/plateau.png --policy-out /tmp/plateau-policy
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json
from rl_diagnose import EVAL_SEEDS, greedy  # benchmarks/studies/rl_diagnose.py

from codegym.loop.stats import paired_gain
from codegym.loop.task_sets import draw_tasks, task_group
from codegym.models.tiny import tiny_checkpoint
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks
from codegym.training.policy_sft import synthetic_episodes, train_policy

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

# The shipped tiny policy learnt the reference episodes of synthetic_episodes(2000, seed=0): rounds draw
# their tasks from other seeds, so every round's episodes are new to the policy.
FIRST_DATA_SEED = 1_000


@dataclass
class Args:
    rounds: int = 8
    """the most rounds of fine-tuning"""
    episodes_per_round: int = 4000
    """fresh reference episodes per round"""
    epochs: float = 1.0
    """passes over each round's episodes"""
    learning_rate: float = 3e-4
    """peak learning rate of each round (warm-up, then cosine decay)"""
    patience: int = 2
    """stop after this many rounds in a row that raised neither held-out set by more than --min-gain"""
    min_gain: float = 0.01
    """the rise in pass@1 that counts as progress"""
    eval_tasks: int = 300
    """tasks in each greedy evaluation set"""
    seed: int = 0
    """seeds each round's training (data order, dropout); round r trains with seed + r"""
    rounds_root: str = "runs/sft_plateau"
    """where each round's checkpoint goes"""
    policy_out: str = "runs/sft_plateau/policy"
    """where the kept round's checkpoint is copied"""
    out: str = "benchmarks/results/sft_plateau.json"
    """the JSON"""
    plot: str = "benchmarks/results/sft_plateau.png"
    """the plot ("" for none)"""


def finished_round(out: Path, base: str, number: int, args: Args) -> dict | None:
    """The ``training.json`` of round ``number`` when an earlier run already trained it the same way
    (same base folder, episode count, epochs, learning rate and seed), else None: a killed study resumes.
    """
    record = out / "training.json"
    if not record.is_file():
        return None
    done = json.loads(record.read_text())
    settings = done["settings"]
    same = (
        Path(settings["base"]).name == Path(base).name
        and done["examples"] == args.episodes_per_round
        and settings["epochs"] == args.epochs
        and settings["learning_rate"] == args.learning_rate
        and settings["seed"] == args.seed + number
    )
    return done if same else None


def draw(results: dict, path: str) -> None:
    rounds = results["rounds"]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    seen = [entry["episodes_seen"] for entry in rounds]
    for index, name in enumerate(EVAL_SEEDS):
        y = [entry[name]["pass@1"] for entry in rounds]
        axis.plot(seen, y, marker="o", color=f"C{index}", label=f"held-out {name}")
    kept = results["kept_round"]
    axis.axvline(rounds[kept]["episodes_seen"], color="grey", linestyle=":", label=f"kept (round {kept})")
    axis.set_xlabel("reference episodes learnt (the shipped policy's 2,000, then each round's)")
    axis.set_ylabel("greedy pass@1 (hidden tests)")
    axis.set_title("the tiny policy, fine-tuned round by round on fresh reference episodes")
    axis.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    args = parse_args(Args, __doc__)
    if args.rounds < 1 or args.episodes_per_round < 1 or args.patience < 1 or args.eval_tasks < 1:
        raise SystemExit("--rounds, --episodes-per-round, --patience and --eval-tasks must be >= 1")
    evaluation = {
        name: draw_tasks(SyntheticTasks(split, min_ops=2, max_ops=2), args.eval_tasks, draw_seed)
        for name, (split, draw_seed) in EVAL_SEEDS.items()
    }
    groups = {name: [task_group(task) for task in tasks] for name, tasks in evaluation.items()}
    box = make_sandbox("local")
    rounds: list[dict[str, Any]] = []
    verdicts: list[dict[str, list[int]]] = []
    try:

        def judge(policy: str, entry: dict[str, Any]) -> None:
            mine = {name: greedy(policy, tasks, box) for name, tasks in evaluation.items()}
            for name, now in mine.items():
                entry[name] = {"pass@1": sum(now) / len(now)}
                if verdicts:
                    entry[name]["gain"] = asdict(paired_gain(verdicts[-1][name], now, groups[name]))
            verdicts.append(mine)
            rounds.append(entry)
            print(
                {k: v if not isinstance(v, dict) else round(v["pass@1"], 3) for k, v in entry.items()},
                flush=True,
            )

        shipped = str(tiny_checkpoint("policy"))
        judge(shipped, {"round": 0, "episodes_seen": 2000, "path": "tiny"})
        current, stale = shipped, 0
        for number in range(1, args.rounds + 1):
            out = Path(args.rounds_root) / f"round{number}"
            trained = finished_round(out, current, number, args)
            if trained is None:
                trained = asdict(
                    train_policy(
                        out,
                        base=current,
                        episodes=synthetic_episodes(args.episodes_per_round, seed=FIRST_DATA_SEED + number),
                        epochs=args.epochs,
                        learning_rate=args.learning_rate,
                        seed=args.seed + number,
                        progress=False,
                    )
                )
            current = str(out)
            entry = {
                "round": number,
                "episodes_seen": rounds[-1]["episodes_seen"] + args.episodes_per_round,
                "path": current,
                "loss": trained["final_loss"],
                "train_seconds": round(trained["seconds"], 1),
            }
            judge(current, entry)
            progressed = any(entry[name]["gain"]["mean"] > args.min_gain for name in evaluation)
            stale = 0 if progressed else stale + 1
            if stale >= args.patience:
                break
    finally:
        box.close()
    kept = max(range(len(rounds)), key=lambda index: (rounds[index]["train2"]["pass@1"], -index))
    if kept > 0:
        shutil.rmtree(args.policy_out, ignore_errors=True)
        shutil.copytree(rounds[kept]["path"], args.policy_out)
    results = {
        "rounds": rounds,
        "kept_round": kept,
        "policy_out": args.policy_out if kept > 0 else "tiny",
        "args": asdict(args),
        "machine": machine(),
    }
    write_json(args.out, results)
    if args.plot:
        draw(results, args.plot)
    print(f"kept round {kept}: {results['policy_out']}")


if __name__ == "__main__":
    main()
