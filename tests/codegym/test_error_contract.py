"""The error contract: a value the caller can fix is refused with UserError, never a bare ValueError.

``codegym`` prints a UserError as one line (exit status 2) and any other exception with its traceback, so
a check of a caller's value that raised a bare ValueError would read as a crash. The scan below fails on
a new ``raise ValueError`` in the library; a ValueError that is not the caller's fault gets its own type
(as the sandbox's FrameError and MalformedDataError) or goes on the allow-list with the reason.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from codegym.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("codegym", "agents", "sandbox")

# (path, line text stripped) of a `raise ValueError` that is allowed, each with the reason. Empty: every
# check of a caller's value raises UserError, and every other ValueError has its own type.
ALLOWED: dict[tuple[str, str], str] = {}


def bare_value_error_raises(source: str) -> list[tuple[int, str]]:
    """(line, text) of each ``raise ValueError`` / ``raise ValueError(...)`` / ``raise builtins.ValueError``."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = raised.id if isinstance(raised, ast.Name) else getattr(raised, "attr", None)
        if name == "ValueError":
            found.append((node.lineno, lines[node.lineno - 1].strip()))
    return found


def test_the_scan_finds_every_form_of_a_bare_value_error():
    source = (
        "import builtins\n"
        "def f(x):\n"
        "    if x: raise ValueError(f'bad {x}')\n"
        "    raise builtins.ValueError\n"
        "def g():\n"
        "    raise UserError('fine')\n"
        "def h():\n"
        "    try:\n        pass\n    except ValueError:\n        raise\n"
    )
    assert sorted(line for line, _ in bare_value_error_raises(source)) == [3, 4]


def test_no_library_code_raises_a_bare_value_error():
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, text in bare_value_error_raises(path.read_text()):
                if (relative, text) not in ALLOWED:
                    offenders.append(f"{relative}:{line}: {text}")
    assert not offenders, (
        "raise codegym.errors.UserError for a value the caller can fix (it is a ValueError too), or a "
        "specific exception type for anything else; allow-list it in this file only with the reason:\n"
        + "\n".join(offenders)
    )


def test_every_allow_listed_raise_still_exists():
    present = {
        (path.relative_to(ROOT).as_posix(), text)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for _, text in bare_value_error_raises(path.read_text())
    }
    assert set(ALLOWED) <= present, f"stale allow-list entries: {sorted(set(ALLOWED) - present)}"


def test_the_modules_shipped_into_a_sandbox_worker_import_only_the_standard_library():
    """The worker runs these modules' source under a bare interpreter (a Docker image has no CodeGym), so
    they cannot raise codegym.errors.UserError; their malformed-input errors have their own types."""
    from codegym.sandbox.base import _SHIPPED_MODULES

    shipped = {f"codegym.sandbox.{name}" for name in _SHIPPED_MODULES}
    for name in _SHIPPED_MODULES:
        tree = ast.parse((ROOT / "sandbox" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("codegym"):
                assert node.module in shipped, (
                    f"sandbox/{name}.py imports {node.module}, which a worker lacks"
                )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("codegym"), f"sandbox/{name}.py imports {alias.name}"


def test_the_sandbox_reaches_user_error_without_importing_the_rest_of_codegym():
    """The sandbox's host side imports codegym.errors (standard library only) and nothing else of
    CodeGym outside codegym.sandbox: it stays a leaf."""
    code = (
        "import sys; import codegym.sandbox as s; s.make_sandbox\n"
        "from codegym.sandbox import factory, base, cases\n"
        "extra = sorted(m for m in sys.modules if m.startswith('codegym.') and not m.startswith('codegym.sandbox')"
        " and m not in ('codegym.errors', 'codegym.lazy'))\n"
        "print(extra)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(
    "call",
    [
        lambda: __import__("codegym.sandbox", fromlist=["x"]).make_sandbox("nope"),
        lambda: __import__("codegym.sandbox", fromlist=["x"]).CallTest("not a name", (), expected=1),
        lambda: __import__("codegym.rewards", fromlist=["x"]).make_reward_scheme("o1coder", gamma=2.0),
        lambda: __import__("codegym.evaluation", fromlist=["x"]).pass_at_k(3, 4, 1),
        lambda: __import__("codegym.tasks", fromlist=["x"]).load_tasks("synthetic", max_opps=2),
    ],
    ids=["sandbox kind", "CallTest entry point", "reward gamma", "pass_at_k counts", "task option"],
)
def test_a_bad_caller_value_is_a_user_error(call):
    with pytest.raises(UserError):
        call()
