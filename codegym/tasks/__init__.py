"""Task sources: where CodeReason-v0 gets its problems and their tests."""

from __future__ import annotations

from codegym.tasks.task import Task, TaskList, TaskSource, tests_fingerprint

__all__ = ["Task", "TaskList", "TaskSource", "tests_fingerprint"]
