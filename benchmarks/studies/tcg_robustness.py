"""Test generation on signatures no one wrote by hand: does the oracle TCG ever crash?

What it runs: ``OracleTCG.generate_reports`` (domain "examples" and "wide") on
  1. every HumanEval task;
  2. synthetic tasks of every difficulty (train and test splits);
  3. random tasks: a random signature (int, float, str, bool, lists, nested lists, tuples, dicts,
     Optional, Union, unannotated) with random docstring examples (huge, negative, non-finite floats,
     nested, empty, long strings), and a reference that accepts anything.
A task may be refused with ``UnsupportedTask`` (a documented outcome: the env then pays with the task's
own tests); anything else raised is a crash. It prints a JSON object (also written to --out) with the
counts per family and the first example of each kind of crash, and draws a bar chart (--plot).

Run it:
    .venv/bin/python benchmarks/studies/tcg_robustness.py
    .venv/bin/python benchmarks/studies/tcg_robustness.py --random-tasks 5000 --synthetic-tasks 5000
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

from codegym.options import parse_args
from codegym.sandbox import CallTest, make_sandbox
from codegym.tasks import Task
from codegym.tasks.humaneval import load_humaneval
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tcg.base import UnsupportedTask
from codegym.tcg.oracle import OracleTCG

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend


@dataclass
class Args:
    random_tasks: int = 2000
    """random signatures with random docstring examples"""
    synthetic_tasks: int = 2000
    """synthetic tasks, over both splits and difficulties 1 to 4"""
    humaneval: int = 1
    """1: also every HumanEval task; 0: skip them"""
    tests_per_task: int = 5
    """tests asked of the generator for each task"""
    seed: int = 0
    """seeds the random tasks and the generator"""
    sandbox: str = "local"
    """the sandbox that runs the references"""
    out: str = "benchmarks/results/tcg_robustness.json"
    """where to write the JSON results (also printed to stdout)"""
    plot: str = "benchmarks/results/tcg_robustness.png"
    """where to write the bar chart"""


def random_task(rng: random.Random, index: int) -> Task:
    """A task with a random signature and random docstring examples; its reference accepts anything."""

    def number() -> int:
        return rng.choice([0, 1, -1, 7, 4096, -4096, 10**9, -(10**12), 2**63, 2**64 + 5, -(2**70), 10**30])

    def real() -> float:
        return rng.choice([0.0, -0.5, 1e-12, 3.14159, 1e300, -1e300, 2.5e18, float("inf"), float("nan")])

    def text() -> str:
        return rng.choice(["", "a", "hello world", "ÄÖü", "x" * 300, "a b c", "\n\t", "'\"", "0.5"])

    values = {
        "int": number,
        "float": real,
        "str": text,
        "bool": lambda: rng.random() < 0.5,
        "List[int]": lambda: [number() for _ in range(rng.choice([0, 1, 3, 50]))],
        "List[float]": lambda: [real() for _ in range(rng.choice([0, 2]))],
        "List[str]": lambda: [text() for _ in range(rng.choice([0, 2]))],
        "List[List[int]]": lambda: [
            [number() for _ in range(rng.choice([0, 2]))] for _ in range(rng.choice([0, 2]))
        ],
        "Tuple[int, str]": lambda: (number(), text()),
        "Dict[str, int]": lambda: {text(): number() for _ in range(rng.choice([0, 2]))},
        "Optional[int]": lambda: rng.choice([None, number()]),
        "Union[int, str]": lambda: rng.choice([number(), text()]),
        "list": lambda: [number(), text()],
        "": lambda: rng.choice([number(), real(), text(), [number()]]),
    }
    types = [rng.choice(list(values)) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    params = ", ".join(f"a{i}: {kind}" if kind else f"a{i}" for i, kind in enumerate(types))
    calls = [tuple(values[kind]() for kind in types) for _ in range(rng.choice([0, 1, 2, 3]))]
    doc = "".join(
        f"    >>> f({', '.join(repr(v) for v in call)})\n    {rng.choice([repr(number()), repr(text()), '[]'])}\n"
        for call in calls
    )
    prompt = f'from typing import *\ndef f({params}) -> int:\n    """Do something.\n{doc}    """\n'
    names = "".join(f"a{i}, " for i in range(len(types)))
    tests = tuple(CallTest("f", call, expected=0, equality="python") for call in calls) or (CallTest("f"),)
    return Task(
        f"random/{index}",
        prompt,
        "f",
        tests,
        reference_solution=prompt + f"    return len(repr(({names}))) % 97\n",
    )


def main() -> None:
    args = parse_args(Args, __doc__)
    rng = random.Random(args.seed)
    families = {"random": [random_task(rng, i) for i in range(args.random_tasks)]}
    per_source = args.synthetic_tasks // 8
    families["synthetic"] = [
        task
        for split in ("train", "test")
        for ops in (1, 2, 3, 4)
        for task in SyntheticTasks(split, min_ops=ops, max_ops=ops).tasks(per_source, seed=args.seed + ops)
    ]
    if args.humaneval:
        families["humaneval"] = load_humaneval()
    results: dict = {"args": asdict(args), "families": {}}
    started = time.monotonic()
    with make_sandbox(args.sandbox) as sandbox:
        for name, tasks in families.items():
            counts, crashes, examples = Counter(), Counter(), {}
            for domain in ("examples", "wide"):
                with OracleTCG(sandbox=sandbox, domain=domain, seed=args.seed) as tcg:
                    for task in tasks:
                        try:
                            report = tcg.generate_report(task, args.tests_per_task)
                            counts["generated" if report.tests else "none kept"] += 1
                        except UnsupportedTask:
                            counts["unsupported"] += 1
                        except Exception as exc:  # the thing counted: any crash
                            kind = f"{type(exc).__name__}: {str(exc)[:120]}"
                            crashes[kind] += 1
                            examples.setdefault(kind, task.problem[:600])
            results["families"][name] = {
                "tasks": len(tasks),
                "runs": 2 * len(tasks),
                **dict(counts),
                "crashes": sum(crashes.values()),
                "crash_kinds": dict(crashes),
                "crash_examples": examples,
            }
            print(
                f"{name}: {results['families'][name]['crashes']} crashes in {2 * len(tasks)} runs",
                file=sys.stderr,
            )
    results["seconds"] = round(time.monotonic() - started, 1)
    results["crashes"] = sum(family["crashes"] for family in results["families"].values())
    results["machine"] = machine()
    print(write_json(args.out, results, indent=1))

    names = list(results["families"])
    kinds = ["generated", "none kept", "unsupported", "crashes"]
    figure, axis = plt.subplots(figsize=(7, 3.5))
    bottom = [0] * len(names)
    for kind in kinds:
        heights = [results["families"][name].get(kind, 0) for name in names]
        axis.bar(names, heights, bottom=bottom, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axis.set_ylabel("generation runs")
    axis.set_title(f"OracleTCG on unseen signatures: {results['crashes']} crashes")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
