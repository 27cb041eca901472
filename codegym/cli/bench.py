"""``codegym bench [NAME] [-- ARGS]``: list the benchmark scripts of the source checkout, or run one.

Benchmarks are scripts in the repository's ``benchmarks/`` folder, grouped in ``benchmarks/perf/`` and
``benchmarks/studies/`` (they print JSON and draw plots; see the README), not part of the installed package: they are found next to the package of an editable
install or a checkout (``Path(codegym.__file__).parents[1] / "benchmarks"``), else in the current
directory's ``benchmarks/``. A script runs with this Python interpreter, from the checkout's root (the
scripts write to ``benchmarks/results/``), with the extra arguments passed through.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

from codegym.cli import UsageError, command, print_table


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="list the benchmark scripts of the source checkout, or run one",
        description="With no NAME, list the scripts in the source checkout's benchmarks/ folder with what "
        "each measures. With NAME, run benchmarks/<group>/NAME.py with this Python, passing every argument after "
        "NAME (or after --) through. Example: codegym bench search_vs_sampling -- --tasks 10 --ops 1",
    )
    parser.add_argument(
        "name", nargs="?", default=None, metavar="NAME", help="the benchmark to run (default: list them)"
    )
    parser.add_argument(
        "extra",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="arguments for the script, e.g. -- --help to see its own options",
    )
    command(parser, _bench)


def candidate_dirs() -> list[Path]:
    """Where ``benchmarks/`` may be: next to the package's source (a checkout), then the current directory."""
    import codegym

    return [Path(codegym.__file__).resolve().parents[1] / "benchmarks", Path.cwd() / "benchmarks"]


def find_benchmarks() -> Path:
    for folder in candidate_dirs():
        if folder.is_dir():
            return folder
    raise UsageError(
        "no benchmarks/ folder found: the benchmarks ship with the source checkout, not the installed "
        "package; clone the repository and run codegym bench from its root"
    )


def script_paths(folder: Path) -> dict[str, Path]:
    """{name: path} for the ``.py`` files in ``folder`` and its subfolders one level down (perf/, studies/)."""
    paths = sorted([*folder.glob("*.py"), *folder.glob("*/*.py")], key=lambda path: path.stem)
    return {
        path.stem: path for path in paths if not path.name.startswith("_") and path.parent.name != "results"
    }


def list_benchmarks(folder: Path) -> dict[str, str]:
    """{name: first line of its docstring} for each script; helper modules other scripts import are left out."""
    sources: dict[str, ast.Module | None] = {}
    for path in script_paths(folder).values():
        try:
            sources[path.stem] = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError, OSError):
            sources[path.stem] = None  # being edited, or not Python we can read: still listed
    imported: set[str] = set()
    for tree in sources.values():
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    described = {}
    for name, tree in sources.items():
        if name in imported:
            continue
        if tree is None:
            described[name] = "(cannot be parsed)"
        else:
            described[name] = ((ast.get_docstring(tree) or "").strip() or "(no docstring)").splitlines()[0]
    return described


def _bench(args: argparse.Namespace) -> int:
    folder = find_benchmarks()
    scripts = list_benchmarks(folder)
    if args.name is None:
        if args.extra:
            raise UsageError("arguments for a benchmark need its NAME first: codegym bench NAME -- ARGS")
        print_table(sorted(scripts.items()), ["benchmark", "what it measures"])
        print(
            f"\n{len(scripts)} benchmark{'s' if len(scripts) != 1 else ''} in {folder}; run one with: codegym bench NAME [-- ARGS]"
        )
        return 0
    name = args.name.removesuffix(".py")
    if name not in scripts:
        raise UsageError(
            f"no benchmark named {args.name!r} in {folder}: choose one of {', '.join(sorted(scripts))}"
        )
    extra = list(args.extra)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    script = script_paths(folder)[name]
    print(f"running {script} {' '.join(extra)}".rstrip(), file=sys.stderr)
    started = time.perf_counter()
    status = subprocess.run([sys.executable, str(script), *extra], cwd=folder.parent, check=False).returncode
    print_table(
        [
            ("benchmark", name),
            ("exit status", str(status)),
            ("time", f"{time.perf_counter() - started:.1f} s"),
        ]
    )
    return status
