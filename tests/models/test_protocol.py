"""Prompt protocols, the step classifier on real models' writing, and ASPR (no model needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from codegym.agents import Episode, Spend
from codegym.evaluation import aspr, summarize
from codegym.models import get_protocol
from codegym.models.protocol import PromptProtocol
from codegym.steps import STEP_STOP, StepKind, classify_step, extract_code, policy_prompt, render_state

PROBLEM = "def add(a, b):\n    '''Return a + b.'''"


def env_prompt(steps: list[str]) -> str:
    return policy_prompt(render_state(PROBLEM, steps), len(steps))


def test_native_passes_the_env_text_through():
    built = get_protocol("native").build(env_prompt(["Outline: add"]), [STEP_STOP])
    assert built.text == env_prompt(["Outline: add"])
    assert built.stop == (STEP_STOP,) and built.prefix == "" and not built.is_chat


def test_think_continues_the_assistant_turn_and_steers_each_step():
    think = get_protocol("think")
    first = think.build(env_prompt([]))
    system, user, assistant = first.messages
    assert system["role"] == "system" and "Outline:" in system["content"] and "```python" in system["content"]
    assert user == {"role": "user", "content": f"Problem:\n{PROBLEM}"}
    assert assistant == {"role": "assistant", "content": "Step 1:\nOutline:"}
    assert first.prefix == "Outline:" and first.max_new_tokens == 96
    assert "\nStep " in first.stop and "\n**Step " in first.stop and "\n\n" in first.stop

    second = think.build(env_prompt(["Outline: return a plus b"]))
    assert second.messages[-1]["content"] == "Step 1:\nOutline: return a plus b\n\nStep 2:\nRefine:"
    third = think.build(env_prompt(["Outline: x", "Refine: y"]))
    assert third.prefix == "```python\n" and third.max_new_tokens is None
    assert "\n\n" not in third.stop  # code has blank lines
    assert third.messages[-1]["content"].endswith("Step 3:\n```python\n")


def test_direct_asks_for_code_at_once():
    built = get_protocol("direct").build(env_prompt([]))
    assert built.prefix == "```python\n" and len(built.messages) == 3
    assert "```python" in built.messages[0]["content"]
    # the answer opens the assistant turn with no "Step 1:" line (a step-by-step cue to a code model)
    assert built.messages[-1] == {"role": "assistant", "content": "```python\n"}
    again = get_protocol("direct").build(env_prompt(["```python\nx = 1\n```"]))
    assert again.messages[-1]["content"] == "Step 1:\n```python\nx = 1\n```\n\nStep 2:\n```python\n"


def test_render_continues_the_partial_assistant_message_verbatim():
    def template(messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return "".join(f"<{m['role']}>{m['content']}</>" for m in messages) + "<assistant>"

    built = get_protocol("think").build(env_prompt([]))
    rendered = built.render(template)
    assert rendered.endswith("</><assistant>Step 1:\nOutline:")
    with pytest.raises(ValueError, match="chat template"):
        built.render(None)


def test_other_prompts_pass_through_a_chat_protocol():
    built = get_protocol("think").build("def f(x):\n### Tests\n", ["\n\n"])
    assert built.text == "def f(x):\n### Tests\n" and built.stop == ("\n\n",)
    # A header that does not follow the steps is not an env prompt either.
    assert get_protocol("think").build(render_state(PROBLEM, []) + "\n\n### Step 3\n").text is not None


def test_finish_adds_the_prefix_restores_the_fence_and_drops_own_labels():
    think = get_protocol("think")
    code = think.build(env_prompt(["Outline: x", "Refine: y"]))
    assert think.finish(code, "def add(a, b):\n    return a + b", stopped=True).endswith("\n```")
    assert extract_code(think.finish(code, "def add(a, b):\n    return a + b", stopped=True)) == (
        "def add(a, b):\n    return a + b",
        True,
    )
    # Cut by the token limit, the block stays open (the env reports the unclosed fence).
    assert not think.finish(code, "def add(a, b):", stopped=False).endswith("```")
    outline = think.build(env_prompt([]))
    assert think.finish(outline, " add them", stopped=True) == "Outline: add them"
    free = PromptProtocol(name="free", instruction="Think.")
    assert free.finish(free.build(env_prompt([])), "**Step 1:** add them", stopped=True) == "add them"
    assert free.finish(free.build(env_prompt([])), "Steps are easy", stopped=True) == "Steps are easy"


def test_servers_that_cannot_continue_get_a_user_request():
    built = get_protocol("think").build_steps(PROBLEM, ["Outline: x"], continued=False)
    assert [m["role"] for m in built.messages] == ["system", "user", "assistant", "user"]
    assert built.messages[2]["content"] == "Step 1:\nOutline: x"
    assert "Refine:" in built.messages[3]["content"] and built.prefix == ""


def test_protocol_lookup_and_overrides():
    assert get_protocol("think", code_step=5).step_prefix(4) == "Refine:"
    assert get_protocol("think", code_step=5).step_prefix(5) == "```python\n"
    with pytest.raises(ValueError, match=r"unknown prompt protocol 'cot'.*direct"):
        get_protocol("cot")
    with pytest.raises(ValueError, match="code_step"):
        PromptProtocol(name="x", code_step=0)


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        ("Outline: sort, then scan", StepKind.OUTLINE),
        ("**Outline:** sort, then scan", StepKind.OUTLINE),
        ("## Outline\n1. sort", StepKind.OUTLINE),
        ("Step 1: Pseudocode: loop", StepKind.OUTLINE),
        ("Step 2: Refine: skip blanks", StepKind.REFINE),
        ("- **Refinement**: keep order", StepKind.REFINE),
        ("```Python\nprint(1)\n```", StepKind.CODE),
        ("Here it is:\n```py\nprint(1)", StepKind.CODE),
        ("```python3\nprint(1)\n```", StepKind.CODE),
        ("The outline is simple", StepKind.FREE),
        ("Outlines are overrated", StepKind.FREE),
        ("```\nprint(1)\n```", StepKind.FREE),
    ],
)
def test_classify_step_reads_what_real_models_write(step, kind):
    assert classify_step(step) == kind


def test_aspr_counts_only_paths_that_wrote_code():
    episodes = [
        SimpleNamespace(code="a", hidden_all_passed=True),
        SimpleNamespace(code="b", hidden_all_passed=False),
        SimpleNamespace(code=None, hidden_all_passed=False),
        SimpleNamespace(code=None, hidden_all_passed=False),
    ]
    assert aspr(episodes) == 0.5  # pass@1 would be 0.25
    assert aspr([SimpleNamespace(code=None, hidden_all_passed=False)]) is None


def test_summarize_pass_at_k_and_aspr():
    def result(task: str, sample: int, code: str | None, passed: bool) -> Episode:
        end = "code" if code else "max_steps"
        return Episode(
            task, (), code, (), None, float(passed), passed, end, Spend(tokens=10), "sample", sample=sample
        )

    results = [
        result("a", 0, "x", True),
        result("a", 1, "x", False),
        result("b", 0, None, False),
        result("b", 1, "y", False),
    ]
    summary = summarize(results, ks=(1, 2, 8))
    assert summary.pass_at == {1: 0.25, 2: 0.5}  # k = 8 needs 8 samples: left out
    assert summary.aspr == pytest.approx(1 / 3)
    assert summary.code_rate == 0.75 and summary.tokens_per_task == 20.0
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
