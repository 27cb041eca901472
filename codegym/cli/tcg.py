"""``codegym tcg``: generate test cases for a task set and validate them against the references.

The generator is :class:`~codegym.tcg.OracleTCG` (``--generator oracle``: inputs from the signature and
the examples, outputs from the reference) or :class:`~codegym.tcg.ModelTCG` (``tiny``, a local path or a
hub id: a language model writes ``f(args) -> expected`` lines). Either way every proposal runs against
the task's reference in the sandbox and only what it passes is kept. The tables show the validity rate,
the kept tests and why proposals were rejected; ``--out`` writes each task's kept tests as a JSON line.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from typing import Any

from codegym.cli import command, print_table
from codegym.cli.common import (
    add_model_options,
    add_sandbox_option,
    add_seed_option,
    add_task_options,
    batches,
    check_model_spec,
    model_options,
    positive_int,
    rate,
    select_tasks,
    write_jsonl,
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tcg",
        help="generate test cases for tasks and validate them against the reference solutions",
        description="Generate up to --n test cases per task with a test case generator, keep those the "
        "task's reference solution passes (O1-Coder's validation), and report the validity rate, the kept "
        "tests and the rejection reasons. Example: codegym tcg --generator oracle --tasks humaneval --n 10 "
        "--out tests.jsonl",
    )
    parser.add_argument(
        "--generator",
        default="oracle",
        metavar="{oracle,tiny,PATH}",
        help="oracle: inputs from the signature and examples, outputs from the reference (no model); "
        "tiny: the built-in model-based generator; smollm2-135m-instruct: the built-in real model, "
        "untrained as a TCG; or a local path / hub id of a model trained with codegym train tcg "
        "(default: %(default)s)",
    )
    add_model_options(parser)
    parser.add_argument(
        "--n", type=positive_int, default=10, help="the most tests kept per task (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="tasks per generation batch (one sandbox batch; one model call for a model generator); "
        "the progress bar advances per batch (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=3.0,
        help="time limit per test when the reference runs (default: %(default)s)",
    )
    add_seed_option(parser)
    add_sandbox_option(parser)
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="write one JSON line per task: the kept tests (as a readable call and as typed plain data), "
        "the counts and the rejection reasons (default: none)",
    )
    add_task_options(parser, endless_default=100)
    command(parser, _tcg)


def reason_kind(message: str) -> str:
    """Group a rejection message: literal values and numbers are blanked so alike failures count together."""
    if "no result within" in message or "wall clock" in message:
        return "timeout"
    if re.search(r"returned .*, expected ", message):
        return "claimed output differs from the reference's"
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", message)
    text = re.sub(r"-?\d+(\.\d+)?", "N", text)
    return f"reference failed: {text[:70]}"


def kept_test_record(test: Any) -> dict[str, Any]:
    from codegym.sandbox.plain import encode_plain

    arguments = [repr(a) for a in test.args] + [f"{k}={v!r}" for k, v in (test.kwargs or {}).items()]
    return {
        "call": f"{test.entry_point}({', '.join(arguments)})",
        "expected_repr": repr(test.expected),
        "entry_point": test.entry_point,
        # typed plain data (tuples, sets, bytes kept): codegym.sandbox.plain.decode_plain reads it back
        "args": encode_plain(list(test.args)),
        "kwargs": encode_plain(dict(test.kwargs or {})),
        "expected": encode_plain(test.expected),
        "equality": test.equality,
    }


def _make_generator(args: argparse.Namespace, box: Any):
    from codegym.tcg import ModelTCG, OracleTCG

    options = {"sandbox": box, "seed": args.seed, "timeout_s": args.timeout_s, "skip_unsupported": True}
    if args.generator == "oracle":
        return OracleTCG(**options)
    policy_options = model_options(args, args.generator)
    return ModelTCG(args.generator, policy_options=policy_options or None, **options)


def _tcg(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from codegym.sandbox import make_sandbox

    if args.generator != "oracle":
        check_model_spec("--generator", args.generator)
    tasks = select_tasks(args)
    started = time.perf_counter()
    generations = []
    with make_sandbox(args.sandbox) as box:
        generator = _make_generator(args, box)
        with generator, tqdm(total=len(tasks), desc="generating tests", unit="task", file=sys.stderr) as bar:
            for batch in batches(tasks, args.batch_size):
                generations += generator.generate_reports(list(batch), args.n)
                bar.update(len(batch))
    seconds = time.perf_counter() - started

    ran = [g for g in generations if g.skipped is None]
    proposed = sum(g.proposed for g in ran)
    valid = sum(g.valid for g in ran)
    kept = sum(len(g.tests) for g in ran)
    short = sum(len(g.tests) < args.n for g in ran)
    rows = [
        ("generator", args.generator),
        ("tasks", f"{len(tasks)} ({args.tasks})"),
        ("skipped (unsupported)", str(len(tasks) - len(ran))),
        ("proposed", str(proposed)),
        ("valid (reference passed)", str(valid)),
        ("validity rate", f"{valid / proposed:.1%}" if proposed else "-"),
        ("duplicates dropped", str(sum(g.duplicates for g in ran))),
        ("tests kept", f"{kept} ({kept / len(ran):.1f} per task)" if ran else "0"),
        (f"tasks with fewer than {args.n}", rate(short, len(ran))),
        ("time", f"{seconds:.1f} s"),
    ]
    reasons = Counter(reason_kind(message) for g in ran for message in g.rejected_reasons)
    examples: dict[str, str] = {}
    for message in (message for g in ran for message in g.rejected_reasons):
        examples.setdefault(reason_kind(message), message)
    skipped = Counter(g.skipped.split(";")[0][:80] for g in generations if g.skipped is not None)
    if args.out:
        records = [
            {
                "task_id": g.task_id,
                "tests": [kept_test_record(test) for test in g.tests],
                "proposed": g.proposed,
                "valid": g.valid,
                "duplicates": g.duplicates,
                "validity_rate": g.validity_rate,
                "rejected_reasons": list(g.rejected_reasons),
                "skipped": g.skipped,
            }
            for g in generations
        ]
        rows.append(("tests written to", str(write_jsonl(args.out, records))))
    print_table(rows)
    rejected = proposed - valid
    if reasons:
        print()
        print_table(
            [
                (kind, count, f"{count / rejected:.1%}", examples[kind][:60])
                for kind, count in reasons.most_common(8)
            ],
            ["rejection reason", "proposals", "share", "example"],
        )
    if skipped:
        print()
        print_table(list(skipped.most_common(5)), ["why tasks were skipped", "tasks"])
    return 0
