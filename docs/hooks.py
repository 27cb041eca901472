"""MkDocs hook: writes the reference pages from the code itself, at build time, so they cannot go stale.

- ``reference/cli.md``: every ``codegym`` command's ``--help``, walked from :func:`codegym.cli.build_parser`.
- ``reference/api/*.md``: one page per public package, one mkdocstrings entry per name in its ``__all__``.

The pages are added to the build in memory (nothing is written into ``docs/``). ``tests/test_docs.py`` reads
:data:`GENERATED` to know that links to them are good.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shutil

from mkdocs.plugins import event_priority

# page (relative to docs/) -> (title, public packages whose __all__ it documents, a sentence saying what it is)
API_PAGES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "reference/api/codegym.md": (
        "codegym",
        ("codegym", "codegym.steps", "codegym.spaces", "codegym.evaluation", "codegym.distributed"),
        "The environment, its text format and spaces, scoring (pass@k, ASPR), playing tasks with agents here "
        "or on Ray workers, and Ray's chunked map. `import codegym` registers `CodeReason-v0`.",
    ),
    "reference/api/play.md": (
        "codegym.play",
        ("codegym.play",),
        "Playing tasks with agents in this process or on Ray workers, and rollouts on Ray workers.",
    ),
    "reference/api/tasks.md": ("codegym.tasks", ("codegym.tasks",), "Tasks and task sources."),
    "reference/api/rewards.md": (
        "codegym.rewards",
        ("codegym.rewards",),
        "The process reward model protocol, outcome functions and reward schemes.",
    ),
    "reference/api/models.md": (
        "codegym.models",
        ("codegym.models",),
        "Policies, prompt protocols, the process reward model, the built-in models.",
    ),
    "reference/api/tcg.md": (
        "codegym.tcg",
        ("codegym.tcg",),
        "Test case generators and the known-wrong mutants that measure them.",
    ),
    "reference/api/sandbox.md": (
        "codegym.sandbox",
        ("codegym.sandbox",),
        "Running untrusted programs against tests (installed from the repository's `sandbox/` folder).",
    ),
    "reference/api/agents.md": (
        "codegym.agents",
        ("codegym.agents",),
        "Consumers of the env: search agents and their registry, `rollout`, search trees as data, the env "
        "as stable-baselines3 sees it (installed from `agents/`).",
    ),
    "reference/api/training.md": (
        "codegym.training",
        ("codegym.training", "codegym.training.run"),
        "Every trainer (policy SFT, PRM, TCG, policy gradient, PPO) and the run folder they share.",
    ),
    "reference/api/loop.md": ("codegym.loop", ("codegym.loop",), "O1-Coder's self-improvement loop."),
    "reference/api/integrations.md": (
        "codegym.integrations",
        ("codegym.integrations.trl", "codegym.integrations.openenv", "codegym.integrations.verl"),
        "TRL, OpenEnv and verl. Each loads its framework only when used.",
    ),
    "reference/api/errors.md": (
        "codegym.errors",
        ("codegym.errors", "codegym.options"),
        "The errors a caller can fix, and how settings become command-line options.",
    ),
}
CLI_PAGE = "reference/cli.md"
GENERATED = (CLI_PAGE, *API_PAGES)

# Modules without __all__: the names documented for them.
EXPLICIT_MEMBERS: dict[str, tuple[str, ...]] = {
    "codegym.steps": ("render_state", "policy_prompt", "classify_step"),
    "codegym.spaces": ("UnicodeText",),
    "codegym.evaluation": ("pass_at_k", "aspr", "summarize"),
    "codegym.distributed": ("map_chunks",),
    "codegym.integrations.verl": ("compute_score",),
}


def public_names(package: str) -> list[str]:
    module = importlib.import_module(package)
    names = EXPLICIT_MEMBERS.get(package) or getattr(module, "__all__", None)
    if names is None:
        raise RuntimeError(f"{package} has no __all__: name its documented members in EXPLICIT_MEMBERS")
    return list(names)


def _entry(package: str, name: str, level: int) -> list[str]:
    """Markdown for ``package.name``: a mkdocstrings entry for a class or function of CodeGym's (by the
    module that defines it), else the value itself (constants, type aliases)."""
    obj = getattr(importlib.import_module(package), name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        defined_in = getattr(obj, "__module__", "") or ""
        if defined_in.startswith("codegym") and getattr(obj, "__qualname__", name) == name:
            return [f"::: {defined_in}.{name}", "    options:", f"      heading_level: {level}", ""]
    value = repr(obj)
    if len(value) > 400:
        value = value[:400] + " ..."
    return [f"{'#' * level} `{name}`", "", "```python", f"{package}.{name} = {value}", "```", ""]


def api_page(title: str, packages: tuple[str, ...], about: str) -> str:
    lines = [
        f"# {title}",
        "",
        about,
        "",
        "Generated from the code's `__all__` and docstrings at build time.",
        "",
    ]
    for package in packages:
        if len(packages) > 1:
            lines += [f"## `{package}`", ""]
        for name in public_names(package):
            lines += _entry(package, name, 3 if len(packages) > 1 else 2)
    return "\n".join(lines)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += list(action.choices.items())
    return found


def cli_page() -> str:
    from codegym.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal's width: fix it for the page
    try:
        lines = [
            "# CLI reference",
            "",
            "Every `codegym` command and its `--help`, generated from the command's own argparse parser "
            "(`codegym.cli.build_parser`) when the site is built.",
            "",
        ]

        def walk(parser: argparse.ArgumentParser, path: str, depth: int) -> None:
            try:
                text = parser.format_help().rstrip()
            except SystemExit as exc:  # a lazy parser whose optional stack is missing reports it and exits
                raise RuntimeError(
                    f"cannot write the help of `{path}` (see the error above): the docs need every extra, "
                    "so build them after `make install`"
                ) from exc
            lines.extend([f"{'#' * depth} `{path}`", "", "```text", text, "```", ""])
            for name, sub in _subcommands(parser):
                walk(sub, f"{path} {name}", min(depth + 1, 4))

        walk(build_parser(), "codegym", 2)
        return "\n".join(lines)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


API_SOURCE = "build/api-src"  # mkdocs.yml's mkdocstrings paths


def lay_out_package(root: str) -> None:
    """Copy the package's Python files under ``root`` in their installed layout: ``codegym/`` with
    ``sandbox/`` and ``agents/`` inside it, as pyproject.toml's package-dir maps them. (Griffe resolves
    symbolic links to their real folder, so links would not do.)"""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    package = os.path.join(repo, root, "codegym")
    shutil.rmtree(package, ignore_errors=True)

    def only_python(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if not n.endswith(".py") and not os.path.isdir(os.path.join(folder, n))]

    shutil.copytree(os.path.join(repo, "codegym"), package, ignore=only_python)
    for name in ("sandbox", "agents"):
        shutil.copytree(os.path.join(repo, name), os.path.join(package, name), ignore=only_python)


_previous_cwd: list[str] = []


# First among the plugins: mkdocstrings reads its search paths in its own on_config, and a path that is not
# there yet (a fresh clone has no build/) is dropped, so griffe would find codegym/ without sandbox/ and agents/.
@event_priority(100)
def on_config(config):
    lay_out_package(API_SOURCE)
    # Griffe looks for a module as a path relative to the working directory before its search paths, and
    # from the repository root that finds codegym/ without sandbox/ and agents/: build from the copy.
    _previous_cwd.append(os.getcwd())
    os.chdir(os.path.join(os.path.dirname(config.config_file_path), API_SOURCE))
    return config


def _restore_cwd() -> None:
    if _previous_cwd:
        os.chdir(_previous_cwd.pop())


def on_post_build(config):
    _restore_cwd()


def on_build_error(error):
    _restore_cwd()


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, CLI_PAGE, content=cli_page()))
    for page, (title, packages, about) in API_PAGES.items():
        files.append(File.generated(config, page, content=api_page(title, packages, about)))
    return files
