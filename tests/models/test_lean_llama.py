"""The lean Llama forward (codegym.models.lean_llama): the model's arithmetic, and greedy decoding that
writes exactly what a plain reference writes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from codegym.models import load_policy  # noqa: E402
from codegym.models.lean_llama import lean_llama  # noqa: E402
from codegym.steps import policy_prompt, render_state  # noqa: E402
from codegym.tasks.synthetic import SyntheticTasks  # noqa: E402


@pytest.fixture(scope="module")
def policy():
    return load_policy("tiny", device="cpu")


@pytest.fixture(scope="module")
def prompts():
    """Eight env prompts of different lengths (problems at steps 0 to 3 of their reference episodes)."""
    tasks = SyntheticTasks("test").tasks(8, seed=11)
    return [
        policy_prompt(render_state(t.problem, t.reference_steps[: i % 4]), i % 4) for i, t in enumerate(tasks)
    ]


def reference_greedy(policy, prompt: str, max_new_tokens: int) -> list[int]:
    """The straightforward way: the model's own forward over the whole sequence at every step, no cache,
    no batch, argmax; stops at the end-of-sequence token."""
    ids = policy.prompt_token_ids([prompt])[0]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = policy.model(input_ids=torch.tensor([ids + new])).logits[0, -1]
            new.append(int(logits.argmax()))
            if new[-1] in policy.eos_token_ids:
                break
    return new


def test_the_tiny_policy_is_served_by_the_lean_forward(policy):
    assert lean_llama(policy.model) is not None


def test_lean_logits_are_the_models_on_a_padded_batch(policy, prompts):
    batch = policy.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="right")
    lean = lean_llama(policy.model)
    width = batch["input_ids"].shape[1]
    with torch.no_grad():
        expected = policy.model(**batch).logits
        positions = torch.arange(width)[None].expand(len(prompts), -1)
        got = lean.logits(lean.hidden(batch["input_ids"], positions, None))
    real = batch["attention_mask"].bool()  # right padding: every real position sees only real tokens
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_greedy_tokens_are_identical_to_a_plain_reference(policy, prompts):
    samples = policy.sample(prompts, stop=(), max_new_tokens=40, temperature=0, seed=0)
    for prompt, [sample] in zip(prompts, samples, strict=True):
        expected = reference_greedy(policy, prompt, 40)
        ended = expected[-1] in policy.eos_token_ids
        assert list(sample.token_ids) == (expected[:-1] if ended else expected)


def test_greedy_tokens_do_not_depend_on_the_batch(policy, prompts):
    together = policy.sample(prompts, max_new_tokens=64, temperature=0)
    alone = [policy.sample([prompt], max_new_tokens=64, temperature=0)[0] for prompt in prompts]
    assert [s[0].token_ids for s in together] == [s[0].token_ids for s in alone]


@pytest.mark.slow
def test_seeded_sampling_repeats(policy, prompts):
    first = policy.sample(prompts, n=3, max_new_tokens=48, temperature=1.0, seed=5)
    second = policy.sample(prompts, n=3, max_new_tokens=48, temperature=1.0, seed=5)
    assert [[s.token_ids for s in row] for row in first] == [[s.token_ids for s in row] for row in second]
    assert first[0][0].token_ids != first[0][1].token_ids or first[0][1].token_ids != first[0][2].token_ids


def test_models_it_does_not_reproduce_are_left_to_their_own_forward(policy):
    import copy

    config = copy.deepcopy(policy.model.config)
    config.attention_bias = True
    assert lean_llama(transformers.LlamaForCausalLM(config)) is None
    assert lean_llama(torch.nn.Linear(2, 2)) is None
