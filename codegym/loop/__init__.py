"""O1-Coder's self-improvement loop, all six steps, resumable under one run directory.

(1) tests from the TCG, validated against the references; (2) reasoning data from MCTS; (3) policy SFT on
the paths whose code passed every test; (4) PRM training on the trees' step values; (5) RL with process
and outcome rewards in the env; (6) new reasoning data with the updated policy (the next iteration's
search), and an evaluation of pass@1 before and after.

Example:
    >>> from codegym.loop import load_config, run_loop
    >>> result = run_loop(load_config(iterations=1), "runs/loop")  # doctest: +SKIP
    >>> result.summary["pass@1_by_iteration"]  # doctest: +SKIP
"""

from __future__ import annotations

from codegym.loop.config import LoopConfig, load_config, to_toml
from codegym.loop.context import StageContext
from codegym.loop.runner import LoopResult, run_loop, stage_folder
from codegym.loop.stages import STAGES

__all__ = [
    "STAGES",
    "LoopConfig",
    "LoopResult",
    "StageContext",
    "load_config",
    "run_loop",
    "stage_folder",
    "to_toml",
]
