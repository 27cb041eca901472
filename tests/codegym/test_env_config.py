"""EnvConfig: the env's options declared once, frozen, checked, and reused by every front end."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from codegym.env import CodeReasonEnv
from codegym.env_config import DEFAULTS, EnvConfig
from codegym.errors import UserError


def _defaults(target) -> dict:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(target).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_the_config_is_frozen():
    config = EnvConfig(max_steps=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_steps = 5  # type: ignore[misc]
    assert config.max_steps == 4 and config == EnvConfig(max_steps=4) and config != DEFAULTS


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_steps", 0, "max_steps must be an int in [1, 1000], got 0"),
        ("max_steps", 1001, "max_steps must be an int in [1, 1000], got 1001"),
        ("max_steps", 2.0, "max_steps must be an int in [1, 1000], got 2.0"),
        ("timeout_s", 0, "timeout_s must be a number of seconds in (0, 3600], got 0"),
        ("memory_mb", 32, "memory_mb must be an int of at least 64 (MiB), got 32"),
        ("test_set", "train", "test_set must be 'visible' or 'hidden', got 'train'"),
        ("visible_tests_n", True, "visible_tests_n must be a positive int, got True"),
        ("max_step_chars", 0, "max_step_chars must be a positive int, got 0"),
        ("max_problem_chars", -1, "max_problem_chars must be a positive int, got -1"),
        ("verdict_cache_size", -1, "verdict_cache_size must be an int >= 0"),
    ],
)
def test_a_bad_value_is_a_user_error_that_names_it(field, value, message):
    with pytest.raises(UserError) as caught:
        EnvConfig(**{field: value})
    assert message in str(caught.value)


def test_every_bad_value_is_named_at_once():
    with pytest.raises(UserError, match=r"max_steps .* got 0; .*max_step_chars .* got 0"):
        EnvConfig(max_steps=0, max_step_chars=0)


def test_the_env_takes_its_defaults_and_checks_from_the_config(sandbox_factory):
    defaults = _defaults(CodeReasonEnv)
    for item in dataclasses.fields(EnvConfig):
        assert defaults[item.name] == getattr(DEFAULTS, item.name), item.name
    with pytest.raises(UserError, match="max_steps must be an int in"):
        CodeReasonEnv(max_steps=0, sandbox=sandbox_factory("local"))
    config = EnvConfig(max_steps=3, max_step_chars=120, timeout_s=2.0)
    env = CodeReasonEnv(
        tasks="synthetic",
        task_options={"max_ops": 1},
        sandbox=sandbox_factory("local"),
        **config.env_kwargs(),
    )
    assert env.config == config
    assert (env.max_steps, env.max_step_chars, env.timeout_s, env.action_space.max_length) == (
        3,
        120,
        2.0,
        120,
    )
    env.close()


def test_the_openenv_server_config_and_client_reuse_the_env_defaults():
    pytest.importorskip("websockets")
    from codegym.integrations.openenv.client import CodeReasonClient
    from codegym.integrations.openenv.config import ServeConfig

    serve = ServeConfig()
    shared = {f.name for f in dataclasses.fields(ServeConfig)} & {
        f.name for f in dataclasses.fields(EnvConfig)
    }
    assert shared >= {"reward", "outcome", "max_steps", "timeout_s", "max_step_chars", "sandbox_workers"}
    for name in shared:
        assert getattr(serve, name) == getattr(DEFAULTS, name), name
    assert ServeConfig(max_steps=5).env_config() == EnvConfig(max_steps=5)
    with pytest.raises(UserError, match="max_step_chars must be a positive int"):
        ServeConfig(max_step_chars=0)  # refused before any server loads
    assert _defaults(CodeReasonClient)["max_step_chars"] == DEFAULTS.max_step_chars


def test_the_trl_integration_reuses_the_env_defaults_but_pays_the_outcome_alone():
    from codegym.integrations.trl.rewards import CodeTestReward
    from codegym.integrations.trl.tools import ToolEnvFactory, environment_factory

    reward = _defaults(CodeTestReward)
    for name in ("outcome", "test_set", "max_steps", "max_step_chars", "timeout_s", "sandbox_workers"):
        assert reward[name] == getattr(DEFAULTS, name), name
    assert reward["reward"] == "terminal"  # GRPO's own default: the outcome, no process terms
    assert _defaults(ToolEnvFactory)["sandbox_workers"] == DEFAULTS.sandbox_workers
    assert _defaults(environment_factory)["sandbox_workers"] == DEFAULTS.sandbox_workers


def test_codegym_serve_flags_default_to_the_env_config():
    import argparse

    from codegym.cli.serve import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["serve"])
    assert (args.max_steps, args.max_step_chars, args.timeout_s, args.reward, args.outcome) == (
        DEFAULTS.max_steps,
        DEFAULTS.max_step_chars,
        DEFAULTS.timeout_s,
        DEFAULTS.reward,
        DEFAULTS.outcome,
    )
