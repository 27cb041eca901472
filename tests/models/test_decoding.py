"""Batched decoding that lets rows go as they finish (codegym.models.decoding)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from codegym.models.decoding import decode  # noqa: E402
from codegym.models.hf_policy import HFPolicy  # noqa: E402
from codegym.models.tiny import create_tiny  # noqa: E402
from codegym.steps import policy_prompt, render_state  # noqa: E402
from codegym.tasks.synthetic import SyntheticTasks  # noqa: E402


@pytest.fixture(autouse=True, params=["lean", "transformers"])
def engine(request, monkeypatch):
    """Every test runs on both paths: the lean Llama forward and the model's own (any other model)."""
    if request.param == "transformers":
        monkeypatch.setattr("codegym.models.lean_llama.lean_llama", lambda model: None)
    return request.param


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return HFPolicy(create_tiny(tmp_path_factory.mktemp("tiny"), n_tasks=200, seed=0), device="cpu")


@pytest.fixture(scope="module")
def batch(policy):
    """Four prompts of different lengths, left-padded as the policy pads them."""
    tasks = SyntheticTasks("train").tasks(4, seed=5)
    texts = [policy_prompt(render_state(t.problem, t.reference_steps[:i]), i) for i, t in enumerate(tasks)]
    return policy.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")


def greedy(rows, scores):
    logprobs = torch.log_softmax(scores.float(), dim=-1)
    chosen = scores.argmax(dim=-1)
    return chosen, logprobs.gather(1, chosen[:, None]).squeeze(1)


def test_greedy_decoding_writes_what_generate_writes(policy, batch):
    with torch.inference_mode():
        tokens, logprobs = decode(
            policy.model, batch["input_ids"], batch["attention_mask"], choose=greedy, finished=None,
            max_new_tokens=12, eos_token_ids=set(),
        )  # fmt: skip
        reference = policy.model.generate(
            **batch, max_new_tokens=12, do_sample=False, pad_token_id=policy.tokenizer.pad_token_id,
            eos_token_id=None, min_new_tokens=12,
        )  # fmt: skip
    expected = reference[:, batch["input_ids"].shape[1] :].tolist()
    assert tokens == expected
    assert all(len(row) == 12 for row in logprobs) and all(lp <= 0 for row in logprobs for lp in row)


def test_a_finished_row_leaves_and_the_others_go_on(policy, batch):
    seen_widths = []

    def choose(rows, scores):
        seen_widths.append(len(rows))
        return greedy(rows, scores)

    def finished(rows, tokens):  # row 1 ends after 3 tokens, row 2 after 5
        return [(row == 1 and len(tokens[row]) >= 3) or (row == 2 and len(tokens[row]) >= 5) for row in rows]

    with torch.inference_mode():
        alone = decode(
            policy.model, batch["input_ids"], batch["attention_mask"], choose=greedy, finished=None,
            max_new_tokens=10, eos_token_ids=set(),
        )[0]  # fmt: skip
        tokens, _ = decode(
            policy.model, batch["input_ids"], batch["attention_mask"], choose=choose, finished=finished,
            max_new_tokens=10, eos_token_ids=set(),
        )  # fmt: skip
    assert [len(row) for row in tokens] == [10, 3, 5, 10]
    assert seen_widths == [4, 4, 4, 3, 3, 2, 2, 2, 2, 2]
    # The rows that stayed wrote what they write in a batch nobody left.
    assert tokens[0] == alone[0] and tokens[3] == alone[3]
    assert tokens[1] == alone[1][:3] and tokens[2] == alone[2][:5]


def test_an_end_of_sequence_token_ends_its_row(policy, batch):
    with torch.inference_mode():
        free = decode(
            policy.model, batch["input_ids"], batch["attention_mask"], choose=greedy, finished=None,
            max_new_tokens=8, eos_token_ids=set(),
        )[0]  # fmt: skip
        # Declare a token row 0 writes an end-of-sequence token: each row ends at its first one, keeping it.
        eos = free[0][2]
        tokens = decode(
            policy.model, batch["input_ids"], batch["attention_mask"], choose=greedy, finished=None,
            max_new_tokens=8, eos_token_ids={eos},
        )[0]  # fmt: skip
    assert len(tokens[0]) <= 3
    for row, written in zip(tokens, free, strict=True):
        cut = written.index(eos) + 1 if eos in written else len(written)
        assert row == written[:cut]


def test_equal_prompts_are_read_once_and_decode_as_if_apart(policy, batch, engine, monkeypatch):
    from codegym.models.lean_llama import LeanLlama

    widths = []
    forward = policy.model.forward
    hidden = LeanLlama.hidden

    def counting_forward(*args, **kwargs):
        widths.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    def counting_hidden(self, input_ids, *args, **kwargs):
        widths.append(input_ids.shape[0])
        return hidden(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(LeanLlama, "hidden", counting_hidden)

    repeated = [0, 0, 1, 3, 3, 3]
    with torch.inference_mode():
        alone = decode(
            policy.model, batch["input_ids"], batch["attention_mask"], choose=greedy, finished=None,
            max_new_tokens=6, eos_token_ids=set(),
        )[0]  # fmt: skip
        widths.clear()
        policy.model.forward = counting_forward
        try:
            tokens = decode(
                policy.model, batch["input_ids"][repeated], batch["attention_mask"][repeated], choose=greedy,
                finished=None, max_new_tokens=6, eos_token_ids=set(),
            )[0]  # fmt: skip
        finally:
            del policy.model.forward
    assert widths[0] == 3  # the prompt pass read three distinct prompts
    assert widths[1:] == [6] * 5  # then every row decodes on its own
    assert tokens == [alone[i] for i in repeated]


def test_the_growing_cache_matches_the_default_one_past_its_room(policy, batch):
    from codegym.models.decoding import _forward_conventions, _growing

    ids, mask = batch["input_ids"], batch["attention_mask"]
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cache_argument = _forward_conventions()[0]
    with torch.inference_mode():
        runs = []
        for grow in (False, True):
            out = policy.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            cache = out.past_key_values
            if grow:
                cache = _growing(cache, 2)  # room for 2 tokens: the third and fifth pass must grow it
                assert type(cache.layers[0]).__name__ == "GrowingLayer"
            step_mask, last, logits = mask, positions[:, -1], [out.logits[:, -1]]
            for _ in range(5):
                step_mask = torch.cat([step_mask, step_mask.new_ones(len(ids), 1)], dim=1)
                last = last + 1
                out = policy.model(
                    input_ids=logits[-1].argmax(-1)[:, None], attention_mask=step_mask,
                    position_ids=last[:, None], use_cache=True, **{cache_argument: cache},
                )  # fmt: skip
                logits.append(out.logits[:, -1])
            runs.append(torch.stack(logits))
            assert cache.get_seq_length() == ids.shape[1] + 5
    torch.testing.assert_close(runs[0], runs[1])
