"""Running the loop: stages in order under one run directory, finished stages skipped, crashes resumed.

Layout of a run directory::

    config.toml                 the configuration (a copy; resuming with a different one is refused)
    iter-0/6-eval/              the starting policy evaluated (the "before")
    iter-1/1-tcg/ ... 6-eval/   one folder per stage, each with its outputs and metrics.json
    summary.json, summary.png   every stage's metrics, and pass@1 before and after each iteration

A stage runs in ``<folder>.partial`` and is renamed to ``<folder>`` when its ``metrics.json`` is written,
so a folder without ``.partial`` is finished and is skipped next time. After a crash or Ctrl-C, running
the same command again starts the interrupted stage over (its half-written folder is deleted), except
``rl``, which resumes from its own checkpoints inside the folder. Once a stage runs, the later stages
that exist were made from its old outputs: they are renamed ``<folder>.stale-<time>`` and run again.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from codegym.errors import UserError
from codegym.loop.config import LoopConfig, differences, load_config, to_toml
from codegym.loop.context import StageContext
from codegym.loop.stages import RESUMABLE, STAGES
from codegym.loop.stats import paired_gain
from codegym.loop.task_sets import eval_groups

logger = logging.getLogger("codegym.loop")


@dataclass(frozen=True)
class LoopResult:
    """What :func:`run_loop` did.

    Attributes:
        run_dir: the run directory.
        policy: the final policy's folder (or the starting spec if no stage changed it).
        prm: the final PRM's folder (or the starting spec).
        ran: the stage folders run by this call (``iter-1/2-search``, ...).
        skipped: the stage folders found finished and skipped.
        summary: what ``summary.json`` holds.
    """

    run_dir: Path
    policy: str
    prm: str
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    summary: dict[str, Any]


def stage_folder(run_dir: Path, iteration: int, name: str) -> Path:
    number = list(STAGES).index(name) + 1
    return run_dir / f"iter-{iteration}" / f"{number}-{name}"


def run_loop(
    config: LoopConfig,
    run_dir: str | PathLike[str],
    *,
    progress: bool = True,
    on_stage: Any = None,
    until: tuple[int, str] | None = None,
) -> LoopResult:
    """Run (or resume) the loop in ``run_dir``; see the module docstring.

    Args:
        config: the configuration (:func:`codegym.loop.load_config`).
        run_dir: the run directory (made if missing).
        progress: show progress bars.
        on_stage: called as ``on_stage(folder_name, event, metrics)`` with event ``"start"``, ``"skip"``
            (finished before), ``"stale"`` (moved aside: an earlier stage was rerun) or ``"done"``.
        until: ``(iteration, stage)``: stop after that stage (run the loop one stage at a time); the
            summary then covers the stages run so far.

    Raises:
        UserError: ``run_dir`` holds a run with a different configuration (other than ``iterations``,
            which may grow to extend a run).
    """
    from codegym.sandbox import make_sandbox

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved_path = run_dir / "config.toml"
    if saved_path.exists():
        # iterations may grow; ray_address only says where the stages run, not what they compute.
        changed = [
            key
            for key in differences(load_config(saved_path), config)
            if key not in ("iterations", "ray_address")
        ]
        if changed:
            raise UserError(
                f"{run_dir} holds a run with a different configuration ({', '.join(changed)} differ); "
                "use a new run directory, or the saved config.toml to resume this one"
            )
    saved_path.write_text(to_toml(config))
    notify = on_stage or (lambda *args: None)
    ran: list[str] = []
    skipped: list[str] = []
    policy, prm = config.policy, config.prm
    stage_metrics: dict[str, dict[str, Any]] = {}

    rerunning = False  # once a stage runs, every later stage must run too: its inputs changed

    def run_stage(iteration: int, name: str, done: dict[str, Path]) -> dict[str, Any]:
        nonlocal rerunning
        folder = stage_folder(run_dir, iteration, name)
        label = str(folder.relative_to(run_dir))
        if rerunning and folder.exists():
            # Built from inputs that have just been remade: kept aside (nothing is deleted), then rerun.
            folder.rename(folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"))
            notify(label, "stale", None)
        if (folder / "metrics.json").is_file():
            metrics = json.loads((folder / "metrics.json").read_text())
            skipped.append(label)
            notify(label, "skip", metrics)
        else:
            partial = folder.with_name(folder.name + ".partial")
            if partial.exists() and name not in RESUMABLE:
                shutil.rmtree(partial)  # a stage interrupted midway starts over
            partial.mkdir(parents=True, exist_ok=True)
            notify(label, "start", None)
            context = StageContext(config, iteration, partial, box, policy, prm, dict(done), progress)
            started = time.perf_counter()
            metrics = STAGES[name](context)
            metrics = _json_safe({**metrics, "seconds": round(time.perf_counter() - started, 1)})
            (partial / "metrics.json").write_text(json.dumps(metrics, indent=1))
            if folder.exists():  # a folder without metrics.json is not a finished stage: keep it aside
                folder.rename(folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"))
            partial.rename(folder)
            rerunning = True
            ran.append(label)
            notify(label, "done", metrics)
        done[name] = folder
        stage_metrics[label] = metrics
        return metrics

    if until is not None and (until[1] not in STAGES or not 1 <= until[0] <= config.iterations):
        raise UserError(
            f"until={until!r}: give an iteration in 1..{config.iterations} and a stage of {list(STAGES)}"
        )
    with make_sandbox(config.sandbox) as box:
        run_stage(0, "eval", {})
        for iteration in range(1, config.iterations + 1):
            done: dict[str, Path] = {}
            for name in STAGES:
                metrics = run_stage(iteration, name, done)
                if "model" in metrics and name in ("sft", "rl"):
                    policy = str(done[name] / metrics["model"])
                elif "model" in metrics and name == "prm":
                    prm = str(done[name] / metrics["model"])
                if until == (iteration, name):
                    break
            if until is not None and until[0] == iteration:
                break
    summary = _summary(config, stage_metrics, policy, prm)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_summary(summary, run_dir / "summary.png")
    return LoopResult(run_dir, policy, prm, tuple(ran), tuple(skipped), summary)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None: JSON has no such numbers (a loss over zero logged steps is NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _summary(config: LoopConfig, stage_metrics: dict[str, dict], policy: str, prm: str) -> dict[str, Any]:
    evals = {
        int(label.split("/")[0].removeprefix("iter-")): metrics["agents"]
        for label, metrics in stage_metrics.items()
        if label.endswith("-eval")
    }
    groups = eval_groups(config)
    gains = {
        str(i): {
            name: asdict(paired_gain(evals[0][name]["passed"], r["passed"], groups[: len(r["passed"])]))
            for name, r in evals[i].items()
            if "passed" in r and name in evals[0] and "passed" in evals[0][name]
        }
        for i in sorted(evals)
        if i > 0 and 0 in evals
    }
    rolled_back = [
        label
        for label, metrics in stage_metrics.items()
        if isinstance(metrics.get("check"), dict) and metrics["check"].get("rolled_back")
    ]
    return {
        "seed": config.seed,
        "iterations": config.iterations,
        "final_policy": policy,
        "final_prm": prm,
        "pass@1_by_iteration": {
            str(i): {name: r["pass@1"] for name, r in evals[i].items()} for i in sorted(evals)
        },
        "gain_by_iteration": gains,  # after - before on the same tasks, with a 95% interval (codegym.loop.stats)
        "rolled_back": rolled_back,
        "stages": stage_metrics,
    }


def plot_summary(summary: dict[str, Any], path: Path) -> None:
    """pass@1 on the held-out tasks for each agent, after each iteration (0 = before the loop)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_iteration = summary["pass@1_by_iteration"]
    iterations = list(by_iteration)
    agents = list(by_iteration[iterations[0]])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(iterations)
    for offset, iteration in enumerate(iterations):
        values = [by_iteration[iteration][agent] for agent in agents]
        xs = [i + offset * width for i in range(len(agents))]
        bars = ax.bar(
            xs, values, width, label="before the loop" if iteration == "0" else f"after iteration {iteration}"
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([i + width * (len(iterations) - 1) / 2 for i in range(len(agents))], agents)
    ax.set(ylabel="pass@1 on held-out tasks (hidden tests)", ylim=(0, 1))
    ax.set_title(f"O1-Coder loop, seed {summary['seed']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
