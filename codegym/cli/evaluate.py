"""``codegym eval``: pass@k of a policy on the hidden tests, with the unbiased estimator.

Each task gets ``--samples`` episodes at ``--temperature`` (:func:`codegym.agents.rollout`: one
policy call per depth and one sandbox batch carry every episode); an episode is correct when its code
passes every hidden test. pass@k is Chen et al.'s ``1 - C(n-c, k) / C(n, k)`` per task, averaged over
tasks (:func:`codegym.evaluation.pass_at_k`). At ``--temperature 0`` decoding is greedy and the score
is greedy pass@1; ``--greedy`` adds greedy pass@1 to a sampled run. Tasks that record a difficulty
(synthetic's k, the number of ops composed) get a row per difficulty.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence

from codegym.cli import UsageError, command, print_table
from codegym.cli.common import (
    add_model_options,
    add_ray_options,
    add_sandbox_option,
    add_seed_option,
    add_task_options,
    check_model_spec,
    int_list,
    model_options,
    non_negative_float,
    positive_int,
    resolved_split,
    select_tasks,
    write_json,
)

DEFAULT_SAMPLES = 8


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="pass@k of a policy on hidden tests (unbiased estimator)",
        description="Sample --samples episodes per task and report pass@k on the hidden tests with the "
        "unbiased estimator (Chen et al. 2021), per difficulty when the tasks record one. Example: "
        "codegym eval --n-tasks 100 --samples 8 --k 1,2,4,8 --greedy --out results.json",
    )
    parser.add_argument(
        "--policy",
        default="tiny",
        help="tiny, smollm2-135m-instruct or qwen2.5-coder-0.5b-instruct (built in), a local path, a hub id or openai:<url>/<model> "
        "(default: %(default)s)",
    )
    add_model_options(parser)
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        help=f"episodes per task, n in pass@k (default: {DEFAULT_SAMPLES}, or 1 at --temperature 0)",
    )
    parser.add_argument(
        "--temperature",
        type=non_negative_float,
        default=1.0,
        help="sampling temperature; 0 decodes greedily (then every sample is the same: use --samples 1) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--k",
        type=int_list,
        default=None,
        metavar="K[,K...]",
        help="the k of pass@k, comma-separated, each at most --samples (default: 1, 2, 4, ... up to --samples)",
    )
    parser.add_argument(
        "--greedy",
        action="store_true",
        help="also play one greedy episode per task and report greedy pass@1 beside the sampled pass@k",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=8,
        help="steps per episode, code included (default: %(default)s)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=256,
        help="the longest step, in tokens (default: %(default)s)",
    )
    add_seed_option(parser)
    add_sandbox_option(parser)
    add_ray_options(
        parser,
        chunk_help="tasks per Ray work unit (default: %(default)s); greedy results never depend on it, "
        "sampled ones are fixed for a fixed value",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="write the settings, pass@k (overall and per difficulty) and each task's counts as JSON "
        "(default: none)",
    )
    add_task_options(parser, endless_default=100)
    command(parser, _eval)


def _check(args: argparse.Namespace) -> tuple[int, list[int]]:
    greedy_run = args.temperature == 0
    samples = args.samples if args.samples is not None else (1 if greedy_run else DEFAULT_SAMPLES)
    if greedy_run and samples > 1:
        raise UsageError(
            f"--temperature 0 decodes greedily, so all {samples} samples would be the same: use --samples 1 "
            "(greedy pass@1), or a temperature > 0 for pass@k"
        )
    ks = args.k if args.k is not None else [2**i for i in range(samples.bit_length()) if 2**i <= samples]
    too_big = [k for k in ks if k > samples]
    if too_big:
        raise UsageError(
            f"--k {max(too_big)} is more than --samples {samples}: pass@k needs at least k samples per task; "
            f"raise --samples to {max(too_big)} or drop k > {samples}"
        )
    if args.greedy and greedy_run:
        raise UsageError(
            "--greedy adds greedy pass@1 to a sampled run; at --temperature 0 the run is greedy already"
        )
    return samples, ks


def _eval(args: argparse.Namespace) -> int:
    samples, ks = _check(args)
    check_model_spec("--policy", args.policy)
    from codegym.agents import rollout
    from codegym.evaluation import aspr, pass_at_k
    from codegym.models import load_policy
    from codegym.sandbox import make_sandbox

    tasks = select_tasks(args)
    started = time.perf_counter()
    common = {"seed": args.seed, "max_steps": args.max_steps, "max_new_tokens": args.max_new_tokens}
    if args.ray_address:
        from codegym.play import distributed_rollout

        def play(samples_per_task: int, temperature: float) -> list:
            return distributed_rollout(
                args.policy,
                tasks,
                address=args.ray_address,
                workers=args.ray_workers,
                tasks_per_chunk=args.ray_chunk,
                sandbox=args.sandbox,
                progress=True,
                policy_options=model_options(args, args.policy),
                samples_per_task=samples_per_task,
                temperature=temperature,
                **common,
            )

        episodes = play(samples, args.temperature)
        greedy = play(1, 0.0) if args.greedy else []
    else:
        policy = load_policy(args.policy, **model_options(args, args.policy))
        with make_sandbox(args.sandbox) as box:
            episodes = rollout(
                policy,
                tasks,
                samples_per_task=samples,
                temperature=args.temperature,
                sandbox=box,
                progress=True,
                **common,
            )
            greedy = (
                rollout(
                    policy, tasks, samples_per_task=1, temperature=0.0, sandbox=box, progress=True, **common
                )
                if args.greedy
                else []
            )
    seconds = time.perf_counter() - started

    correct: dict[str, int] = defaultdict(int)
    for episode in episodes:
        correct[episode.task_id] += episode.hidden_all_passed
    greedy_correct = {e.task_id: e.hidden_all_passed for e in greedy}
    groups: dict[str, list] = defaultdict(list)
    for task in tasks:
        difficulty = task.metadata.get("difficulty")
        if difficulty is not None:
            groups[f"k={difficulty}"].append(task)
    groups = dict(sorted(groups.items()))
    groups["all"] = list(tasks)

    def scores(group: Sequence) -> dict[str, float]:
        result = {f"pass@{k}": _mean(pass_at_k(samples, correct[t.task_id], k) for t in group) for k in ks}
        if greedy_correct:
            result["greedy pass@1"] = _mean(float(greedy_correct[t.task_id]) for t in group)
        return result

    by_group = {name: scores(group) for name, group in groups.items()}
    keys = (["greedy pass@1"] if greedy_correct else []) + [f"pass@{k}" for k in ks]
    # At temperature 0 the sampled run is itself greedy: say so in the header.
    header = ["group", "tasks", *(f"greedy {key}" if args.temperature == 0 else key for key in keys)]
    rows = [
        [name, len(group), *(f"{by_group[name][key]:.3f}" for key in keys)] for name, group in groups.items()
    ]
    print_table(rows, header)
    print()
    ended_with_code = sum(e.code is not None for e in episodes)
    # O1-Coder's ASPR: of the episodes that reached their code step, the share that passed.
    episodes_aspr = aspr(episodes)
    summary = [
        ("policy", args.policy),
        ("tasks", f"{len(tasks)} ({args.tasks}, split {resolved_split(args) or 'default'})"),
        ("samples per task", f"{samples} at temperature {args.temperature:g}"),
        ("episodes solved (hidden tests)", f"{sum(correct.values())}/{len(episodes)}"),
        ("mean hidden pass rate", f"{_mean(e.hidden_pass_rate for e in episodes):.3f}"),
        ("ended with code", f"{ended_with_code}/{len(episodes)}"),
        ("ASPR (solved / ended with code)", "n/a" if episodes_aspr is None else f"{episodes_aspr:.3f}"),
        ("tokens generated", str(sum(e.tokens for e in episodes) + sum(e.tokens for e in greedy))),
        ("time", f"{seconds:.1f} s"),
    ]
    if args.out:
        results = {
            "settings": {
                "policy": args.policy,
                "protocol": args.protocol or None,  # as asked; None: the model's own
                "tasks": args.tasks,
                "split": resolved_split(args),
                "task_options": args.task_options,
                "samples": samples,
                "temperature": args.temperature,
                "k": ks,
                "seed": args.seed,
                "max_steps": args.max_steps,
                "max_new_tokens": args.max_new_tokens,
                "ray_address": args.ray_address,
            },
            "pass_at_k": {str(k): by_group["all"][f"pass@{k}"] for k in ks},
            "greedy_pass_at_1": by_group["all"].get("greedy pass@1"),
            "aspr": episodes_aspr,
            "greedy_aspr": aspr(greedy) if greedy else None,
            "by_group": by_group,
            "per_task": [
                {
                    "task_id": t.task_id,
                    "samples": samples,
                    "correct": correct[t.task_id],
                    "greedy_correct": greedy_correct.get(t.task_id),
                }
                for t in tasks
            ],
            "seconds": round(seconds, 2),
        }
        summary.append(("results written to", str(write_json(args.out, results))))
    print_table(summary)
    return 0


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
