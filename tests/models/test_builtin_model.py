"""The built-in real model end to end: loading offline, protocols, real episodes, the PRM and the TCG."""

from __future__ import annotations

import pytest

from codegym.agents import rollout
from codegym.models import HFPolicy, load_policy, load_prm
from codegym.models.builtin import cache_dir, smollm2_gguf
from codegym.steps import StepKind, classify_step, extract_code, policy_prompt, render_state
from codegym.tasks import load_tasks

pytestmark = pytest.mark.slow

IS_EVEN = "def is_even(n: int) -> bool:\n    '''Return True if n is even, else False.'''"


@pytest.fixture(scope="module")
def think_policy(smollm2_dir):
    return load_policy("smollm2-135m-instruct", batch_size=4)


def test_the_gguf_comes_from_the_wheel_and_the_folder_is_cached(smollm2_dir):
    assert smollm2_gguf().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert smollm2_dir == cache_dir() / "models" / "smollm2-135m-instruct"
    assert (smollm2_dir / "model.safetensors").stat().st_size > 500_000_000  # fp32, dequantised


def test_load_policy_gives_a_134m_model_with_the_think_protocol(think_policy):
    assert isinstance(think_policy, HFPolicy)
    assert think_policy.protocol.name == "think"
    assert think_policy.model.num_parameters() == 134_515_008
    direct = load_policy("smollm2-135m-instruct", protocol="direct")
    assert direct.protocol.name == "direct"


def test_direct_greedy_writes_a_correct_is_even(smollm2_dir):
    policy = load_policy("smollm2-135m-instruct", protocol="direct")
    [[sample]] = policy.sample(
        [policy_prompt(render_state(IS_EVEN, []), 0)], temperature=0, max_new_tokens=96
    )
    code, closed = extract_code(sample.text)
    namespace: dict = {}
    exec(code, namespace)  # our own model's output, in the test process: a 3-line function
    assert [namespace["is_even"](n) for n in (0, 3, 10, -7)] == [True, False, True, False]
    assert closed and sample.num_tokens > 5 and sample.logprob < 0


def test_think_plays_real_episodes_outline_refine_code(think_policy):
    tasks = list(load_tasks("humaneval"))[:2]
    results = rollout(think_policy, tasks, max_steps=4, max_new_tokens=160, sandbox="local")
    for result in results:
        kinds = [classify_step(step) for step in result.steps]
        assert kinds == [StepKind.OUTLINE, StepKind.REFINE, StepKind.CODE], result.steps
        assert result.end == "code" and result.code is not None
        assert 0 < result.tokens <= 96 + 96 + 160


def test_sampling_is_seeded(think_policy):
    prompt = policy_prompt(render_state(IS_EVEN, []), 0)
    first = think_policy.sample([prompt], n=3, seed=5, max_new_tokens=30)
    assert first == think_policy.sample([prompt], n=3, seed=5, max_new_tokens=30)
    assert len({s.text for s in first[0]}) > 1
    assert all(s.text.startswith("Outline:") for s in first[0])


def test_prm_and_tcg_accept_the_builtin_model(smollm2_dir):
    prm = load_prm("smollm2-135m-instruct")
    [scores] = prm.score_batch([(IS_EVEN, ["Outline: return n % 2 == 0", "```python\nprint(1)\n```"])])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)

    from codegym.tcg import ModelTCG

    tcg = ModelTCG("smollm2-135m-instruct", sandbox="local", temperature=0, max_new_tokens=48)
    assert tcg.policy.protocol.name == "native"  # the TCG prompt is its own format
    evaluation = tcg.evaluate(list(load_tasks("humaneval"))[:1], n=4)
    assert evaluation.tasks == 1 and evaluation.lines >= 1


def test_policy_gradient_scores_what_the_model_wrote_after_the_forced_opening(think_policy):
    from codegym.training.policy_gradient import continuation_log_probs

    prompts = [policy_prompt(render_state(IS_EVEN, steps), len(steps)) for steps in ([], ["Outline: n % 2"])]
    samples = [s for [s] in think_policy.sample(prompts, temperature=0, max_new_tokens=16)]
    assert samples[0].text.startswith("Outline:") and samples[1].text.startswith("Refine:")
    with __import__("torch").no_grad():
        scored = continuation_log_probs(think_policy, prompts, [s.text for s in samples])
    for sample, value in zip(samples, scored.tolist(), strict=True):
        assert value == pytest.approx(sample.logprob, abs=2e-2)  # the prefix is the prompt's, not scored


def test_the_prm_reads_a_path_laid_out_as_the_policy_wrote_it(smollm2_dir, think_policy):
    prm = load_prm("smollm2-135m-instruct", head="likelihood")
    assert prm.format.protocol == "think"
    steps = ["Outline: n % 2 == 0", "Refine: return it"]
    [window] = prm.encode(IS_EVEN, steps)
    text = prm.tokenizer.decode(window.input_ids)
    # What the policy is shown before step 2, followed by step 2: the PRM reads the same layout.
    shown = think_policy._format(policy_prompt(render_state(IS_EVEN, steps[:1]), 1))
    assert text.startswith(shown.removesuffix("Refine:")) and text.endswith("Step 2:\nRefine: return it")


def test_any_gguf_file_loads_through_the_same_cache(smollm2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEGYM_CACHE", str(tmp_path))
    policy = load_policy(str(smollm2_gguf()), protocol="direct")
    assert str(policy.model.name_or_path).startswith(str(tmp_path / "models" / "SmolLM2-135M-Instruct.Q4_1-"))
    assert policy.model.num_parameters() == 134_515_008
