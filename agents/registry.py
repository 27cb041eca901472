"""The agent registry: each search agent's name, its class, the options it takes, and whether it needs a PRM.

Front ends (``codegym solve``/``search``, the loop, Ray workers) build agents by name through
:func:`make_agent`, so an option is checked the same way everywhere: against the class's signature, with
an unknown key named together with the valid ones. A user's own agent joins with :func:`register_agent`.

Example:
    >>> from codegym.agents.registry import agent_names, needs_prm
    >>> agent_names()
    ('greedy', 'sample', 'best-of-n', 'beam', 'mcts')
    >>> needs_prm("mcts", {"evaluation": "mix"}), needs_prm("best-of-n", {})
    (True, False)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codegym.agents.base import Agent
from codegym.agents.beam import BeamSearchAgent
from codegym.agents.mcts import MCTSAgent
from codegym.agents.sampling import BestOfNAgent, GreedyAgent, SamplingAgent
from codegym.errors import UserError
from codegym.options import keyword_defaults

# Arguments every agent takes from Agent itself, passed by the caller rather than chosen per agent.
_AGENT_BASE_OPTIONS = ("seed", "max_new_tokens")


@dataclass(frozen=True)
class AgentSpec:
    """One registered agent.

    Attributes:
        name: the name front ends use (``--agent``).
        cls: the :class:`~codegym.agents.Agent` subclass.
        needs_prm: given the options (the class's defaults filled in), whether the agent uses a PRM.
        defaults: defaults of this name that differ from the class's own (e.g. ``sample`` at temperature 1).
    """

    name: str
    cls: type[Agent]
    needs_prm: Callable[[Mapping[str, Any]], bool]
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _never(options: Mapping[str, Any]) -> bool:
    return False


def _always(options: Mapping[str, Any]) -> bool:
    return True


def _verifier_uses_prm(options: Mapping[str, Any]) -> bool:
    return options.get("verifier") in ("prm", "both")


def _evaluation_uses_prm(options: Mapping[str, Any]) -> bool:
    return options.get("evaluation") in ("prm", "mix")


_REGISTRY: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("greedy", GreedyAgent, _never),
        # SamplingAgent's own default, temperature 0, is greedy, which is the agent "greedy".
        AgentSpec("sample", SamplingAgent, _never, {"temperature": 1.0}),
        AgentSpec("best-of-n", BestOfNAgent, _verifier_uses_prm),
        AgentSpec("beam", BeamSearchAgent, _always),
        AgentSpec("mcts", MCTSAgent, _evaluation_uses_prm),
    )
}


def register_agent(spec: AgentSpec, *, replace: bool = False) -> None:
    """Add an agent under ``spec.name`` (``replace=True`` to override one that is there).

    Raises:
        UserError: the name is taken, or ``spec.cls`` is not an Agent subclass.
    """
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, Agent)):
        raise UserError(f"agent {spec.name!r}: cls must be a codegym.agents.Agent subclass, got {spec.cls!r}")
    if spec.name in _REGISTRY and not replace:
        raise UserError(
            f"an agent named {spec.name!r} is registered already: pass replace=True to override it"
        )
    _REGISTRY[spec.name] = spec


def agent_names() -> tuple[str, ...]:
    """The registered agents' names, in registration order."""
    return tuple(_REGISTRY)


def agent_spec(name: str) -> AgentSpec:
    """The registered agent ``name``.

    Raises:
        UserError: no agent of that name (the message lists the registered ones).
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown agent {name!r}: choose one of {', '.join(_REGISTRY)}") from None


def agent_options(name: str) -> tuple[str, ...]:
    """The options agent ``name`` takes (its class's keyword arguments but ``prm`` and Agent's own
    ``seed`` and ``max_new_tokens``)."""
    cls = agent_spec(name).cls
    parameters = inspect.signature(cls).parameters
    return tuple(
        key
        for key, parameter in parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and key not in ("prm", *_AGENT_BASE_OPTIONS)
    )


def option_defaults(name: str) -> dict[str, Any]:
    """Agent ``name``'s option defaults: its class's, overridden by the registry's own."""
    spec = agent_spec(name)
    defaults = {key: value for key, value in keyword_defaults(spec.cls).items() if key in agent_options(name)}
    return defaults | dict(spec.defaults)


def needs_prm(name: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether agent ``name`` with ``options`` (the rest at their defaults) uses a process reward model."""
    return agent_spec(name).needs_prm(option_defaults(name) | dict(options or {}))


def make_agent(name: str, policy: Any, prm: Any = None, **options: Any) -> Agent:
    """Build agent ``name`` on ``policy`` (and ``prm``) with ``options`` (the registry's defaults filled in).

    Raises:
        UserError: an unknown agent or option (the message names the valid ones), or an agent that
            needs a PRM given none.
    """
    spec = agent_spec(name)
    valid = (*agent_options(name), *_AGENT_BASE_OPTIONS)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UserError(
            f"agent {name!r} takes no option {', '.join(map(repr, unknown))}: its options are {', '.join(valid)}"
        )
    if prm is None and needs_prm(name, options):
        raise UserError(
            f"agent {name!r} with these options scores paths with a PRM: pass prm= (e.g. load_prm('tiny'))"
        )
    chosen = dict(spec.defaults) | options
    if "prm" in inspect.signature(spec.cls).parameters:
        return spec.cls(policy, prm=prm, **chosen)
    return spec.cls(policy, **chosen)


__all__ = [
    "AgentSpec",
    "agent_names",
    "agent_options",
    "agent_spec",
    "make_agent",
    "needs_prm",
    "option_defaults",
    "register_agent",
]
