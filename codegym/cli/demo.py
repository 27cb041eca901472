"""``codegym demo``: one iteration of O1-Coder's loop on the built-in defaults, in minutes on a CPU.

Synthetic tasks, the tiny policy and PRM, the "auto" sandbox (Docker when the daemon and image are
there, else the local one). It prints pass@1 of greedy (300 held-out tasks), best-of-N and MCTS (the
first 50 of them) before and after the iteration, greedy's gain with its 95% interval, saves a plot, and
says where to look next. Run it again to see every finished
stage skipped; it is ``codegym loop`` with a smaller configuration (``codegym demo --print-config``).
"""

from __future__ import annotations

import argparse
import time

from codegym.cli import command
from codegym.cli.loop import report, small_model_threads, stage_logger


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="one loop iteration on the built-in tiny models: pass@1 before and after, and a plot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", default="runs/demo", help="the run directory (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the tasks, the search and the training")
    parser.add_argument("--sandbox", default="auto", help="auto, local or docker (default: auto)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the demo's loop configuration and exit"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    command(parser, _demo)


def _demo(args: argparse.Namespace) -> int:
    from codegym.loop import to_toml
    from codegym.loop.demo import demo_config, run_demo

    if args.print_config:
        print(to_toml(demo_config(seed=args.seed, sandbox=args.sandbox)), end="")
        return 0
    small_model_threads("tiny")
    started = time.perf_counter()
    result = run_demo(
        args.run_dir,
        seed=args.seed,
        sandbox=args.sandbox,
        progress=not args.no_progress,
        on_stage=stage_logger(),
    )
    report(result, time.perf_counter() - started)
    return 0
