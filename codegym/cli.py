"""The ``codegym`` command.

So far:

- ``codegym sandbox humaneval``: run HumanEval's canonical solutions, and a broken variant of each,
  through a sandbox and print a summary;
- ``codegym sandbox build-image``: build the Docker sandbox image, online or offline;
- ``codegym train policy``: supervised fine-tuning of a policy on reasoning episodes (by default the
  tiny model from scratch on the synthetic tasks' reference episodes);
- ``codegym train prm``: a process reward model, point-wise or pair-wise, on step labels;
- ``codegym train tcg``: the model-based test case generator, SFT then DPO.

Training options are made from the training function's own keyword arguments and docstring
(:mod:`codegym.cli_args`), so ``--help`` and the library cannot drift apart.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from codegym.sandbox import BACKENDS, SandboxError


def _sandbox_humaneval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from codegym.sandbox import make_sandbox
    from codegym.tasks.humaneval import broken_program, load_humaneval

    tasks = list(load_humaneval())
    if args.limit is not None:
        tasks = tasks[: args.limit]
    # The canonical solutions must pass their hidden tests; the same solutions with their body replaced
    # by `return None` must not: a harness that passes both proves nothing.
    jobs = [(task.reference_solution, task.hidden_tests) for task in tasks]
    jobs += [(broken_program(task), task.hidden_tests) for task in tasks]
    started = time.perf_counter()
    with make_sandbox(args.sandbox, workers=args.workers) as box:
        warm = time.perf_counter() - started
        print(f"sandbox: {box.name} ({', '.join(box.isolation)})", file=sys.stderr)
        reports = []
        batch = max(1, args.workers or 2) * 8
        run_started = time.perf_counter()
        with tqdm(total=len(jobs), desc="HumanEval", unit="program", file=sys.stderr) as bar:
            for start in range(0, len(jobs), batch):
                chunk = jobs[start : start + batch]
                reports += box.run_batch(chunk, timeout_s=args.timeout_s)
                bar.update(len(chunk))
        elapsed = time.perf_counter() - run_started
    canonical, wrong = reports[: len(tasks)], reports[len(tasks) :]
    canonical_passed = sum(r.all_passed for r in canonical)
    wrong_passed = sum(r.all_passed for r in wrong)
    rows = [
        ("backend", box.name),
        ("canonical solutions passed", f"{canonical_passed}/{len(tasks)}"),
        ("broken solutions passed", f"{wrong_passed}/{len(tasks)} (should be 0)"),
        ("programs per second", f"{len(jobs) / elapsed:.0f}"),
        ("sandbox start-up", f"{warm:.1f} s"),
    ]
    _print_table(rows)
    for task, report in zip(tasks, canonical, strict=True):
        if not report.all_passed:
            failed = next(test for test in report.tests if not test.passed) if report.tests else None
            reason = f"{failed.status.value} {failed.message}" if failed else "did not compile"
            print(f"FAILED {task.task_id}: {reason}")
    return 0 if canonical_passed == len(tasks) and wrong_passed == 0 else 1


def _sandbox_build_image(args: argparse.Namespace) -> int:
    from codegym.sandbox.image import build_image

    build_image(args.tag, offline=args.offline, suite=args.suite, mirror=args.mirror)
    return 0


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))


def _train_policy(args: argparse.Namespace) -> int:
    from codegym.cli_args import function_kwargs
    from codegym.models.train_policy import train_policy

    result = train_policy(args.out, **function_kwargs(args, train_policy))
    _print_table(
        [
            ("saved to", result.out_dir),
            ("episodes", str(result.examples)),
            ("optimizer steps", str(result.steps)),
            ("parameters", f"{result.parameters:,}"),
            ("final loss", f"{result.final_loss:.4f}"),
            ("training time", f"{result.seconds:.0f} s"),
        ]
    )
    return 0


def _train_prm(args: argparse.Namespace) -> int:
    from codegym.cli_args import function_kwargs
    from codegym.models.train_prm import train_prm

    result = train_prm(args.out, **function_kwargs(args, train_prm))
    rows = [
        ("saved to", str(result.out_dir)),
        ("objective", f"{result.objective} ({result.labels} labels)"),
        ("training examples", str(result.examples)),
        ("optimizer steps", str(result.optimizer_steps)),
        ("final loss", f"{result.final_loss:.4f}"),
        ("training time", f"{result.train_seconds:.0f} s"),
    ]
    if result.evaluation is not None:
        rows += [
            ("held-out step AUC", f"{result.evaluation.auc:.3f}"),
            ("sibling pair accuracy", f"{result.evaluation.pair_accuracy:.3f}"),
        ]
    _print_table(rows)
    return 0


def _train_tcg(args: argparse.Namespace) -> int:
    from codegym.cli_args import function_kwargs
    from codegym.tcg.train_tcg import train_tcg

    result = train_tcg(args.out, **function_kwargs(args, train_tcg))
    rows = [("saved to", str(result.out_dir)), ("SFT examples", str(result.sft_examples))]
    rows += [("DPO pairs", str(result.dpo_pairs))]
    rows += [
        (f"validity after {stage}", f"{evaluation.validity_rate:.1%}")
        for stage, evaluation in result.evaluations.items()
    ]
    rows += [("training time", f"{result.seconds.get('total', 0.0):.0f} s")]
    _print_table(rows)
    return 0


def _add_train_commands(commands: argparse._SubParsersAction) -> None:
    from codegym.cli_args import add_function_arguments
    from codegym.models.train_policy import train_policy

    train = commands.add_parser(
        "train", help="train the policy, the process reward model or the test generator"
    )
    train_commands = train.add_subparsers(dest="train_command", required=True, metavar="MODEL")
    policy = train_commands.add_parser(
        "policy",
        help="SFT a policy on reasoning episodes (TRL SFTTrainer)",
        description="Supervised fine-tuning on whole reasoning episodes. With no --base, builds the "
        "built-in tiny model from scratch and trains it on the synthetic tasks' reference episodes "
        "(this is how the shipped tiny-policy checkpoint was made: --out "
        "codegym/models/checkpoints/tiny-policy).",
    )
    policy.add_argument(
        "--out", default="runs/policy", help="where the model is saved (default: %(default)s)"
    )
    add_function_arguments(policy, train_policy, skip=("episodes",))
    policy.set_defaults(run=_train_policy)

    from codegym.models.train_prm import train_prm

    prm = train_commands.add_parser(
        "prm",
        help="train a process reward model on step labels (point-wise or pair-wise)",
        description="Train a PRM: point-wise on hard or soft step labels, or pair-wise (Bradley-Terry) on "
        "sibling steps. Without --data, steps of synthetic tasks are labelled by execution. With the "
        "defaults this rebuilds the shipped tiny-prm checkpoint (--out codegym/models/checkpoints/tiny-prm).",
    )
    prm.add_argument("--out", default="runs/prm", help="where the PRM is saved (default: %(default)s)")
    add_function_arguments(prm, train_prm)
    prm.set_defaults(run=_train_prm)

    from codegym.tcg.train_tcg import train_tcg

    tcg = train_commands.add_parser(
        "tcg",
        help="train a model-based test case generator: SFT, then DPO against shuffled outputs",
        description="O1-Coder's TCG training: SFT on the tasks' own test cases, then DPO with chosen = "
        "correct cases and rejected = the same inputs with shuffled outputs; validity is measured on "
        "held-out synthetic tasks. With the defaults this rebuilds the shipped tiny-tcg checkpoint "
        "(--out codegym/models/checkpoints/tiny-tcg).",
    )
    tcg.add_argument("--out", default="runs/tcg", help="where the model is saved (default: %(default)s)")
    add_function_arguments(tcg, train_tcg)
    tcg.set_defaults(run=_train_tcg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegym", description="Code generation as a Gymnasium environment."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the sandbox and models do")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = commands.add_parser("sandbox", help="run and build the code-execution sandbox")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="SUBCOMMAND")

    humaneval = sandbox_commands.add_parser(
        "humaneval",
        help="run HumanEval's canonical solutions (which must pass) and broken ones (which must not)",
    )
    humaneval.add_argument(
        "--sandbox",
        choices=BACKENDS,
        default="auto",
        help="which sandbox: docker if available under auto (default: %(default)s)",
    )
    humaneval.add_argument(
        "--workers", type=int, default=None, help="programs run at once (default: one per CPU core)"
    )
    humaneval.add_argument(
        "--limit", type=int, default=None, help="only the first N problems (default: all 164)"
    )
    humaneval.add_argument(
        "--timeout-s",
        type=float,
        default=3.0,
        help="wall-clock limit per test, in seconds (default: %(default)s)",
    )
    humaneval.set_defaults(run=_sandbox_humaneval)

    build = sandbox_commands.add_parser("build-image", help="build the Docker sandbox image")
    build.add_argument(
        "--offline",
        action="store_true",
        help="no image registry: debootstrap a minimal Debian with python3 and docker import it "
        "(needs root and debootstrap)",
    )
    build.add_argument("--tag", default="codegym-sandbox:latest", help="image tag (default: %(default)s)")
    build.add_argument(
        "--suite", default="bookworm", help="Debian release for --offline (default: %(default)s)"
    )
    build.add_argument(
        "--mirror",
        default=None,
        help="Debian mirror for --offline (default: the one apt uses on this machine)",
    )
    build.set_defaults(run=_sandbox_build_image)
    _add_train_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    try:
        return args.run(args)
    except (SandboxError, PermissionError, FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"codegym: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codegym: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
