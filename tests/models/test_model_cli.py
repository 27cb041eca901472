"""The protocol and model options of the CLI commands, and of the loop configuration."""

from __future__ import annotations

import json

import pytest

from codegym.cli import main
from codegym.loop.config import LoopConfig, policy_options


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("command", ["eval", "solve", "search", "tcg"])
def test_every_policy_command_takes_the_model_options(capsys, command):
    assert run([command, "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--protocol", "--device", "--dtype", "--endpoint"):
        assert flag in text, f"codegym {command} lacks {flag}"


@pytest.mark.parametrize("command", [["train", "policy"], ["train", "prm"], ["train", "tcg"], ["rl", "pg"]])
def test_every_trainer_takes_lora(capsys, command):
    assert run([*command, "--help"]) == 0
    assert "--lora-r" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["train", "policy"], ["train", "prm"], ["rl", "pg"], ["rl", "ppo"]])
def test_trainers_take_the_protocol(capsys, command):
    assert run([*command, "--help"]) == 0
    assert "--protocol" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--policy", "tiny", "--endpoint", "completions"], "--endpoint applies to openai:"),
        (
            ["eval", "--policy", "openai:http://h:1/v1/m", "--device", "cuda"],
            "--device and --dtype apply to a local",
        ),
        (["eval", "--protocol", "cot"], "invalid choice: 'cot'"),
    ],
)
def test_bad_model_options_get_a_message(capsys, argv, message):
    assert run([*argv, "--n-tasks", "1"]) == 2
    assert message in capsys.readouterr().err


def test_a_chat_protocol_on_a_model_without_a_chat_template_is_refused(capsys):
    assert run(["eval", "--policy", "tiny", "--protocol", "think", "--n-tasks", "1"]) != 0
    assert "needs a chat template" in capsys.readouterr().err


def test_eval_reports_aspr_beside_pass_at_1(capsys, tmp_path):
    out = tmp_path / "eval.json"
    argv = ["eval", "--policy", "tiny", "--protocol", "native", "--n-tasks", "4", "--temperature", "0"]
    assert run([*argv, "--sandbox", "local", "--out", str(out), "--task-options", '{"max_ops": 1}']) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert results["settings"]["protocol"] == "native"
    coded = [t for t in results["per_task"] if t["correct"] is not None]
    assert 0.0 <= results["aspr"] <= 1.0 and len(coded) == 4
    assert "ASPR (solved / ended with code)" in printed
    assert results["aspr"] >= results["pass_at_k"]["1"]  # ASPR leaves out episodes that wrote no code


def test_the_loop_configuration_carries_the_model_options():
    config = LoopConfig(policy="smollm2-135m-instruct", protocol="think", device="cpu", lora_r=1)
    assert policy_options(config) == {"protocol": "think", "device": "cpu"}
    assert policy_options(LoopConfig()) == {}
    with pytest.raises(ValueError, match="protocol"):
        LoopConfig(protocol="cot")
    with pytest.raises(ValueError, match="lora_r"):
        LoopConfig(lora_r=-1)
