"""What every benchmark shares: the machine a result was measured on, and writing the result's JSON.

The scripts live in ``perf/`` (what something costs: speed, memory, throughput) and ``studies/`` (research
experiments: does a method help, and by how much). Each runs as ``python benchmarks/<group>/<name>.py``
from the checkout's root, has a ``main()``, and finds this module by putting ``benchmarks/`` first on
``sys.path``::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
    from harness import machine, write_json
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import codegym


def machine(**extra: Any) -> dict[str, Any]:
    """A result's ``"machine"`` entry: platform, CPU count, Python and codegym versions, and torch's
    version and thread count when torch is loaded (it is not imported here); ``extra`` entries are added."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "codegym": codegym.__version__,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return {**info, **extra}


def write_json(path: str | os.PathLike[str], output: dict[str, Any], *, indent: int = 2) -> str:
    """``output`` as indented JSON at ``path`` (its folder made if missing); returns the JSON text."""
    text = json.dumps(output, indent=indent)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n")
    return text
