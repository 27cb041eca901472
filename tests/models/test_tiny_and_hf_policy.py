"""The built-in tiny model (tokenizer, architecture, save/load) and the transformers policy backend."""

from __future__ import annotations

from collections import Counter

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from codegym.models.hf_policy import HFPolicy  # noqa: E402
from codegym.models.policy import Policy, Sample  # noqa: E402
from codegym.models.tiny import EOS_TOKEN, create_tiny, synthetic_corpus  # noqa: E402
from codegym.steps import STEP_STOP, policy_prompt, render_state  # noqa: E402
from codegym.tasks.synthetic import SyntheticTasks  # noqa: E402

CODE_STEP = 'Code:\n```python\ndef solve(xs: list[int]) -> int:\n    if not xs:\n\t\treturn 0  # é "x"\n    return sum(xs) . 1\n```\n'


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return create_tiny(tmp_path_factory.mktemp("tiny"), n_tasks=200, seed=0)


@pytest.fixture(scope="session")
def policy(tiny_dir):
    return HFPolicy(tiny_dir, device="cpu", batch_size=4)


@pytest.fixture(scope="session")
def prompts():
    tasks = SyntheticTasks("train").tasks(2, seed=3)
    return [
        policy_prompt(render_state(tasks[0].problem, []), 0),
        policy_prompt(render_state(tasks[1].problem, tasks[1].reference_steps[:1]), 1),
    ]


def test_corpus_is_whole_reference_episodes_with_an_end_marker():
    [text] = synthetic_corpus(1, seed=0)
    [task] = SyntheticTasks("train").tasks(1, seed=0)
    assert text == render_state(task.problem, task.reference_steps) + EOS_TOKEN
    assert text.count("### Step") == len(task.reference_steps)


def test_tokenizer_round_trips_code_and_saves(tiny_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    assert len(tokenizer) == 1024
    ids = tokenizer(CODE_STEP)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == CODE_STEP
    assert tokenizer.decode(tokenizer(CODE_STEP, add_special_tokens=False)["input_ids"]) == CODE_STEP
    # The end marker is one special token, so a trained model can emit it in one step.
    assert tokenizer("done" + EOS_TOKEN)["input_ids"][-1] == tokenizer.eos_token_id
    assert {
        tokenizer.pad_token_id,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.unk_token_id,
    } == {
        0,
        1,
        2,
        3,
    }


def test_create_tiny_is_deterministic_and_logits_survive_save_load(tiny_dir, tmp_path):
    again = create_tiny(tmp_path / "again", n_tasks=200, seed=0)
    assert (again / "tokenizer.json").read_text() == (tiny_dir / "tokenizer.json").read_text()
    first = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    second = transformers.AutoModelForCausalLM.from_pretrained(again)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    inputs = tokenizer([CODE_STEP], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(first(**inputs).logits, second(**inputs).logits)
    other_seed = transformers.AutoModelForCausalLM.from_pretrained(
        create_tiny(tmp_path / "s1", n_tasks=200, seed=1)
    )
    assert not torch.equal(first.model.embed_tokens.weight, other_seed.model.embed_tokens.weight)


def test_parameter_count(tiny_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert isinstance(model, transformers.LlamaForCausalLM)
    assert model.num_parameters() == 984_192  # 4 layers x 213,248 + 131,072 tied embeddings + 128


def test_policy_protocol_and_shapes(policy, prompts):
    assert isinstance(policy, Policy)
    assert policy.sample([], n=2) == []
    result = policy.sample(prompts, n=3, max_new_tokens=8, seed=0)
    assert len(result) == 2 and all(len(row) == 3 for row in result)
    for sample in (s for row in result for s in row):
        assert isinstance(sample, Sample)
        assert 0 < sample.num_tokens <= 8
        assert sample.logprob < 0
        assert sample.finish_reason in ("stop", "length")
        assert STEP_STOP not in sample.text


def test_seeds_make_samples_repeatable(policy, prompts):
    first = policy.sample(prompts, n=3, max_new_tokens=12, seed=7)
    assert policy.sample(prompts, n=3, max_new_tokens=12, seed=7) == first
    other = policy.sample(prompts, n=3, max_new_tokens=12, seed=8)
    assert [s.text for row in other for s in row] != [s.text for row in first for s in row]
    # Samples of one prompt differ from each other, and do not depend on batch composition.
    assert len({s.text for s in first[0]}) == 3
    alone = policy.sample(prompts[1:], n=3, max_new_tokens=12, seed=7)
    assert [s.text for s in alone[0]] != [s.text for s in first[1]]  # the prompt's index is in the seed
    one_per_batch = HFPolicy(policy.model, tokenizer=policy.tokenizer, device="cpu", batch_size=1)
    single = one_per_batch.sample(prompts, n=3, max_new_tokens=12, seed=7)
    for row, single_row in zip(first, single, strict=True):
        assert [s.text for s in row] == [s.text for s in single_row]
        assert [s.logprob for s in row] == pytest.approx([s.logprob for s in single_row], abs=1e-3)


def test_greedy_is_deterministic_and_matches_a_forward_pass(policy, prompts):
    result = policy.sample(prompts, n=2, stop=[], max_new_tokens=6, temperature=0)
    assert result[0][0] == result[0][1]
    assert policy.sample(prompts, n=2, stop=[], max_new_tokens=6, temperature=0, seed=123) == result
    # Greedy decoding by hand: argmax token by token, summing the log-probs of the chosen tokens.
    tokenizer = policy.tokenizer
    ids = tokenizer(prompts[0], return_tensors="pt")["input_ids"]
    total = 0.0
    with torch.inference_mode():
        for _ in range(6):
            logprobs = torch.log_softmax(policy.model(ids).logits[0, -1].float(), dim=-1)
            token = int(logprobs.argmax())
            total += float(logprobs[token])
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    generated = ids[0, -6:].tolist()
    assert result[0][0].text == tokenizer.decode(generated, skip_special_tokens=True)
    assert result[0][0].logprob == pytest.approx(total, abs=1e-3)
    assert result[0][0].num_tokens == 6 and result[0][0].finish_reason == "length"


def test_stop_string_cuts_the_text(policy, prompts):
    [[free]] = policy.sample(prompts[:1], n=1, stop=[], max_new_tokens=24, seed=1)
    assert free.finish_reason == "length" and free.num_tokens == 24
    # An untrained model's output: stop at its most frequent ASCII character, seen a few tokens in.
    stop_char = Counter(c for c in free.text[1:] if c.isascii() and c.isprintable()).most_common(1)[0][0]
    [[stopped]] = policy.sample(prompts[:1], n=1, stop=[stop_char], max_new_tokens=24, seed=1)
    assert stop_char not in stopped.text
    assert stopped.text == free.text[: free.text.index(stop_char)]
    assert stopped.finish_reason == "stop"
    assert stopped.num_tokens < free.num_tokens
    assert stopped.logprob > free.logprob  # fewer tokens, fewer negative terms
    # The token after the kept ones is the one the stop string starts in: the choice to end there.
    assert stopped.end_token_id == free.token_ids[stopped.num_tokens]
    assert free.end_token_id is None  # cut by max_new_tokens: nothing chose to end it


def test_eos_ends_a_sample_and_is_not_counted_but_named(policy):
    tokenizer = policy.tokenizer
    word = tokenizer("sort", add_special_tokens=False)["input_ids"]
    tokens = [*word, tokenizer.eos_token_id, tokenizer.pad_token_id]
    logprobs = [-1.0] * len(word) + [-2.0, -4.0]
    sample = policy._to_sample(tokens, logprobs, stop=[STEP_STOP])
    assert sample == Sample(
        text="sort",
        logprob=-1.0 * len(word),
        num_tokens=len(word),
        finish_reason="stop",
        token_ids=tuple(word),
        end_token_id=tokenizer.eos_token_id,
    )


def test_chat_template_wraps_prompts(tiny_dir):
    with pytest.raises(ValueError, match="chat template"):
        HFPolicy(tiny_dir, device="cpu", use_chat_template=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.chat_template = (
        "{% for m in messages %}<|bos|>user: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    chat = HFPolicy(model, tokenizer=tokenizer, device="cpu", use_chat_template=True)
    assert chat._format("hi") == "<|bos|>user: hi\nassistant:"
    [[sample]] = chat.sample(["hi"], max_new_tokens=3, seed=0)
    assert sample.num_tokens <= 3


def test_bad_arguments_raise(policy, prompts):
    with pytest.raises(ValueError, match="n \\(samples per prompt\\)"):
        policy.sample(prompts, n=0)
    with pytest.raises(TypeError, match="list of strings"):
        policy.sample(prompts[0])
    with pytest.raises(TypeError, match="stop must be a list"):
        policy.sample(prompts, stop="\n")
    with pytest.raises(ValueError, match="temperature"):
        policy.sample(prompts, temperature=-1.0)
    with pytest.raises(ValueError, match="seed must be"):
        policy.sample(prompts, seed=-1)
    with pytest.raises(ValueError, match="batch_size"):
        HFPolicy(policy.model, tokenizer=policy.tokenizer, batch_size=0)
    with pytest.raises(TypeError, match="tokenizer="):
        HFPolicy(policy.model)


def test_each_row_draws_from_its_own_generator_what_multinomial_draws():
    """The batched sampler draws, row by row, the tokens torch.multinomial(p, 1) draws from the same
    generator: a row's samples do not depend on the rows beside it, and runs made before it repeat."""
    from codegym.models.hf_policy import _TokenChooser

    scores = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 3
    chooser = _TokenChooser(list(range(10, 16)), 0.7, torch.device("cpu"))
    alone = [torch.Generator().manual_seed(seed) for seed in range(10, 16)]
    for live in ([0, 1, 2, 3, 4, 5], [0, 2, 3, 5], [5]) * 5:
        chosen, logprobs = chooser(live, scores[live])
        expected = [
            int(torch.multinomial(torch.softmax(scores[row] / 0.7, -1), 1, generator=alone[row]))
            for row in live
        ]
        assert chosen.tolist() == expected
        torch.testing.assert_close(logprobs, torch.log_softmax(scores[live], -1)[range(len(live)), chosen])
    with pytest.raises(FloatingPointError, match="inf or nan"):
        chooser([0], torch.full((1, 50), float("nan")))
