"""Model-based test case generator: validity rate untrained, after SFT and after DPO, side by side.

What it measures: O1-Coder's TCG metric, the share of generated cases (``solve(args) -> expected``
lines) whose claimed output the reference solution returns, on held-out synthetic tasks (test split:
compositions never seen in training). Three models, evaluated on the same tasks with the same sampling:
  1. the base model before any training (for the built-in tiny model: a random init, so noise);
  2. after SFT on training tasks' own cases;
  3. after DPO with chosen = correct cases, rejected = the same inputs with shuffled outputs.
O1-Coder's figures for scale (DeepSeek-1.3B on TACO, not comparable in size or task): 80.8% after SFT,
89.2% after DPO. Also reported: the parse rate (lines that are well-formed cases) and the stricter
validity over every line written.

By default it trains with ``train_tcg``'s defaults from a fresh tiny model (a few minutes per stage on a
CPU; the time is in the output). With ``--checkpoint`` it instead evaluates that trained model and reads
the untrained and SFT figures from the ``tcg_metrics.json`` saved beside it.

Run it:
    .venv/bin/python benchmarks/studies/tcg_model.py
    .venv/bin/python benchmarks/studies/tcg_model.py --checkpoint codegym/models/checkpoints/tiny-tcg
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import torch

from codegym.options import parse_args
from codegym.tcg.tcg_data import evaluate_tcg, heldout_tasks
from codegym.training.tcg import METRICS_FILE, train_tcg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    checkpoint: str = ""
    """a trained TCG folder to evaluate instead of training one (empty: train with train_tcg's defaults)"""
    eval_tasks: int = 64
    """held-out synthetic tasks (test split) the validity is measured on"""
    eval_tests: int = 8
    """cases kept per task (n of generate)"""
    seed: int = 0
    """seeds training, the held-out tasks and sampling"""
    threads: int = 1
    """torch CPU threads"""
    sandbox: str = "local"
    """where the reference solutions run: local, docker or auto"""
    out: str = "benchmarks/results/tcg_model.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/tcg_model.png"
    """where to write the bar chart"""


STAGES = {"base": "untrained", "sft": "after SFT", "dpo": "after DPO"}
O1_CODER = {"sft": 0.808, "dpo": 0.892}  # arXiv 2412.00154, section 4: DeepSeek-1.3B TCG on TACO test


def main() -> None:
    args = parse_args(Args, __doc__)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.checkpoint:
        checkpoint = Path(args.checkpoint)
        stored = (
            json.loads((checkpoint / METRICS_FILE).read_text())
            if (checkpoint / METRICS_FILE).is_file()
            else {}
        )
        evaluations = dict(stored.get("evaluations", {}))
        print(f"evaluating {checkpoint} on {args.eval_tasks} held-out tasks", file=sys.stderr)
        evaluations["dpo"] = evaluate_tcg(
            checkpoint,
            heldout_tasks(args.eval_tasks, args.seed),
            n=args.eval_tests,
            seed=args.seed,
            sandbox=args.sandbox,
        ).as_dict()
        training = {"source": "checkpoint", "stored_metrics": stored}
    else:
        with tempfile.TemporaryDirectory(prefix="codegym-tcg-bench-") as scratch:
            result = train_tcg(
                Path(scratch) / "tcg",
                eval_tasks=args.eval_tasks,
                eval_tests=args.eval_tests,
                seed=args.seed,
                sandbox=args.sandbox,
            )
        evaluations = {stage: evaluation.as_dict() for stage, evaluation in result.evaluations.items()}
        training = {"source": "train_tcg defaults", **result.as_dict()}
        training.pop("evaluations")

    for stage, label in STAGES.items():
        if stage in evaluations:
            e = evaluations[stage]
            print(
                f"{label:>10}: validity {e['validity_rate']:.3f} ({e['valid']}/{e['proposed']} cases), "
                f"parse rate {e['parse_rate']:.3f}, tasks with a test {e['tasks_with_tests']}/{e['tasks']}",
                file=sys.stderr,
            )

    report = {
        "benchmark": "tcg_model",
        "args": asdict(args),
        "validity": {
            STAGES[stage]: evaluations[stage]["validity_rate"] for stage in STAGES if stage in evaluations
        },
        "evaluations": {STAGES[stage]: evaluations[stage] for stage in STAGES if stage in evaluations},
        "o1_coder_reference": {"after SFT": O1_CODER["sft"], "after DPO": O1_CODER["dpo"]},
        "training": training,
        "wall_s": time.perf_counter() - started,
        "machine": machine(),  # torch_threads: torch.get_num_threads(), set to args.threads above
    }
    print(write_json(args.out, report))

    figure, axis = plt.subplots(figsize=(7, 3.8))
    labels = [STAGES[stage] for stage in STAGES if stage in evaluations]
    validity = [evaluations[stage]["validity_rate"] for stage in STAGES if stage in evaluations]
    strict = [evaluations[stage]["line_validity_rate"] for stage in STAGES if stage in evaluations]
    positions = range(len(labels))
    for offset, values, color, label in (
        (-0.2, validity, "tab:blue", "valid / parsed cases"),
        (0.2, strict, "tab:gray", "valid / all lines written"),
    ):
        bars = axis.bar([p + offset for p in positions], values, width=0.4, color=color, label=label)
        axis.bar_label(bars, labels=[f"{value:.1%}" for value in values], fontsize=8)
    for stage, value in O1_CODER.items():
        if STAGES[stage] in labels:
            index = labels.index(STAGES[stage])
            axis.hlines(value, index - 0.4, index + 0.4, color="tab:red", linestyles="--")
    axis.plot([], [], color="tab:red", linestyle="--", label="O1-Coder (1.3B, TACO), for scale")
    axis.set_xticks(list(positions), labels)
    axis.set_ylim(0, 1)
    axis.set_ylabel("validity rate (reference passes)")
    axis.set_title(f"Model TCG on {args.eval_tasks} held-out synthetic tasks")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=120)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
