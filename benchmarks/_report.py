"""The old name of :mod:`harness`, kept for the scripts still directly in ``benchmarks/`` that import it
(``loop_rl.py``, ``rl_pilot.py``, ``rl_speed.py``); it goes when they move to ``perf/`` or ``studies/``."""

from harness import machine, write_json

__all__ = ["machine", "write_json"]
