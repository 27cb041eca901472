"""What a loop stage gets (:class:`StageContext`) and the seed of each iteration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from codegym.loop.config import LoopConfig
    from codegym.sandbox import Sandbox


@dataclass
class StageContext:
    """What a stage gets: the configuration, where to write, and the models and folders before it.

    Attributes:
        config: the loop's configuration.
        iteration: the loop iteration (1-based; 0 is the evaluation of the starting models).
        out: the folder this stage writes into.
        sandbox: the run's shared sandbox.
        policy: the current policy (a path, or the starting spec).
        prm: the current process reward model (a path, or the starting spec).
        done: the finished stages of this iteration, by name, with their folders.
        progress: show progress bars.
    """

    config: LoopConfig
    iteration: int
    out: Path
    sandbox: Sandbox
    policy: str
    prm: str
    done: dict[str, Path] = field(default_factory=dict)
    progress: bool = True

    @property
    def seed(self) -> int:
        """A seed for this iteration, derived from the loop's seed (:func:`iteration_seed`)."""
        return iteration_seed(self.config.seed, self.iteration)


def iteration_seed(seed: int, iteration: int) -> int:
    """The seed of one loop iteration (its task draws, search and training), from the loop's seed."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0] % 2**31)
