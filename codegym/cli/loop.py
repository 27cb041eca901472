"""``codegym loop``: O1-Coder's six-step self-improvement loop, resumable, from one configuration file.

``codegym loop --print-config > loop.toml`` writes every setting with its default and meaning; ``codegym
loop --config loop.toml --run-dir runs/mine`` runs it (again: it resumes, skipping finished stages);
``--until 1/search`` stops after one stage, so the stages can be run one at a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from codegym.cli import UsageError, command, print_table

# The few numbers worth a line in the log, per stage.
_HEADLINES = {
    "tcg": ("tasks", "tests_kept", "validity_rate"),
    "search": ("tasks", "solved_visible", "solved_hidden", "solved_paths", "nodes"),
    "sft": ("episodes", "steps", "skipped"),
    "prm": ("examples", "heldout_auc"),
    "rl": ("iterations", "first_mean_reward", "last_mean_reward", "skipped"),
    "eval": (),
}


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "loop",
        help="run O1-Coder's self-improvement loop (TCG, MCTS data, SFT, PRM, RL, evaluation), resumably",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        populate=_loop_options,
    )
    command(parser, _loop)


def _loop_options(parser: argparse.ArgumentParser) -> None:
    """The options; built on first use, since the overridable keys' help is the configuration's own."""
    from codegym.loop.config import LoopConfig
    from codegym.options import field_docs

    docs = field_docs(LoopConfig)
    parser.add_argument(
        "--config", default=None, help="the TOML configuration (default: the built-in defaults)"
    )
    parser.add_argument("--run-dir", default="runs/loop", help="the run directory (default: runs/loop)")
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help=f"{docs['iterations']} (overrides the file; may grow to extend a run)",
    )
    parser.add_argument("--sandbox", default=None, help=f"{docs['sandbox']} (overrides the file)")
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help=f"{docs['ray_address']} (overrides the file; a run may move between one process and Ray: "
        "the results are the same)",
    )
    parser.add_argument(
        "--until",
        default=None,
        metavar="ITERATION/STAGE",
        help="stop after this stage, e.g. 1/search (stages: tcg, search, sft, prm, rl, eval)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the configuration (defaults or --config) as TOML and exit",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def small_model_threads(policy: str) -> None:
    """One torch thread for the tiny models, unless OMP_NUM_THREADS says otherwise: they gain nothing
    from a second one, and on a small shared CPU it spin-waits against the sandbox (up to 30x slower)."""
    import os

    if policy == "tiny" and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


def _until(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    iteration, _, stage = text.partition("/")
    if not iteration.isdigit() or not stage:
        raise UsageError(f"--until takes ITERATION/STAGE such as 1/search, got {text!r}")
    return int(iteration), stage


def _loop(args: argparse.Namespace) -> int:
    from codegym.loop import load_config, run_loop, to_toml

    config = load_config(
        args.config, iterations=args.iterations, sandbox=args.sandbox, ray_address=args.ray_address
    )
    if args.print_config:
        print(to_toml(config), end="")
        return 0
    small_model_threads(config.policy)
    started = time.perf_counter()
    result = run_loop(
        config,
        args.run_dir,
        progress=not args.no_progress,
        on_stage=stage_logger(),
        until=_until(args.until),
    )
    report(result, time.perf_counter() - started)
    return 0


def stage_logger(file=None):
    """An ``on_stage`` callback that prints one line per stage event to stderr."""
    out = file or sys.stderr

    def log(label: str, event: str, metrics: dict[str, Any] | None) -> None:
        if event == "start":
            print(f"[{label}] running", file=out, flush=True)
        elif event == "stale":
            print(f"[{label}] made from an earlier stage's old outputs: set aside, running again", file=out)
        elif event in ("skip", "done"):
            name = label.rsplit("-", 1)[-1]
            numbers = ", ".join(
                f"{key}={_short(metrics[key])}" for key in _HEADLINES.get(name, ()) if key in metrics
            )
            if isinstance(metrics.get("check"), dict):
                check = metrics["check"]
                numbers += f"; check {check['metric']} {check['before']:.3f} -> {check['after']:.3f}"
                numbers += " (rolled back)" if check["rolled_back"] else ""
            if name == "eval":
                numbers = ", ".join(
                    f"{agent} pass@1={r['pass@1']:.3f}" for agent, r in metrics["agents"].items()
                )
            verb = (
                "finished before, skipped"
                if event == "skip"
                else f"done in {metrics.get('seconds', 0):.0f} s"
            )
            print(f"[{label}] {verb}: {numbers}", file=out, flush=True)

    return log


def _short(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def report(result, seconds: float) -> None:
    """The before/after table, the gains with their intervals, and where to look next."""
    from codegym.loop.stats import Gain

    by_iteration = result.summary["pass@1_by_iteration"]
    iterations = list(by_iteration)
    agents = list(by_iteration[iterations[0]])
    header = ["pass@1 (held-out, hidden tests)"] + [
        "before" if i == "0" else f"after iteration {i}" for i in iterations
    ]
    rows = [[agent] + [f"{by_iteration[i][agent]:.3f}" for i in iterations] for agent in agents]
    tasks = {
        agent: result.summary["stages"]["iter-0/6-eval"]["agents"][agent].get("tasks")
        for agent in agents
        if "iter-0/6-eval" in result.summary["stages"]
    }
    for row in rows:
        if tasks.get(row[0]):
            row[0] = f"{row[0]} ({tasks[row[0]]} tasks)"
    print()
    print_table(rows, header)
    gains = result.summary.get("gain_by_iteration", {})
    if gains:
        last = list(gains)[-1]
        for agent, gain in gains[last].items():
            print(f"{agent} gain after iteration {last}: {Gain(**gain)}")
    for label in result.summary.get("rolled_back", []):
        check = result.summary["stages"][label]["check"]
        print(
            f"{label} rolled back: its {check['metric']} went from {check['before']:.3f} to {check['after']:.3f}"
            " on its check, so the next stage used its input"
        )
    run_dir = Path(result.run_dir)
    print(
        f"\n{len(result.ran)} stages run, {len(result.skipped)} skipped as finished, in {seconds / 60:.1f} min."
        f"\nWhere to look next:"
        f"\n  {run_dir / 'summary.png'}   pass@1 before and after, as a plot"
        f"\n  {run_dir / 'summary.json'}  every stage's metrics"
        f"\n  {run_dir}/iter-1/2-search/html/  MCTS trees to read in a browser"
        f"\n  {run_dir / 'config.toml'}   the configuration: edit a copy and run codegym loop --config"
        f"\n  final policy: {result.policy}"
    )
