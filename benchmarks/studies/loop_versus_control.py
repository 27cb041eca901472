"""Do the search's own paths add anything over the replay? The loop against its replay-only control.

What it reads: two results of ``loop_iterations.py`` with the same seeds, iterations and evaluation
tasks, one of the loop as it is (``--loop``) and one run with ``--no-solved-paths`` (``--control``: SFT on
the replayed reference episodes alone, everything else the same). Both evaluate the same held-out and
in-distribution tasks, so their verdicts pair task by task. Where one run evaluated more tasks of a set
(a larger ``--indist-tasks``, say: the sets are drawn so that a shorter one is the longer one's start),
the two pair on the tasks both played. Other settings may differ too, e.g. a loop run with
``--sft-from-start`` against a control that continued from the current policy: the JSON lists every
setting that differs (``differs``), so a reader sees what else the comparison varies.

What it reports (JSON on stdout and in --out): for every iteration and agent, loop minus control on
each task set, paired by task and pooled over the seeds (95% interval, cluster-robust over the tasks'
functions: ``codegym.loop.stats.paired_gain``), each seed's difference, and both arms' pass@1 pooled over the seeds (95% interval, cluster-robust over
functions: ``codegym.loop.stats.pass_rate``).

Run it (after the two loop runs; seconds):
    .venv/bin/python benchmarks/studies/loop_iterations.py --policy runs/sft_plateau/policy \
        --run-root runs/loop_plateau --out benchmarks/results/loop_plateau.json --plot benchmarks/results/loop_plateau.png
    .venv/bin/python benchmarks/studies/loop_iterations.py --policy runs/sft_plateau/policy --no-solved-paths \
        --run-root runs/loop_plateau_control --out benchmarks/results/loop_plateau_control.json \
        --plot benchmarks/results/loop_plateau_control.png
    .venv/bin/python benchmarks/studies/loop_versus_control.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from codegym.loop.stats import paired_gain, pass_rate
from codegym.options import parse_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json


@dataclass
class Args:
    loop: str = "benchmarks/results/loop_plateau.json"
    """loop_iterations.py's JSON of the loop as it is"""
    control: str = "benchmarks/results/loop_plateau_control.json"
    """loop_iterations.py's JSON of the same runs with --no-solved-paths"""
    out: str = "benchmarks/results/loop_plateau_versus_control.json"
    """where to write the JSON results (also printed to stdout)"""


def main() -> None:
    args = parse_args(Args, __doc__)
    loop, control = read(args.loop), read(args.control)
    if loop["args"].get("solved_paths") is False or control["args"].get("solved_paths") is not False:
        raise SystemExit(
            f"{args.control} must be the run with --no-solved-paths and {args.loop} the one without it"
        )
    seeds = sorted(loop["per_seed"])
    if seeds != sorted(control["per_seed"]):
        raise SystemExit(
            f"the two runs have other seeds: {seeds} and {sorted(control['per_seed'])}; run both with the same --seeds"
        )
    results: dict = {
        "sets": {},
        "inputs": {"loop": args.loop, "control": args.control},
        "differs": differing_settings(loop["args"], control["args"]),
        "seeds": seeds,
        "machine": machine(),
    }
    for which in ("held_out", "in_distribution"):
        by_iteration: dict = {}
        for iteration in loop["per_seed"][seeds[0]]["verdicts"].get(which, {}):
            by_agent: dict = {}
            for agent in loop["per_seed"][seeds[0]]["verdicts"][which][iteration]:
                by_agent[agent] = difference(loop, control, seeds, which, iteration, agent)
            by_iteration[iteration] = by_agent
        if by_iteration:
            results["sets"][which] = by_iteration
    write_json(args.out, results)
    print(json.dumps(results, indent=2))


def read(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(
            f"{path} does not exist: run loop_iterations.py first (see this script's --help)"
        ) from None


def differing_settings(loop: dict, control: dict) -> dict[str, list]:
    """The two runs' settings that differ, other than the control's own flag and where each run wrote."""
    own = {"solved_paths", "run_root", "out", "plot"}
    keys = sorted((set(loop) | set(control)) - own)
    return {key: [loop.get(key), control.get(key)] for key in keys if loop.get(key) != control.get(key)}


def difference(loop: dict, control: dict, seeds: list[str], which: str, iteration: str, agent: str) -> dict:
    """Loop minus control for one agent after one iteration, pooled over the seeds and per seed."""
    ours, theirs, groups, per_seed = [], [], [], []
    for seed in seeds:
        a = loop["per_seed"][seed]["verdicts"][which][iteration][agent]
        b = control["per_seed"][seed]["verdicts"][which][iteration][agent]
        played = min(len(a), len(b))  # the tasks both runs played: a shorter set is the longer one's start
        a, b = a[:played], b[:played]
        functions = loop["per_seed"][seed]["groups"][which][:played]
        if functions != control["per_seed"][seed]["groups"][which][:played]:
            raise SystemExit(
                f"seed {seed}, {which}, {agent}: the two runs evaluated other tasks; run both with the same "
                "--train-split, --train-ops, --eval-tasks and --search-tasks"
            )
        ours += a
        theirs += b
        groups += functions
        per_seed.append(asdict(paired_gain(b, a, functions)))
    return {
        "loop": pass_rate(ours, groups),
        "control": pass_rate(theirs, groups),
        "loop_minus_control": asdict(paired_gain(theirs, ours, groups)),
        "per_seed": per_seed,
    }


if __name__ == "__main__":
    main()
