"""``codegym sandbox humaneval`` (check the sandbox on HumanEval) and ``codegym sandbox build-image``."""

from __future__ import annotations

import argparse
import sys
import time

from codegym.cli import UsageError, command, print_table
from codegym.cli.common import add_sandbox_option


def add_commands(commands: argparse._SubParsersAction) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="run and build the code-execution sandbox",
        description="Check the code-execution sandbox on HumanEval, or build its Docker image.",
    )
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="SUBCOMMAND")

    humaneval = sandbox_commands.add_parser(
        "humaneval",
        help="run HumanEval's canonical solutions (which must pass) and broken ones (which must not)",
        description="Run HumanEval's 164 canonical solutions, and each one with its body replaced by "
        "`return None`, through a sandbox. Exit status 0 only if every canonical solution passes and "
        "no broken one does.",
    )
    add_sandbox_option(humaneval)
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
    command(humaneval, _humaneval)

    build = sandbox_commands.add_parser(
        "build-image",
        help="build the Docker sandbox image",
        description="Build the Docker image the docker sandbox runs (sandbox/Dockerfile), or with "
        "--offline debootstrap a minimal Debian with python3 and import it.",
    )
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
    command(build, _build_image)


def _humaneval(args: argparse.Namespace) -> int:
    for flag, value in (("--workers", args.workers), ("--limit", args.limit)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")

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
    print_table(
        [
            ("backend", box.name),
            ("canonical solutions passed", f"{canonical_passed}/{len(tasks)}"),
            ("broken solutions passed", f"{wrong_passed}/{len(tasks)} (should be 0)"),
            ("programs per second", f"{len(jobs) / elapsed:.0f}"),
            ("sandbox start-up", f"{warm:.1f} s"),
        ]
    )
    for task, report in zip(tasks, canonical, strict=True):
        if not report.all_passed:
            failed = next(test for test in report.tests if not test.passed) if report.tests else None
            reason = f"{failed.status.value} {failed.message}" if failed else "did not compile"
            print(f"FAILED {task.task_id}: {reason}")
    return 0 if canonical_passed == len(tasks) and wrong_passed == 0 else 1


def _build_image(args: argparse.Namespace) -> int:
    from codegym.sandbox.image import build_image

    build_image(args.tag, offline=args.offline, suite=args.suite, mirror=args.mirror)
    return 0
