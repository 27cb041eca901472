"""Options generated from declarations: a function's keyword arguments and docstring, a dataclass's fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from codegym.options import (
    add_dataclass_arguments,
    add_function_arguments,
    docstring_args,
    field_docs,
    function_kwargs,
    keyword_defaults,
    parse_args,
    plain_text,
)


def example(
    path: str,
    *,
    rate: float = 0.5,
    count: int = 3,
    name: str | None = None,
    fast: bool = False,
    skipped: int = 1,
    objects: list | None = None,
    limit: int | None = None,
) -> None:
    """Do something.

    Args:
        path: positional, never an option.
        rate: how fast,
            over two lines (50% or so).
        count, skipped: how many.
        fast: go fast.

    Returns:
        nothing.
    """


def test_the_args_section_is_read_with_continuations_and_shared_lines():
    assert docstring_args(example) == {
        "path": "positional, never an option.",
        "rate": "how fast, over two lines (50% or so).",
        "count": "how many.",
        "skipped": "how many.",
        "fast": "go fast.",
    }


def test_keyword_arguments_become_typed_options():
    parser = argparse.ArgumentParser()
    add_function_arguments(parser, example, skip=("skipped",))
    args = parser.parse_args(["--rate", "0.25", "--count", "7", "--name", "x", "--fast", "--limit", "4"])
    assert function_kwargs(args, example, skip=("skipped",)) == {
        "rate": 0.25,
        "count": 7,
        "name": "x",
        "fast": True,
        "objects": None,
        "limit": 4,
    }
    defaults = function_kwargs(parser.parse_args([]), example, skip=("skipped",))
    assert defaults == {"rate": 0.5, "count": 3, "name": None, "fast": False, "objects": None, "limit": None}
    assert "how fast, over two lines (50% or so). (default: 0.5)" in " ".join(parser.format_help().split())


def with_options(*, options: dict[str, int] | None = None, ratio: float | None = None) -> None:
    """Take options.

    Args:
        options: settings such as :class:`~codegym.tasks.SyntheticTasks`'s ``max_ops``.
    """


def test_dict_arguments_take_a_json_object_and_docs_lose_their_markup():
    parser = argparse.ArgumentParser()
    add_function_arguments(parser, with_options)
    args = parser.parse_args(["--options", '{"max_ops": 2}', "--ratio", "0.5"])
    assert function_kwargs(args, with_options) == {"options": {"max_ops": 2}, "ratio": 0.5}
    assert "settings such as SyntheticTasks's max_ops. (a JSON object; default: None)" in " ".join(
        parser.format_help().split()
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--options", "[1, 2]"])


def test_plain_text_keeps_full_names_without_a_tilde():
    assert plain_text(":func:`codegym.models.load_policy` and ``x``") == "codegym.models.load_policy and x"


if TYPE_CHECKING:
    from codegym.models import Policy


def with_unresolvable_hint(*, policy: Policy | None = None, steps: int | None = None) -> None:
    """A hint that names a type imported only for type checking."""


def test_hints_resolve_one_by_one_and_an_unresolvable_one_passes_text():
    parser = argparse.ArgumentParser()
    add_function_arguments(parser, with_unresolvable_hint)
    args = parser.parse_args(["--policy", "tiny", "--steps", "3"])
    assert function_kwargs(args, with_unresolvable_hint) == {"policy": "tiny", "steps": 3}


@dataclass
class BenchArgs:
    tasks: int = 20
    """tasks to run"""
    rate: float = 0.5
    """a rate (50%)"""
    name: str = "x"
    """a name"""
    fast: bool = False
    """go fast"""


def test_a_dataclass_becomes_a_benchmarks_arguments_with_the_string_under_each_field(capsys):
    assert field_docs(BenchArgs) == {
        "tasks": "tasks to run",
        "rate": "a rate (50%)",
        "name": "a name",
        "fast": "go fast",
    }
    assert parse_args(BenchArgs, "bench", []) == BenchArgs()
    assert parse_args(BenchArgs, "bench", ["--tasks", "3", "--rate", "1", "--fast"]) == BenchArgs(
        3, 1.0, "x", True
    )
    with pytest.raises(SystemExit):
        parse_args(BenchArgs, "bench", ["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--tasks TASKS tasks to run (default: 20)" in help_text
    assert "a rate (50%) (default: 0.5)" in help_text


def test_a_field_that_makes_no_flag_is_refused():
    @dataclass
    class Nested:
        inner: list = field(default_factory=list)

    with pytest.raises(TypeError, match=r"Nested\.inner"):
        add_dataclass_arguments(argparse.ArgumentParser(), Nested)


def test_the_loop_toml_and_its_cli_read_the_same_field_texts(capsys):
    from codegym.cli import main
    from codegym.loop.config import LoopConfig, SearchConfig, to_toml

    toml = to_toml(LoopConfig())
    assert f"# {field_docs(SearchConfig)['simulations']}\nsimulations = 6" in toml
    with pytest.raises(SystemExit):
        main(["loop", "--help"])
    assert field_docs(LoopConfig)["iterations"] in capsys.readouterr().out


def test_solve_help_shows_the_agents_own_defaults(capsys):
    from codegym.agents import BeamSearchAgent, MCTSAgent
    from codegym.cli import main

    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    simulations = keyword_defaults(MCTSAgent)["simulations"]
    assert f"mcts: simulations per task (default: {simulations})" in help_text
    beam, mcts = keyword_defaults(BeamSearchAgent)["expansions"], keyword_defaults(MCTSAgent)["expansions"]
    assert f"(default: {beam} for beam, {mcts} for mcts)" in help_text


# -- forwarded options ---------------------------------------------------------------------------------


def _forwarded(front_end: str):
    """Call ``front_end`` with one misspelt forwarded option; each refuses it before loading anything."""
    if front_end == "load_policy":
        from codegym.models import load_policy

        return load_policy("tiny", devce="cpu")
    if front_end == "load_policy openai":
        from codegym.models import load_policy

        return load_policy("openai:http://127.0.0.1:9/v1/m", timeout=3)
    if front_end == "load_prm":
        from codegym.models import load_prm

        return load_prm("tiny", devce="cpu")
    if front_end == "make_reward_scheme":
        from codegym.rewards import make_reward_scheme

        return make_reward_scheme("o1coder", gama=0.5)
    if front_end == "make_reward_scheme callable":
        from codegym.rewards import make_reward_scheme

        return make_reward_scheme(lambda context, scale=1.0: scale, scael=2.0)
    if front_end == "make_sandbox":
        from codegym.sandbox import make_sandbox

        return make_sandbox("local", wrkers=1)
    if front_end == "rollout env_options":
        from codegym.agents import rollout
        from codegym.tasks import load_tasks

        tasks = load_tasks("synthetic", max_ops=1).tasks(1, seed=0)
        return rollout(None, tasks, sandbox="local", env_options={"max_stepz": 2})
    if front_end == "vector env":
        from codegym.vector import CodeReasonVectorEnv

        return CodeReasonVectorEnv(2, sandbox="local", max_stepz=2)
    if front_end == "CandidateChoiceEnv":
        from codegym.agents import CandidateChoiceEnv

        return CandidateChoiceEnv(env_kwargs={"max_stepz": 2})
    if front_end == "trl environment_factory":
        from codegym.integrations.trl.tools import environment_factory

        return environment_factory("local", max_stepz=2)
    if front_end == "trl tool env":
        from codegym.integrations.trl.tools import CodeReasonToolEnv

        return CodeReasonToolEnv(max_stepz=2)
    if front_end == "distributed_rollout":
        from codegym.play import distributed_rollout

        return distributed_rollout("tiny", [], samples_per_tsk=2)
    if front_end == "load_tasks":
        from codegym.tasks import load_tasks

        return load_tasks("synthetic", max_opps=1)
    raise AssertionError(front_end)


@pytest.mark.parametrize(
    ("front_end", "bad", "valid"),
    [
        ("load_policy", "devce", "device"),
        ("load_policy openai", "timeout", "timeout_s"),
        ("load_prm", "devce", "device"),
        ("make_reward_scheme", "gama", "gamma"),
        ("make_reward_scheme callable", "scael", "scale"),
        ("make_sandbox", "wrkers", "workers"),
        ("rollout env_options", "max_stepz", "max_step_chars"),  # max_steps is rollout's own argument
        ("vector env", "max_stepz", "max_steps"),
        ("CandidateChoiceEnv", "max_stepz", "max_steps"),
        ("trl environment_factory", "max_stepz", "max_steps"),
        ("trl tool env", "max_stepz", "max_steps"),
        ("distributed_rollout", "samples_per_tsk", "samples_per_task"),
        ("load_tasks", "max_opps", "max_ops"),
    ],
)
def test_an_unknown_forwarded_option_is_a_user_error_naming_the_valid_ones(front_end, bad, valid):
    from codegym.errors import UserError

    with pytest.raises(UserError) as caught:
        _forwarded(front_end)
    message = str(caught.value)
    assert f"no option {bad!r}: the valid ones are " in message
    assert valid in message.split("the valid ones are ")[1].split(", ")
    assert "\n" not in message
