"""PRM step-level AUC: how well the tiny process reward model tells good from bad steps on held-out tasks.

What it measures: step labels made by execution (``synthetic_step_labels``: each reference step of a
synthetic task and corrupted siblings, one op replaced, dropped, swapped or inserted, completed and run
on the hidden tests) for ``train_tasks`` training-split tasks and ``eval_tasks`` test-split tasks, whose
compositions never occur in training. The tiny PRM is trained on the first set in each mode, side by
side in one run: point-wise with hard labels, point-wise with soft labels, pair-wise Bradley-Terry on
sibling steps (all with the default likelihood head), and point-wise with the "+"/"-" tag head. Each then
scores every held-out step; the figure is the ROC AUC of those scores against the hard labels (0.5 is
chance), overall and per step kind. The first row is the base model before any PRM training (for the
likelihood head: the policy's own mean log-probability of the step). Output: a JSON object on stdout
(also written to --out) and a bar chart (--plot).

The base is ``--base tiny``: the trained tiny policy when its checkpoint exists, else an untrained tiny
model (the JSON says which); the likelihood head needs the trained policy to start from something.

Run it:
    .venv/bin/python benchmarks/studies/prm_auc.py
    .venv/bin/python benchmarks/studies/prm_auc.py --train-tasks 100 --eval-tasks 50 --modes pointwise-hard
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch

from codegym.models.hf_prm import load_prm
from codegym.models.prm_data import label_balance, synthetic_step_labels
from codegym.models.prm_eval import evaluate_prm
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.training.prm import prepare_prm, train_prm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    train_tasks: int = 300
    """training-split synthetic tasks whose steps are labelled for training"""
    eval_tasks: int = 200
    """test-split (held-out compositions) synthetic tasks whose steps measure the AUC"""
    modes: str = "pointwise-hard,pointwise-soft,pairwise-hard,pointwise-hard-lm"
    """comma-separated objective-labels[-head] modes to train and compare (head defaults to --head)"""
    base: str = "tiny"
    """the model the PRM starts from: tiny (the trained tiny policy when present), a path or a hub id"""
    head: str = "likelihood"
    """the PRM head: likelihood, lm ("+"/"-" after each tag) or classifier (two-class token head)"""
    epochs: int = 1
    """passes over the training examples"""
    batch_size: int = 16
    """sequences (point-wise) or pairs (pair-wise) per update"""
    learning_rate: float = 3e-4
    """AdamW's peak learning rate"""
    seed: int = 0
    """seeds the labels (eval uses seed + 1), the model's new parameters and the training order"""
    threads: int = 1
    """torch CPU threads"""
    sandbox: str = "local"
    """sandbox that runs the completed code for the labels: local, docker or auto"""
    out: str = "benchmarks/results/prm_auc.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/prm_auc.png"
    """where to write the bar chart"""


def main() -> None:
    args = parse_args(Args, __doc__)
    torch.set_num_threads(args.threads)
    modes = [(*mode.strip().split("-"), args.head)[:3] for mode in args.modes.split(",") if mode.strip()]

    with make_sandbox(args.sandbox, workers=min(2, os.cpu_count() or 1)) as sandbox:
        started = time.perf_counter()
        train_data = synthetic_step_labels("train", n_tasks=args.train_tasks, seed=args.seed, sandbox=sandbox)
        eval_data = synthetic_step_labels(
            "test", n_tasks=args.eval_tasks, seed=args.seed + 1, sandbox=sandbox
        )
        label_seconds = time.perf_counter() - started
    print(
        f"labelled {len(train_data)} training and {len(eval_data)} held-out steps in {label_seconds:.0f} s",
        file=sys.stderr,
    )

    def summary(
        name: str, head: str, evaluation, train_seconds: float, optimizer_steps: int, final_loss: float | None
    ) -> dict:
        print(
            f"{name:>16}: AUC {evaluation.auc:.3f} "
            f"({', '.join(f'{kind} {auc:.3f}' for kind, auc in evaluation.auc_by_kind.items())}), "
            f"pair accuracy {evaluation.pair_accuracy:.3f}, {train_seconds:.0f} s training",
            file=sys.stderr,
        )
        return {
            "mode": name,
            "head": head,
            "auc": evaluation.auc,
            "auc_by_kind": evaluation.auc_by_kind,
            "pair_accuracy": evaluation.pair_accuracy,
            "mean_score_good": evaluation.mean_score_good,
            "mean_score_bad": evaluation.mean_score_bad,
            "train_seconds": train_seconds,
            "optimizer_steps": optimizer_steps,
            "final_loss": final_loss,
        }

    untrained, base_used = prepare_prm(args.base, head=args.head, seed=args.seed)
    results = [
        summary(f"base ({args.head}, untrained)", args.head, evaluate_prm(untrained, eval_data), 0.0, 0, None)
    ]
    del untrained
    with tempfile.TemporaryDirectory(prefix="prm-auc-") as folder:
        for objective, labels, head in modes:
            result = train_prm(
                Path(folder) / f"{objective}-{labels}-{head}",
                data=train_data,
                base=args.base,
                head=head,
                objective=objective,
                labels=labels,
                eval_tasks=0,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                seed=args.seed,
                progress=False,
            )
            evaluation = evaluate_prm(load_prm(str(result.out_dir)), eval_data)
            results.append(
                summary(
                    f"{objective}-{labels}" + ("" if head == args.head else f" ({head} head)"),
                    head,
                    evaluation,
                    result.train_seconds,
                    result.optimizer_steps,
                    result.final_loss,
                )
            )

    report = {
        "benchmark": "prm_auc",
        "args": asdict(args),
        "base": base_used,
        "train_labels": label_balance(train_data),
        "eval_labels": label_balance(eval_data),
        "label_seconds": label_seconds,
        "modes": results,
        "machine": machine(),  # torch_threads: torch.get_num_threads(), set to args.threads above
    }
    print(write_json(args.out, report))

    figure, axis = plt.subplots(figsize=(10, 3.8))
    kinds = ["all", "outline", "refine", "code"]
    width = 0.8 / len(results)
    for index, result in enumerate(results):
        values = [result["auc"]] + [result["auc_by_kind"].get(kind, math.nan) for kind in kinds[1:]]
        label = f"{result['mode']}" + (
            f" ({result['train_seconds']:.0f} s)" if result["train_seconds"] else ""
        )
        axis.bar(np.arange(len(kinds)) + index * width, values, width, label=label)
    axis.axhline(0.5, color="gray", linestyle="--", linewidth=1)
    axis.set_xticks(
        np.arange(len(kinds)) + width * (len(results) - 1) / 2, [f"{kind} steps" for kind in kinds]
    )
    axis.set_ylim(0.3, 1.0)
    axis.set_ylabel("step ROC AUC (held-out tasks)")
    axis.set_title(
        f"Tiny PRM from {Path(base_used).name}: {len(eval_data)} held-out steps, {args.eval_tasks} tasks"
    )
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=120)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
