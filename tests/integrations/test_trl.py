"""The TRL integration: the GRPO reward function, the episode-as-tools env, and the example script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from codegym.integrations.trl import CodeTestReward, environment_factory, grpo_dataset, split_steps
from codegym.sandbox import CallTest
from codegym.tasks import Task
from tests.integrations.conftest import reference_completion

ROOT = Path(__file__).resolve().parents[2]
WRONG = "Outline: return nothing.\n\n### Step 2\n```python\ndef solve(x):\n    return None\n```"


@pytest.fixture(scope="module")
def reward(sandbox_factory):
    with CodeTestReward("synthetic", sandbox=sandbox_factory("local")) as scorer:
        yield scorer


def count_batches(monkeypatch, sandbox) -> list[int]:
    """Records the number of programs in each run_batch call of the real sandbox."""
    calls: list[int] = []
    real = sandbox.run_batch

    def counted(jobs, **kwargs):
        calls.append(len(jobs))
        return real(jobs, **kwargs)

    monkeypatch.setattr(sandbox, "run_batch", counted)
    return calls


def test_dataset_prompts_and_step_splitting(synthetic_tasks):
    rows = grpo_dataset(synthetic_tasks[:2])
    assert rows["task_id"] == [t.task_id for t in synthetic_tasks[:2]]
    assert rows[0]["prompt"].startswith("### Problem\n") and rows[0]["prompt"].endswith("### Step 1\n")
    chat = grpo_dataset(synthetic_tasks[:1], conversational=True)
    assert (
        chat[0]["prompt"][0]["role"] == "user"
        and synthetic_tasks[0].problem.strip() in chat[0]["prompt"][0]["content"]
    )
    assert split_steps(reference_completion(synthetic_tasks[0])) == list(synthetic_tasks[0].reference_steps)
    assert split_steps("  \n") == []
    with pytest.raises(ValueError, match="at least one task"):
        grpo_dataset([])


def test_reward_pays_per_completion_in_one_sandbox_batch(reward, synthetic_tasks, monkeypatch):
    calls = count_batches(monkeypatch, reward.env.sandbox)
    completions = [reference_completion(t) for t in synthetic_tasks[:3]] + [
        WRONG,
        "Outline: no code here",
        "",
    ]
    task_ids = [t.task_id for t in synthetic_tasks[:3]] + [synthetic_tasks[0].task_id] * 3
    metrics, extra = {}, {}
    rewards = reward(
        prompts=[""] * 6,
        completions=completions,
        task_id=task_ids,
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert rewards == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert calls == [4]  # the four completions with code, in one batch
    assert metrics["codegym/hidden_pass_rate"] == pytest.approx(0.5)
    assert metrics["codegym/has_code"] == pytest.approx(4 / 6)
    assert extra["hidden_pass_rate"] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert "no ```python code block" in extra["codegym_note"][4] and "empty" in extra["codegym_note"][5]
    assert [s.steps for s in reward.last_scores] == [3, 3, 3, 2, 1, 0]


def test_chat_completions_are_read_from_the_assistant_messages(reward, synthetic_tasks):
    task = synthetic_tasks[0]
    completion = [{"role": "assistant", "content": "```python\n" + task.reference_solution + "\n```"}]
    assert reward(prompts=[[]], completions=[completion], task_id=[task.task_id]) == [1.0]


def test_visible_tests_pay_and_hidden_tests_only_judge(sandbox_factory):
    task = Task(
        "weak/0",
        "Return the double of x.",
        "double",
        hidden_tests=(CallTest("double", (2,), expected=4), CallTest("double", (5,), expected=10)),
        visible_tests=(CallTest("double", (2,), expected=4),),
    )
    gamed = "```python\ndef double(x):\n    return 4\n```"
    with CodeTestReward([task], sandbox=sandbox_factory("local")) as scorer:
        assert scorer(completions=[gamed], task_id=["weak/0"]) == [1.0]
        assert scorer.last_scores[0].hidden_pass_rate == 0.5
    with CodeTestReward([task], sandbox=sandbox_factory("local"), test_set="hidden") as scorer:
        assert scorer(completions=[gamed], task_id=["weak/0"]) == [0.5]


def test_env_reward_schemes_follow_the_trainer(sandbox_factory, synthetic_tasks):
    task = synthetic_tasks[0]
    with CodeTestReward("synthetic", sandbox=sandbox_factory("local"), reward="o1coder") as scorer:
        # O1-Coder's alpha(T) = max(0.1, 1 - 0.01 T); without a PRM the reward is alpha(T) * R.
        late = SimpleNamespace(global_step=50)
        assert scorer(
            completions=[reference_completion(task)], task_id=[task.task_id], trainer_state=late
        ) == [0.5]
    with pytest.raises(KeyError, match="task_id"):
        CodeTestReward.__call__(scorer, completions=["x"], problem=["y"])


def test_tool_env_runs_tests_and_submits(sandbox_factory, synthetic_tasks):
    task = synthetic_tasks[0]
    with environment_factory(sandbox=sandbox_factory("local")) as factory:
        env, other = factory(), factory()
        assert env._env.sandbox is other._env.sandbox  # one sandbox for every rollout
        assert "never called submit" not in env.last_note
        assert task.problem.strip() in env.reset(task_id=task.task_id, prompt=[])
        assert env.get_reward() == 0.0 and "never called submit" in env.last_note
        report = env.run_tests("def solve(x):\n    return None")
        assert report.startswith("tests: 0/") and "failure 1: failed" in report
        assert env.run_tests(task.reference_solution).startswith("tests: ")  # the episode is still open
        result = env.submit(task.reference_solution)
        assert "submitted:" in result and "reward: 1.000" in result
        assert env.get_reward() == 1.0 and env.hidden_pass_rate == 1.0
        assert env.submit("def solve(x): pass").startswith("error: the solution was already submitted")
        assert other.run_tests("x").startswith("error: no episode")
        other.reset(task_id=task.task_id)
        assert other.run_tests("   ").startswith("error: code must be")
        assert other.submit("def solve(:").startswith("submitted: the code did not compile")
        assert other.get_reward() == 0.0


def test_tool_env_methods_are_the_tools_trl_exposes():
    import inspect

    from codegym.integrations.trl import CodeReasonToolEnv

    # TRL lists public functions on the class: every one but reset and get_reward becomes a tool.
    public = [
        name
        for name, _ in inspect.getmembers(CodeReasonToolEnv, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert sorted(public) == ["get_reward", "reset", "run_tests", "submit"]
    from transformers.utils import get_json_schema

    schema = get_json_schema(CodeReasonToolEnv.run_tests)["function"]
    assert schema["name"] == "run_tests" and schema["parameters"]["required"] == ["code"]


@pytest.mark.slow
@pytest.mark.parametrize("route", ["rewards", "tools"])
def test_example_runs_two_grpo_steps_on_cpu(route, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "trl_grpo.py"), "--route", route, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["route"] == route and result["steps"] == 2 and len(result["step_seconds"]) == 2
    assert len(result["reward"]) == 2 and all(0.0 <= r <= 1.0 for r in result["reward"])
    if route == "rewards":
        # The tiny policy solves most k = 1 tasks: rewards are mixed, so GRPO has a signal and updates.
        assert sum(result["reward"]) > 0 and result["parameters_changed"] is True
        assert result["hidden_pass_rate"] == result["reward"]  # no visible tests of their own: hidden pay
    else:
        # The tiny policy never learned to call tools: no submission, reward 0, zero advantages.
        assert result["reward"] == [0.0, 0.0] and result["parameters_changed"] is False


def test_factory_loads_the_task_source_once(sandbox_factory, synthetic_tasks):
    with environment_factory(sandbox=sandbox_factory("local"), tasks=synthetic_tasks[:2]) as factory:
        first, second = factory(), factory()
        assert first._env.task_source is second._env.task_source
        assert synthetic_tasks[1].problem.strip() in second.reset(task_id=synthetic_tasks[1].task_id)
        with pytest.raises(KeyError, match="unknown task id"):
            first.reset(task_id=synthetic_tasks[3].task_id)


def test_trl_parses_a_tool_call_to_our_tools_and_the_reward_follows(sandbox_factory, synthetic_tasks):
    """A scripted model turn goes through TRL's own template, parser and dispatch (as in its tool loop)."""
    from transformers import AutoTokenizer
    from trl.chat_template_utils import add_response_schema, parse_response, qwen2_5_chat_template

    from codegym.models.tiny import tiny_checkpoint

    task = synthetic_tasks[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint("policy"))
    tokenizer.chat_template = qwen2_5_chat_template
    tokenizer = add_response_schema(tokenizer)
    with environment_factory(sandbox=sandbox_factory("local")) as factory:
        env = factory()
        tools = [env.run_tests, env.submit]
        messages = grpo_dataset([task], conversational=True)[0]["prompt"]
        messages[-1]["content"] += "\n\n" + env.reset(task_id=task.task_id)
        prompt = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
        assert '"name": "submit"' in prompt and '"code"' in prompt  # our schemas reach the model
        call = json.dumps({"name": "submit", "arguments": {"code": task.reference_solution}})
        turn = f"<tool_call>\n{call}\n</tool_call><|im_end|>"
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        parsed = parse_response(
            tokenizer, tokenizer(turn, add_special_tokens=False).input_ids, prefix=prompt_ids, tools=tools
        )
        [tool_call] = parsed["tool_calls"]
        function = tool_call["function"]
        result = getattr(env, function["name"])(**function["arguments"])
        assert result.startswith("submitted: ") and env.get_reward() == 1.0
