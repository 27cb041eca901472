"""Reusing the keys and values of earlier rows (codegym.models.prefix_cache and decoding's use of it): the
cache finds the longest prefix, bounds its memory, and decoding with it writes what decoding without it
writes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from codegym.agents import rollout  # noqa: E402
from codegym.errors import UserError  # noqa: E402
from codegym.models import load_policy  # noqa: E402
from codegym.models.decoding import decode  # noqa: E402
from codegym.models.hf_policy import HFPolicy  # noqa: E402
from codegym.models.prefix_cache import MIN_REUSED, PrefixCache  # noqa: E402
from codegym.models.tiny import create_tiny  # noqa: E402
from codegym.steps import policy_prompt, render_state  # noqa: E402
from codegym.tasks import load_tasks  # noqa: E402
from codegym.tasks.synthetic import SyntheticTasks  # noqa: E402
from codegym.training.policy_gradient import _draw_tasks  # noqa: E402


def values(length: int, fill: float = 0.0) -> torch.Tensor:
    return torch.full((2, 2, 1, length, 4), fill)  # (layers, keys/values, heads, tokens, head_dim)


def test_the_longest_matching_row_is_found_and_short_matches_are_not():
    cache = PrefixCache()
    base = list(range(100, 140))
    cache.add(base[:20], values(20, 1.0))
    cache.add(base[:30], values(30, 2.0))
    cache.add([*base[:25], 7, 7, 7], values(28, 3.0))
    length, found = cache.longest_prefix([*base, 1, 2])
    assert length == 30 and found is not None and float(found[0, 0, 0, 0, 0]) == 2.0
    length, found = cache.longest_prefix([*base[:26], 9])  # shares 26 with the second row, 25 with the third
    assert length == 26 and float(found[0, 0, 0, 0, 0]) == 2.0
    assert cache.longest_prefix([*base[: MIN_REUSED - 1], 5, *base]) == (0, None)  # too short a match
    assert cache.longest_prefix(list(range(40))) == (0, None)


def test_the_oldest_rows_go_first_once_the_cache_is_full():
    one_row = values(20).numel() * 4
    cache = PrefixCache(max_bytes=2 * one_row)
    rows = [[k, *range(200, 219)] for k in range(3)]
    for row in rows:
        cache.add(row, values(20))
    assert len(cache) == 2 and cache.bytes == 2 * one_row
    assert cache.longest_prefix(rows[0])[0] == 0 and cache.longest_prefix(rows[2])[0] == 20


def test_a_row_whose_values_do_not_match_its_tokens_is_refused():
    with pytest.raises(AssertionError, match="19 cached positions for 20 tokens"):
        PrefixCache().add(list(range(20)), values(19))
    with pytest.raises(UserError, match="max_bytes"):
        PrefixCache(max_bytes=0)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return HFPolicy(create_tiny(tmp_path_factory.mktemp("tiny"), n_tasks=200, seed=0), device="cpu")


def greedy(rows, scores):
    logprobs = torch.log_softmax(scores.float(), dim=-1)
    chosen = scores.argmax(dim=-1)
    return chosen, logprobs.gather(1, chosen[:, None]).squeeze(1)


def left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row) :] = torch.tensor(row)
        mask[index, width - len(row) :] = 1
    return ids, mask


def run(policy, rows, prefixes=None, max_new_tokens=10):
    ids, mask = left_padded(rows, policy.tokenizer.pad_token_id)
    with torch.inference_mode():
        return decode(
            policy.model, ids, mask, choose=greedy, finished=None, max_new_tokens=max_new_tokens,
            eos_token_ids=set(), prefixes=prefixes,
        )  # fmt: skip


def test_prompts_that_continue_earlier_rows_decode_as_if_read_whole(policy):
    tasks = SyntheticTasks("train").tasks(3, seed=11)
    texts = [policy_prompt(render_state(t.problem, t.reference_steps[:i]), i) for i, t in enumerate(tasks)]
    first = [list(ids) for ids in policy.tokenizer(texts)["input_ids"]]
    first = [first[0], first[0], first[1], first[2]]  # equal prompts (read once) as well
    cache = PrefixCache()
    written, _ = run(policy, first, cache)
    assert len(cache) == 4
    header = policy.tokenizer("\n### Step 2\n", add_special_tokens=False)["input_ids"]
    fresh = policy.tokenizer(
        policy_prompt(render_state(SyntheticTasks("train").tasks(1, seed=12)[0].problem, ()), 0)
    )["input_ids"]
    second = [
        [*first[0], *written[0], *header],  # the whole of a cached row, then more
        [*first[2], *written[2][:4]],  # inside a cached row (its prompt and part of what it wrote)
        first[3],  # exactly a cached row's prompt: its last token is read again
        list(fresh),  # nothing cached
    ]
    cached_tokens, cached_values = run(policy, second, cache)
    assert cache.hits == 3
    # all but the last token of a prompt a cached row holds whole (it is read for the logits)
    assert cache.reused_tokens == (len(first[0]) + 9) + (len(first[2]) + 3) + (len(first[3]) - 1)
    plain_tokens, plain_values = run(policy, second)
    assert cached_tokens == plain_tokens
    np.testing.assert_allclose(cached_values, plain_values, rtol=1e-4, atol=1e-4)


def test_a_rollout_writes_the_same_episodes_with_and_without_reuse(sandbox_factory, monkeypatch):
    policy = load_policy("tiny", device="cpu")
    tasks = _draw_tasks(load_tasks("synthetic", split="train"), 4, np.random.default_rng(2))
    box = sandbox_factory("local")
    reused = []
    note = PrefixCache.note_reuse
    monkeypatch.setattr(
        PrefixCache, "note_reuse", lambda self, tokens: (reused.append(tokens), note(self, tokens))
    )
    results = {}
    for mode in ("reused", "read whole"):
        if mode == "read whole":
            monkeypatch.setattr(type(policy), "reusing_prefixes", None, raising=True)
            reused_by_the_first = len(reused)
        for temperature, samples in ((0.0, 1), (1.0, 3)):
            episodes = rollout(
                policy, tasks, samples_per_task=samples, temperature=temperature, seed=3, max_steps=4,
                max_new_tokens=96, sandbox=box, env_options={"reward": "terminal"},
            )  # fmt: skip
            results[mode, temperature] = [(e.steps, e.step_token_ids, e.total_reward) for e in episodes]
    assert results["reused", 0.0] == results["read whole", 0.0]
    assert results["reused", 1.0] == results["read whole", 1.0]
    assert reused_by_the_first > 2 * len(tasks) and len(reused) == reused_by_the_first  # the reuse happened
    assert policy._prefixes is None  # and its cache is gone


def test_changed_weights_empty_the_cache(policy):
    prompt = policy_prompt(render_state(SyntheticTasks("train").tasks(1, seed=13)[0].problem, ()), 0)
    with policy.reusing_prefixes() as cache:
        policy.sample([prompt], temperature=0, max_new_tokens=8, seed=0)
        policy.sample([prompt], temperature=0, max_new_tokens=8, seed=0)
        assert cache.hits == 1 and len(cache) == 2  # the second call read the prompt from the cache
        state = {name: value.clone() for name, value in policy.model.state_dict().items()}
        with torch.no_grad():
            policy.model.lm_head.weight.mul_(1.5)  # an in-place change, as an optimizer step makes
        try:
            policy.sample([prompt], temperature=0, max_new_tokens=8, seed=0)
        finally:
            policy.model.load_state_dict(state)
        assert cache.hits == 1 and len(cache) == 1  # nothing made under the old weights was kept or reused
