"""The built-in code model Qwen2.5-Coder-0.5B-Instruct, end to end from its six installed part wheels.

The first run joins the parts (491 MB), checks the sha256 and dequantises into the cache (about a
minute on 2 cores); later runs load the cached folder.
"""

from __future__ import annotations

from importlib import metadata

import pytest

from codegym.models import QWEN_CODER, HFPolicy, load_policy, load_prm
from codegym.models.builtin import QWEN_CODER_GGUF, builtin_model_dir, cache_dir
from codegym.steps import extract_code, policy_prompt, render_state

pytestmark = pytest.mark.slow

IS_EVEN = "def is_even(n: int) -> bool:\n    '''Return True if n is even, else False.'''"


@pytest.fixture(scope="module")
def qwen_dir():
    missing = []
    for part in QWEN_CODER_GGUF.parts:
        try:
            metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            missing.append(part.distribution)
    if missing:
        pytest.skip(f"the Qwen part wheels {missing} are not installed; `make install` installs them")
    return builtin_model_dir(QWEN_CODER)


def test_the_folder_is_dequantised_once_and_the_join_is_not_kept(qwen_dir):
    assert qwen_dir == cache_dir() / "models" / "qwen2.5-coder-0.5b-instruct"
    assert (qwen_dir / "model.safetensors").stat().st_size > 1_900_000_000  # fp32
    assert "<|im_start|>" in (qwen_dir / "chat_template.jinja").read_text()  # the GGUF's own template
    assert not (cache_dir() / "models" / QWEN_CODER_GGUF.name).exists()  # 491 MB not kept after use


def test_direct_greedy_writes_a_correct_function(qwen_dir):
    policy = load_policy(QWEN_CODER, protocol="direct")
    assert isinstance(policy, HFPolicy) and policy.model.config.model_type == "qwen2"
    assert 490_000_000 < policy.model.num_parameters() < 640_000_000
    [[sample]] = policy.sample(
        [policy_prompt(render_state(IS_EVEN, []), 0)], temperature=0, max_new_tokens=96
    )
    code, closed = extract_code(sample.text)
    namespace: dict = {}
    exec(code, namespace)  # our own model's output, in the test process: a short function
    assert [namespace["is_even"](n) for n in (0, 3, 10, -7)] == [True, False, True, False]
    assert closed and sample.num_tokens > 5
    assert load_policy(QWEN_CODER).protocol.name == "think"  # the built-in default


def test_prm_and_tcg_accept_the_name(qwen_dir):
    prm = load_prm(QWEN_CODER)
    [scores] = prm.score_batch([(IS_EVEN, ["Outline: return n % 2 == 0"])])
    assert len(scores) == 1 and 0.0 <= scores[0] <= 1.0

    from codegym.tcg import ModelTCG

    tcg = ModelTCG(QWEN_CODER, sandbox="local", temperature=0, max_new_tokens=32)
    assert tcg.policy.protocol.name == "native"
