"""The trained policies of a ``reward_shaping.py`` study, evaluated again on a fresh, larger draw of
held-out tasks: is a scheme's gain the policies' or the 300 evaluation tasks'?

Why: in ``reward_shaping.py`` the seeds agree (each seed's gain has the same sign and size) while the
pooled interval stays as wide as one seed's, because the same evaluation tasks judge every seed and
their draw, not the training, is most of the uncertainty. This script takes the policies those runs
saved and judges them again on ``--tasks`` tasks per held-out set drawn with other seeds than the
study's, so the figure is an independent replication, not a rerun of the same check.

What it runs: for every (scheme, seed) of ``--schemes`` x ``--seeds``, the run's JSON in ``--runs-out``
(as ``reward_shaping.py`` wrote it) names its settings; the policy its training saved last
(``--out-root``/<run name>/checkpoint-<iterations>; for a ``rejection_sampling.py`` study,
``--out-root``/<arm>_seed<k>/round-<rounds>) and the policy the runs started from (their ``policy``
setting; the shipped tiny one for runs that name none) decode greedily, through
the env and the local sandbox, on the fresh ``train2`` (training compositions, instances drawn apart)
and ``test2`` (compositions never trained on) sets.

What it reports (JSON in --out, a table on stdout), per scheme and set: greedy pass@1 before and after,
the gain pooled over seeds with a 95% interval cluster-robust over the task's function, each seed's
gain, and every pair of schemes' difference after training (paired by seed and task) with ``differs``.

Run it (after ``reward_shaping.py --schemes terminal,noise``; about 15 minutes a set on one core):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/reward_shaping_recheck.py --schemes terminal,noise
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/reward_shaping_recheck.py --sets train2 \
        --runs-out benchmarks/results/rejection_sampling --out-root runs/rejection_sampling \
        --out benchmarks/results/rejection_sampling_recheck.json    # after rejection_sampling.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine, write_json
from reward_shaping import difference  # benchmarks/studies/reward_shaping.py
from rl_diagnose import greedy, run_name  # benchmarks/studies/rl_diagnose.py
from tqdm import tqdm

from codegym.loop.stats import paired_gain
from codegym.loop.task_sets import draw_tasks, task_group
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks.synthetic import SyntheticTasks

# Split and draw seed of each fresh set: not rl_diagnose.py's EVAL_SEEDS, so the tasks are a new draw.
FRESH_SEEDS = {"test2": ("test", 90_001), "train2": ("train", 90_002)}


@dataclass
class Args:
    schemes: str = "terminal,noise"
    """comma-separated schemes whose runs are judged again"""
    seeds: str = "0,1,2"
    """comma-separated training seeds"""
    tasks: int = 1000
    """tasks in each fresh held-out set"""
    sets: str = "train2,test2"
    """which held-out sets to draw: train2, test2 or both"""
    runs_out: str = "benchmarks/results/reward_shaping"
    """where reward_shaping.py (or rejection_sampling.py) wrote each run's JSON"""
    out_root: str = "runs/reward_shaping"
    """where reward_shaping.py's runs saved their checkpoints"""
    out: str = "benchmarks/results/reward_shaping_recheck.json"
    """the JSON written"""


def final_policy(args: Args, scheme: str, seed: int) -> tuple[Path, dict]:
    """The last checkpoint a run saved and the run's arguments; a clear error when either is missing."""
    path = Path(args.runs_out) / f"{scheme}_seed{seed}.json"
    if not path.exists():
        raise SystemExit(f"no run {path}: run reward_shaping.py --schemes {scheme} --seeds {seed} first")
    run_args = json.loads(path.read_text())["args"]
    if "rounds" in run_args:  # a rejection_sampling.py run: its last round's policy
        checkpoint = Path(args.out_root) / f"{scheme}_seed{seed}" / f"round-{run_args['rounds']}"
    else:
        checkpoint = Path(args.out_root) / run_name(run_args) / f"checkpoint-{run_args['iterations']}"
    if not (checkpoint / "model.safetensors").exists():
        raise SystemExit(
            f"{checkpoint} holds no trained policy: rerun the study's run of {scheme} seed {seed}"
        )
    return checkpoint, run_args


def main() -> None:
    args = parse_args(Args, __doc__)
    schemes = [scheme for scheme in args.schemes.split(",") if scheme]
    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    sets = [name for name in args.sets.split(",") if name]
    if not schemes or not seeds or args.tasks < 1 or not sets or set(sets) - set(FRESH_SEEDS):
        raise SystemExit(
            f"need at least one scheme and seed, --tasks >= 1 and --sets among {sorted(FRESH_SEEDS)}"
        )
    policies = {(scheme, seed): final_policy(args, scheme, seed) for scheme in schemes for seed in seeds}
    settings = {
        json.dumps({k: v for k, v in a.items() if k not in ("arm", "seed", "out")}, sort_keys=True)
        for _, a in policies.values()
    }
    if len(settings) > 1:
        raise SystemExit("the runs were trained with different settings; recheck one study at a time")
    # The policy every run started from ("tiny" for studies that name none): what "before" is.
    start = next(iter(policies.values()))[1].get("policy", "tiny")
    results: dict = {"sets": {}}
    box = make_sandbox("local")
    try:
        for name in sets:
            split, draw_seed = FRESH_SEEDS[name]
            tasks = draw_tasks(SyntheticTasks(split, min_ops=2, max_ops=2), args.tasks, draw_seed)
            groups = [task_group(task) for task in tasks]
            with tqdm(total=1 + len(policies), desc=f"greedy on {len(tasks)} {name} tasks") as bar:
                before = greedy(start, tasks, box)
                bar.update()
                after = {}
                for key, (checkpoint, _) in policies.items():
                    after[key] = greedy(str(checkpoint), tasks, box)
                    bar.update()
            entry: dict = {"tasks": len(tasks), "groups": len(set(groups)), "before": float(np.mean(before))}
            for scheme in schemes:
                pooled_after = [v for seed in seeds for v in after[scheme, seed]]
                entry[scheme] = {
                    "after": float(np.mean(pooled_after)),
                    "gain": asdict(paired_gain(before * len(seeds), pooled_after, groups * len(seeds))),
                    "seeds": [asdict(paired_gain(before, after[scheme, seed], groups)) for seed in seeds],
                    "after_verdicts": [after[scheme, seed] for seed in seeds],
                }
            entry["versus"] = {}
            for mine in schemes:
                for theirs in schemes:
                    if mine < theirs:
                        entry["versus"][f"{mine} - {theirs}"] = difference(
                            [v for seed in seeds for v in after[theirs, seed]],
                            [v for seed in seeds for v in after[mine, seed]],
                            groups * len(seeds),
                        )
            entry["before_verdicts"], entry["task_groups"] = before, groups
            results["sets"][name] = entry
    finally:
        box.close()
    results["trained_with"] = json.loads(settings.pop())
    results["args"], results["machine"] = asdict(args), machine()
    write_json(args.out, results)
    for name, entry in results["sets"].items():
        print(
            f"fresh {name} ({entry['tasks']} tasks, {entry['groups']} functions): greedy pass@1 before -> after, "
            "gain (95% interval, pooled over seeds), each seed's gain"
        )
        for scheme in schemes:
            gain = entry[scheme]["gain"]
            per_seed = ", ".join(f"{s['mean']:+.3f}" for s in entry[scheme]["seeds"])
            print(
                f"  {scheme:>10} {entry['before']:.3f} -> {entry[scheme]['after']:.3f}  {gain['mean']:+.3f} "
                f"({gain['low']:+.3f} to {gain['high']:+.3f})  seeds {per_seed}"
            )
        for pair, gain in entry["versus"].items():
            print(
                f"  {pair}: {gain['mean']:+.3f} ({gain['low']:+.3f} to {gain['high']:+.3f})"
                f"{'  differs' if gain['differs'] else ''}"
            )


if __name__ == "__main__":
    main()
