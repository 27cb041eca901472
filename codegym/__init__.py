"""CodeGym: code generation as a Gymnasium environment, after O1-Coder."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
