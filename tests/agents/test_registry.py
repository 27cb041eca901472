"""The agent registry: one place that builds agents by name, checks their options and knows which need a PRM."""

from __future__ import annotations

import pytest

from codegym.agents import Agent, BeamSearchAgent, BestOfNAgent, GreedyAgent, MCTSAgent, SamplingAgent
from codegym.agents.registry import (
    AgentSpec,
    agent_names,
    agent_options,
    make_agent,
    needs_prm,
    option_defaults,
    register_agent,
)
from codegym.cli.solve import AGENT_OPTIONS, AGENTS
from codegym.errors import UserError


@pytest.fixture(scope="module")
def tiny_policy():
    from codegym.models import load_policy

    return load_policy("tiny")


def test_every_built_in_agent_is_built_by_name(tiny_policy, stub_prm):
    built = {name: make_agent(name, tiny_policy, stub_prm, seed=3) for name in agent_names()}
    assert {name: type(agent) for name, agent in built.items()} == {
        "greedy": GreedyAgent,
        "sample": SamplingAgent,
        "best-of-n": BestOfNAgent,
        "beam": BeamSearchAgent,
        "mcts": MCTSAgent,
    }
    assert built["sample"].temperature == 1.0  # the registry's default: SamplingAgent's own 0 is greedy
    assert built["greedy"].temperature == 0.0
    assert built["mcts"].seed == 3


def test_the_command_line_offers_the_registrys_agents_and_options():
    assert agent_names() == AGENTS
    for dest, agents in AGENT_OPTIONS.items():
        if dest != "html_dir":  # a command-line option (where trees are written), not the agent's
            assert agents == tuple(name for name in agent_names() if dest in agent_options(name)), dest


def test_which_agents_need_a_prm_follows_their_options():
    assert not needs_prm("greedy") and not needs_prm("sample")
    assert needs_prm("beam")
    assert not needs_prm("best-of-n") and needs_prm("best-of-n", {"verifier": "both"})
    assert (
        not needs_prm("mcts")
        and needs_prm("mcts", {"evaluation": "prm"})
        and needs_prm("mcts", {"evaluation": "mix"})
    )
    assert option_defaults("mcts")["evaluation"] == "rollout"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda policy: make_agent("mtcs", policy), "unknown agent 'mtcs': choose one of greedy, sample"),
        (
            lambda policy: make_agent("mcts", policy, simulation=4),
            "takes no option 'simulation': its options are simulations",
        ),
        (
            lambda policy: make_agent("greedy", policy, temperature=1.0),
            "agent 'greedy' takes no option 'temperature'",
        ),
        (lambda policy: make_agent("beam", policy), "scores paths with a PRM: pass prm="),
        (lambda policy: make_agent("mcts", policy, evaluation="mix"), "scores paths with a PRM"),
    ],
)
def test_bad_names_and_options_are_named_with_the_fix(tiny_policy, call, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        call(tiny_policy)


def test_a_users_agent_joins_the_registry(tiny_policy):
    class FirstStepAgent(GreedyAgent):
        pass

    register_agent(AgentSpec("first-step", FirstStepAgent, lambda options: False))
    try:
        assert isinstance(make_agent("first-step", tiny_policy, max_new_tokens=16), FirstStepAgent)
        with pytest.raises(UserError, match="registered already: pass replace=True"):
            register_agent(AgentSpec("first-step", FirstStepAgent, lambda options: False))
        with pytest.raises(UserError, match=r"must be a codegym\.agents\.Agent subclass"):
            register_agent(AgentSpec("not-an-agent", dict, lambda options: False))  # type: ignore[arg-type]
    finally:
        from codegym.agents import registry

        registry._REGISTRY.pop("first-step", None)
    assert "first-step" not in agent_names()
    assert issubclass(FirstStepAgent, Agent)
