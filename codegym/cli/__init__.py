"""The ``codegym`` command.

Commands (``codegym COMMAND --help`` explains every option):

- ``demo``: one iteration of the loop on the built-in tiny models, pass@1 before and after, a plot;
- ``loop``: O1-Coder's self-improvement loop, all six stages, resumable, from one TOML file;
- ``solve``: solve tasks with a search agent (greedy, sampling, best-of-N, beam, MCTS) and a policy;
- ``eval``: pass@k of a policy on hidden tests (the unbiased estimator);
- ``tcg``: generate and validate test cases for a task set;
- ``search``: MCTS search, written out as reasoning data (trees, step values, solved paths, HTML);
- ``train policy|prm|tcg``: train the three models;
- ``rl ppo|pg``: reinforcement learning on the env (SB3 PPO over candidates, LM policy gradient);
- ``sandbox humaneval|build-image``: check and build the code-execution sandbox;
- ``bench``: list or run the scripts in the source checkout's ``benchmarks/``.
- ``serve``: serve CodeReason-v0 over OpenEnv's HTTP/WebSocket protocol (extra ``serve``).

Each command group is one module of this package with ``add_commands(subparsers)``; :data:`COMMANDS`
lists them, so a new group is one line. A command's parser may be *lazy* (``populate=``): options
generated from a library function that imports torch are built only when that command is parsed or
its help is shown, so ``codegym --help`` stays fast.

Bad arguments end with one line on stderr (``codegym solve: error: ... (see codegym solve --help)``) and
exit status 2; so do the errors a run meets that the user can fix: a :class:`~codegym.errors.UserError`
(a missing file, an unknown task id, a bad configuration key) and a sandbox that cannot start. ``-v``
shows their traceback as well. Anything else (a bug, ``MemoryError``, a failing library) is a crash:
its traceback and exit status 1, never dressed up as the user's mistake.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from codegym.errors import UserError

# Command-group modules of this package, in the order ``codegym --help`` lists them; each module has
# ``add_commands(subparsers)``. A new command group is one more line.
COMMANDS = [
    "demo",  # codegym demo
    "loop",  # codegym loop
    "solve",  # codegym solve
    "evaluate",  # codegym eval
    "tcg",  # codegym tcg
    "search",  # codegym search
    "train",  # codegym train policy|prm|tcg
    "rl",  # codegym rl ppo|pg
    "sandbox",  # codegym sandbox humaneval|build-image
    "bench",  # codegym bench [NAME]
    "serve",  # codegym serve (OpenEnv server)
]

EXIT_USAGE = 2
EXIT_CRASH = 1  # what Python itself exits with on an uncaught exception


class UsageError(UserError):
    """Arguments that parse but do not make sense together; the message names the fix. The command's
    parser reports it, with a pointer to the command's ``--help``."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, and whose options may be built on first use.

    Args:
        populate: called with the parser before it first parses or formats its help; used for options
            generated from a function whose module is heavy to import.
    """

    def __init__(
        self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ensure_populated(self) -> None:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            try:
                populate(self)
            except UserError as exc:  # e.g. the command's optional stack is not installed
                self.error(_one_line(exc))

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_populated()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_populated()
        return super().format_help()

    def format_usage(self) -> str:
        self._ensure_populated()
        return super().format_usage()

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int]) -> None:
    """Make ``run(args) -> exit status`` the action of ``parser``; a :class:`UsageError` it raises is
    reported by that parser."""
    parser.set_defaults(run=run, command_parser=parser)


def print_table(
    rows: Sequence[Sequence[object]], header: Sequence[str] | None = None, *, file: TextIO | None = None
) -> None:
    """Print ``rows`` as aligned columns, two spaces apart; with ``header``, a title row and a rule.

    Example:
        >>> print_table([("tasks", 2), ("solved", "1/2")])
        tasks   2
        solved  1/2
    """
    cells = [[str(cell) for cell in row] for row in rows]
    if header is not None:
        cells.insert(0, [str(cell) for cell in header])
    if not cells:
        return
    columns = max(len(row) for row in cells)
    widths = [max((len(row[i]) for row in cells if i < len(row)), default=0) for i in range(columns)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
        for row in cells
    ]
    if header is not None:
        lines.insert(1, "  ".join("-" * width for width in widths))
    print("\n".join(lines), file=file or sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="codegym",
        description="Code generation as a Gymnasium environment (CodeReason-v0): solve, evaluate, "
        "search, train and benchmark.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # dest is not "verbose": a command's own --verbose (SB3's, in rl ppo) must not overwrite it.
    parser.add_argument(
        "-v",
        "--verbose",
        dest="log_details",
        action="store_true",
        help="log what the sandbox and models do, and show the traceback of an error",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_commands(commands)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the user can fix this"; every other one is a crash."""
    from codegym.sandbox import SandboxUnavailable

    # A sandbox that cannot start (no Docker daemon, no image, no Ray) says which to install or start.
    return (UserError, SandboxUnavailable)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the ``codegym`` command; returns the exit status (argparse's own errors exit with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.log_details else logging.WARNING, format="%(levelname)s %(message)s"
    )
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: its exit status; 2 with one line for an error the user can fix, 1 with the
    traceback for any other exception (a bug is not a usage error)."""
    try:
        return args.run(args)
    except UsageError as exc:
        if args.log_details:
            traceback.print_exc()
        args.command_parser.error(_one_line(exc))
    except _user_errors() as exc:
        if args.log_details:
            traceback.print_exc()
        print(f"codegym: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("codegym: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            f"codegym {args.command}: crashed (the traceback above); this is not a usage error, please "
            "report it with the command line",
            file=sys.stderr,
        )
        return EXIT_CRASH


__all__ = [
    "COMMANDS",
    "CommandParser",
    "UsageError",
    "build_parser",
    "command",
    "main",
    "print_table",
    "run_command",
]
