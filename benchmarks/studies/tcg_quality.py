"""TCG quality: how valid generated tests are, and how many known-wrong solutions they catch.

What it measures, side by side in one run, on HumanEval (all 164 by default) and a few hundred held-out
synthetic tasks:
  1. validity rate: the share of proposed tests the reference solution passes (O1-Coder's TCG metric:
     80.8% after SFT, 89.2% after DPO on 314 TACO problems). For the oracle generator the reference
     *writes* the expected outputs, so its rate only counts inputs the reference could answer (no
     raise, no timeout, plain-data result); it is not comparable with a model's rate, which also counts
     wrong claimed outputs.
  2. kept tests per task (at most --n).
  3. discrimination: mutants of each reference (first-order AST mutations, codegym.tcg.mutants) run
     against every test set; a set catches a mutant when some test of it does not pass. Test sets:
     - hidden: the dataset's own tests;
     - oracle: OracleTCG as the env's visible_tests="tcg" uses it (examples from the problem and the
       task's tests, never a hidden test's input);
     - oracle_examples_only: OracleTCG reading only the problem text and starter code;
     - model: ModelTCG (codegym.tcg.model_tcg) when it imports and its checkpoint loads, else a note.
     A mutant counts as wrong when any set, or a wide-domain probe of --probe-tests extra oracle tests,
     catches it: every test in these sets passed the reference, so a mutant failing one truly differs
     from the reference. Discrimination is the share of wrong mutants a set catches. The issue's narrower
     definition (mutants the hidden tests prove wrong) is reported too; there the hidden tests score
     100% by construction. Mutants that time out are left out (any time limit catches them).
Output: a JSON object on stdout (also written to --out) and a bar chart (--plot).

Run it:
    .venv/bin/python benchmarks/studies/tcg_quality.py
    .venv/bin/python benchmarks/studies/tcg_quality.py --synthetic-tasks 50 --humaneval-tasks 20 --model-tcg ""
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.humaneval import load_humaneval
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tcg import OracleTCG, TestCaseGenerator, judge_mutants, mutate_program

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    humaneval_tasks: int = 164
    """HumanEval tasks, the first N (164 is all)"""
    synthetic_tasks: int = 300
    """held-out synthetic tasks (test split), drawn with --seed"""
    synthetic_max_ops: int = 3
    """most primitive ops in a synthetic task (difficulty k is 1 to this)"""
    n: int = 10
    """tests kept per task by each generator (the env's visible_tests_n default)"""
    mutants_per_task: int = 20
    """mutants tried per task (seeded first-order AST mutants of the reference)"""
    probe_tests: int = 30
    """wide-domain oracle tests per task used only to find more truly-wrong mutants (0: none)"""
    model_tcg: str = "tiny"
    """ModelTCG model: "tiny", a path or hub id, or "" to leave the model column out"""
    sandbox: str = "local"
    """sandbox: local, docker or auto"""
    workers: int = 2
    """sandbox workers"""
    timeout_s: float = 1.0
    """per-test time limit for references and mutants"""
    seed: int = 0
    """seed for the synthetic tasks, the generators and the mutants"""
    out: str = "benchmarks/results/tcg_quality.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/tcg_quality.png"
    """where to write the bar chart"""


O1_CODER_VALIDITY = {"SFT": 0.808, "DPO": 0.892}  # arXiv 2412.00154, 314 TACO test problems


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_model_tcg(spec: str, sandbox, args: Args) -> tuple[TestCaseGenerator | None, str | None]:
    """ModelTCG on ``spec``, or None and why not (it is being written alongside this benchmark)."""
    if not spec:
        return None, "left out (--model-tcg '')"
    try:
        from codegym.tcg.model_tcg import ModelTCG
    except ImportError as exc:
        return None, f"codegym.tcg.model_tcg does not import: {exc}"
    try:
        return ModelTCG(spec, sandbox=sandbox, seed=args.seed, timeout_s=args.timeout_s), None
    except (OSError, ValueError, RuntimeError) as exc:  # FileNotFoundError for a missing checkpoint
        return None, f"ModelTCG({spec!r}) did not load: {type(exc).__name__}: {exc}"


def generation_summary(generations, seconds: float) -> dict:
    proposed = sum(g.proposed for g in generations)
    valid = sum(g.valid for g in generations)
    skipped = [g for g in generations if g.skipped]
    return {
        "tasks": len(generations),
        "tasks_with_tests": sum(1 for g in generations if g.tests),
        "tasks_skipped": len(skipped),
        "skipped_examples": [f"{g.task_id}: {g.skipped}" for g in skipped[:3]],
        "proposed": proposed,
        "valid": valid,
        "validity_rate": valid / proposed if proposed else 0.0,
        "mean_validity_rate_per_task": (
            sum(g.validity_rate for g in generations if g.proposed)
            / max(1, sum(1 for g in generations if g.proposed))
        ),
        "kept_tests_per_task": sum(len(g.tests) for g in generations) / len(generations),
        "seconds": seconds,
    }


def measure(name: str, tasks: list, sandbox, generators: dict[str, TestCaseGenerator], args: Args) -> dict:
    log(f"[{name}] {len(tasks)} tasks")
    test_sets: list[dict] = [{"hidden": task.hidden_tests} for task in tasks]
    generation = {}
    for set_name, generator in generators.items():
        start = time.perf_counter()
        generations = generator.generate_reports(tasks, args.probe_tests if set_name == "probe" else args.n)
        seconds = time.perf_counter() - start
        for sets, produced in zip(test_sets, generations, strict=True):
            sets[set_name] = produced.tests
        if set_name != "probe":
            generation[set_name] = generation_summary(generations, seconds)
            log(
                f"[{name}] {set_name}: validity {generation[set_name]['validity_rate']:.3f}, "
                f"{generation[set_name]['kept_tests_per_task']:.2f} tests per task, {seconds:.1f} s"
            )

    start = time.perf_counter()
    candidates = []
    for task in tasks:
        try:
            candidates.append(
                mutate_program(
                    task.reference_solution,
                    entry_point=task.entry_point,
                    seed=args.seed,
                    limit=args.mutants_per_task,
                )
            )
        except ValueError:
            candidates.append([])
    verdicts = judge_mutants(candidates, test_sets, sandbox, timeout_s=args.timeout_s)
    mutant_seconds = time.perf_counter() - start
    judged = [v for task_verdicts in verdicts for v in task_verdicts if not v.timed_out]
    wrong = [v for v in judged if any(v.caught.values())]
    hidden_wrong = [v for v in judged if v.caught["hidden"]]
    compared = ["hidden", *(s for s in generators if s != "probe")]

    def share(verdicts_subset, *sets) -> float:
        if not verdicts_subset:
            return 0.0
        return sum(any(v.caught[s] for s in sets) for v in verdicts_subset) / len(verdicts_subset)

    discrimination = {s: share(wrong, s) for s in compared}
    if "oracle" in generators:
        discrimination["hidden+oracle"] = share(wrong, "hidden", "oracle")
    result = {
        "tasks": len(tasks),
        "generation": generation,
        "tests_per_task": {
            s: sum(len(sets[s]) for sets in test_sets) / len(tasks)
            for s in [*compared, *(["probe"] if "probe" in generators else [])]
        },
        "mutants": {
            "tried": sum(len(c) for c in candidates),
            "timed_out_left_out": sum(len(c) for c in candidates) - len(judged),
            "judged": len(judged),
            "wrong": len(wrong),
            "wrong_by_hidden_tests": len(hidden_wrong),
            "tasks_with_wrong_mutants": sum(
                1 for tv in verdicts if any(any(v.caught.values()) for v in tv if not v.timed_out)
            ),
            "seconds": mutant_seconds,
        },
        "discrimination": discrimination,
        "discrimination_on_hidden_wrong": {s: share(hidden_wrong, s) for s in compared},
    }
    log(f"[{name}] mutants: {len(wrong)} wrong of {len(judged)} judged, {mutant_seconds:.1f} s")
    log(f"[{name}] discrimination: " + ", ".join(f"{k} {v:.3f}" for k, v in discrimination.items()))
    return result


def main() -> None:
    args = parse_args(Args, __doc__)
    started = time.perf_counter()
    sandbox = make_sandbox(args.sandbox, workers=args.workers)
    generators: dict[str, TestCaseGenerator] = {
        "oracle": OracleTCG(sandbox=sandbox, seed=args.seed, timeout_s=args.timeout_s, skip_unsupported=True),
        "oracle_examples_only": OracleTCG(
            sandbox=sandbox,
            seed=args.seed,
            timeout_s=args.timeout_s,
            use_task_tests=False,
            skip_unsupported=True,
        ),
    }
    model, model_note = load_model_tcg(args.model_tcg, sandbox, args)
    if model is not None:
        generators["model"] = model
    else:
        log(f"model column: {model_note}")
    if args.probe_tests:
        generators["probe"] = OracleTCG(
            sandbox=sandbox,
            seed=args.seed + 1,
            domain="wide",
            timeout_s=args.timeout_s,
            skip_unsupported=True,
        )

    datasets = {
        "humaneval": list(load_humaneval())[: args.humaneval_tasks],
        "synthetic": SyntheticTasks("test", max_ops=args.synthetic_max_ops).tasks(
            args.synthetic_tasks, seed=args.seed
        ),
    }
    results = {
        name: measure(name, tasks, sandbox, generators, args) for name, tasks in datasets.items() if tasks
    }
    sandbox.close()

    report = {
        "benchmark": "tcg_quality",
        "args": asdict(args),
        "command": "python " + " ".join(sys.argv),
        "model_tcg": model_note or repr(model),
        "o1_coder_validity": O1_CODER_VALIDITY,
        "datasets": results,
        "seconds": time.perf_counter() - started,
        "machine": machine(),
    }
    print(write_json(args.out, report))

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results)
    columns = list(next(iter(results.values()))["discrimination"])
    width = 0.8 / len(columns)
    for index, column in enumerate(columns):
        xs = [i + (index - (len(columns) - 1) / 2) * width for i in range(len(names))]
        bars = left.bar(xs, [results[name]["discrimination"][column] for name in names], width, label=column)
        left.bar_label(bars, fmt="%.2f", fontsize=6)
    left.set_xticks(
        range(len(names)), [f"{n}\n({results[n]['mutants']['wrong']} wrong mutants)" for n in names]
    )
    left.set_ylim(0, 1.25)
    left.set_ylabel("share of wrong mutants caught")
    left.set_title("discrimination (higher is better)")
    left.legend(fontsize=7, loc="upper center", ncol=3)
    generated = list(next(iter(results.values()))["generation"])
    width = 0.8 / len(generated)
    for index, column in enumerate(generated):
        xs = [i + (index - (len(generated) - 1) / 2) * width for i in range(len(names))]
        bars = right.bar(
            xs, [results[name]["generation"][column]["validity_rate"] for name in names], width, label=column
        )
        right.bar_label(bars, fmt="%.3f", fontsize=6)
    for label, value in O1_CODER_VALIDITY.items():
        right.axhline(value, linestyle="--", linewidth=1, color="gray")
        right.text(-0.45, value, f"O1-Coder {label}", fontsize=7, va="bottom", ha="left", color="gray")
    right.set_xticks(range(len(names)), names)
    right.set_ylim(0, 1.25)
    right.set_ylabel("share of proposals the reference passes")
    right.set_title("validity rate (oracle: inputs the reference answers)")
    right.legend(fontsize=7, loc="upper center", ncol=3)
    figure.suptitle(f"Test case generators, {args.n} tests per task", fontsize=10)
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=120)
    log(f"wrote {args.out} and {args.plot} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
