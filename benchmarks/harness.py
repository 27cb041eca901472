"""What the loop benchmarks share: the machine a result was measured on, and writing the result's JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The platform, CPU count and Python version, for a result's ``"machine"`` entry."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}


def write_json(path: str | os.PathLike[str], output: dict[str, Any]) -> None:
    """``output`` as indented JSON at ``path`` (its folder made if missing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(output, indent=2))
