"""The model-based test case generator: case-line parsing, validation through a scripted policy, and the
SFT and DPO training that O1-Coder's TCG recipe uses (on a very small model, a few steps)."""

from __future__ import annotations

import json

import pytest

from codegym.models.policy import Policy, Sample
from codegym.sandbox import CallTest
from codegym.tasks import Task
from codegym.tasks.synthetic import SyntheticTasks
from codegym.tcg.base import Proposal
from codegym.tcg.model_tcg import (
    CaseSyntaxError,
    ModelTCG,
    format_case,
    format_cases,
    parse_case_line,
    parse_cases,
    tcg_prompt,
)

# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("line", "args", "kwargs", "expected"),
    [
        ("solve([3, 1, 2]) -> [1, 2, 3]", ([3, 1, 2],), None, [1, 2, 3]),
        ("  solve('') -> ''  ", ("",), None, ""),
        ("solve(-4) -> -8", (-4,), None, -8),
        ("solve('a -> b') -> 'A -> B'", ("a -> b",), None, "A -> B"),  # an arrow inside a string
        ("solve(1, b=(2, 3)) -> {'x': None}", (1,), {"b": (2, 3)}, {"x": None}),
        ("solve(1.5) -> True", (1.5,), None, True),
    ],
)
def test_case_lines_parse_to_proposals_with_expected_outputs(line, args, kwargs, expected):
    assert parse_case_line(line, "solve") == Proposal(args=args, kwargs=kwargs, expected=expected)


def test_format_and_parse_round_trip_on_synthetic_tests():
    for task in SyntheticTasks("train").tasks(20, seed=1):
        parsed = parse_cases(format_cases(task.hidden_tests), "solve")
        assert parsed.malformed == ()
        assert [(p.args, p.expected) for p in parsed.proposals] == [
            (t.args, t.expected) for t in task.hidden_tests
        ]
    assert format_case("f", (1, "a"), {"k": [2]}, None) == "f(1, 'a', k=[2]) -> None"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("solve([1, 2])", "no '->'"),
        ("solve([1, 2]) ->", "the expected output is not an expression"),
        ("other([1]) -> 1", "not a call of solve"),
        ("solve.x([1]) -> 1", "not a call of solve"),
        ("solve(x) -> 1", "an argument is not a literal"),  # a name, not a value
        ("solve(1) -> [1, {2: [3]}, {[4]}]", "not a literal"),  # an unhashable set item
        ("solve(*[1, 2]) -> 3", "*args"),
        ("solve(**{'a': 1}) -> 3", "*args"),
        ("solve([1] -> 1", "the call is not an expression"),
        ("solve(1) -> 2 -> 3", "the expected output is not an expression"),
        ("solve(" + "[" * 3000 + "]" * 3000 + ") -> 1", "longer than"),
    ],
)
def test_malformed_lines_raise_case_syntax_error_with_the_reason(line, reason):
    with pytest.raises(CaseSyntaxError, match=reason.replace("*", r"\*")):
        parse_case_line(line, "solve")


def test_hostile_lines_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    hostile = [
        f"solve(__import__('pathlib').Path({str(marker)!r}).touch()) -> 1",
        f"solve(1) -> __import__('pathlib').Path({str(marker)!r}).touch()",
        f"__import__('pathlib').Path({str(marker)!r}).touch() -> 1",
        f"solve(open({str(marker)!r}, 'w')) -> 1",
        "solve((lambda: 1)()) -> 1",
        "solve(2 ** 10 ** 10) -> 1",  # would hang if evaluated; literal_eval refuses operators
        "solve([i for i in range(10**9)]) -> 1",
    ]
    parsed = parse_cases("\n".join(hostile), "solve")
    assert parsed.proposals == ()
    assert len(parsed.malformed) == len(hostile)
    assert not marker.exists()


def test_parse_cases_counts_malformed_lines_and_ignores_blank_ones():
    parsed = parse_cases("solve(1) -> 2\n\n   \nnonsense\nsolve(2) -> 4\nsolve(3) ->", "solve")
    assert [p.args for p in parsed.proposals] == [(1,), (2,)]
    assert parsed.malformed == ("nonsense", "solve(3) ->")
    assert (parsed.lines, parsed.parse_rate) == (4, 0.5)


def test_prompt_holds_the_problem_and_optionally_the_reference(double_task):
    plain = tcg_prompt(double_task)
    assert plain == f"### Problem\n{double_task.problem}\n\n### Tests\n"
    shown = tcg_prompt(double_task, with_reference=True)
    assert "### Reference\n```python\ndef double(x):\n    return 2 * x\n```\n" in shown
    assert shown.endswith("### Tests\n")


# ------------------------------------------------------------------------------------------ generator


class ScriptedPolicy:
    """A Policy test double: for a prompt containing a key, returns that key's fixed texts; records calls."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.calls: list[dict] = []

    def sample(self, prompts, n=1, *, stop=(), max_new_tokens=256, temperature=1.0, seed=None):
        self.calls.append({"prompts": list(prompts), "n": n, "stop": tuple(stop), "seed": seed})
        out = []
        for prompt in prompts:
            [texts] = [texts for key, texts in self.script.items() if key in prompt]
            out.append([Sample(texts[j % len(texts)], 0.0, 1, "stop") for j in range(n)])
        return out


@pytest.fixture
def square_task():
    return Task(
        task_id="toy/square",
        problem="Write `square(x: int) -> int` that returns x times x.",
        entry_point="square",
        hidden_tests=(CallTest("square", (3,), expected=9),),
        reference_solution="def square(x):\n    return x * x\n",
    )


def test_generator_keeps_only_cases_the_reference_passes(double_task, square_task, sandbox_factory, tmp_path):
    marker = tmp_path / "pwned"
    policy = ScriptedPolicy(
        {
            "double": [
                "double(2) -> 4\ndouble(3) -> 7\nnot a case\ndouble(x=5) -> 10",
                f"double(2) -> 4\ndouble(__import__('os').system('touch {marker}')) -> 0\ndouble(-1) -> -2",
            ],
            "square": ["square(4) -> 16\nsquare(5) -> 26"],
        }
    )
    assert isinstance(policy, Policy)
    tcg = ModelTCG(policy, sandbox=sandbox_factory("local"), samples_per_task=2, seed=7)
    double, square = tcg.generate_reports([double_task, square_task], n=10)

    assert len(policy.calls) == 1  # both tasks in one batched call
    assert policy.calls[0]["n"] == 2 and policy.calls[0]["seed"] is not None
    # double: 5 parsed cases, 4 valid (3 -> 7 is wrong), one of them a repeat of double(2).
    assert (double.proposed, double.valid, double.duplicates) == (5, 4, 1)
    assert [(t.args, t.kwargs, t.expected) for t in double.tests] == [
        ((2,), None, 4),
        ((), {"x": 5}, 10),
        ((-1,), None, -2),
    ]
    assert double.validity_rate == pytest.approx(0.8)
    assert tcg.last_parses["toy/double"].malformed == (
        "not a case",
        f"double(__import__('os').system('touch {marker}')) -> 0",
    )
    # square: two samples of the same text (the script cycles), one case valid in each.
    assert (square.proposed, square.valid, square.duplicates) == (4, 2, 1)
    assert [(t.args, t.expected) for t in square.tests] == [((4,), 16)]
    assert not marker.exists()

    evaluation = tcg.evaluate([double_task, square_task], n=2)
    assert evaluation.as_dict() == {
        "tasks": 2,
        "lines": 11,
        "malformed": 2,
        "proposed": 9,
        "valid": 6,
        "kept": 3,
        "tasks_with_tests": 2,
        "validity_rate": pytest.approx(6 / 9),
        "line_validity_rate": pytest.approx(6 / 11),
        "parse_rate": pytest.approx(9 / 11),
    }


def test_generator_seed_depends_on_its_seed_and_tasks(double_task, square_task, sandbox_factory):
    policy = ScriptedPolicy({"double": ["double(1) -> 2"], "square": ["square(1) -> 1"]})
    box = sandbox_factory("local")
    ModelTCG(policy, sandbox=box, seed=0).generate(double_task)
    ModelTCG(policy, sandbox=box, seed=0).generate(double_task)
    ModelTCG(policy, sandbox=box, seed=1).generate(double_task)
    ModelTCG(policy, sandbox=box, seed=0).generate_reports([double_task, square_task])
    seeds = [call["seed"] for call in policy.calls]
    assert seeds[0] == seeds[1] and len(set(seeds)) == 3


def test_generator_rejects_bad_arguments():
    policy = ScriptedPolicy({})
    with pytest.raises(ValueError, match="samples_per_task"):
        ModelTCG(policy, samples_per_task=0)
    with pytest.raises(ValueError, match="policy_options"):
        ModelTCG(policy, policy_options={"device": "cpu"})
    with pytest.raises(TypeError, match="'tiny', a hub id"):
        ModelTCG(3.5)


# ------------------------------------------------------------------------------------------ training

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from codegym.tcg.tcg_data import dpo_pairs, sft_examples, shuffled_outputs  # noqa: E402
from codegym.training.tcg import METRICS_FILE, train_tcg, train_tcg_dpo, train_tcg_sft  # noqa: E402


@pytest.fixture(scope="module")
def train_tasks():
    return SyntheticTasks("train").tasks(8, seed=0)


@pytest.fixture(scope="module")
def small_base(tmp_path_factory):
    """A very small untrained model with the tiny tokenizer, so a few training steps take a second."""
    from codegym.models.tiny import create_tiny

    torch.set_num_threads(1)
    return create_tiny(tmp_path_factory.mktemp("base"), n_tasks=100, hidden_size=32, layers=1, heads=2)


def _weights(path):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sft_rows_are_prompt_and_the_tasks_own_cases(train_tasks):
    rows = sft_examples(train_tasks)
    assert len(rows) == len(train_tasks)
    assert rows[0]["prompt"] == tcg_prompt(train_tasks[0])
    assert rows[0]["completion"] == format_cases(train_tasks[0].hidden_tests)
    assert len(rows[0]["completion"].splitlines()) == 8


def test_dpo_rejected_cases_keep_inputs_and_shuffle_outputs(train_tasks):
    import numpy as np

    rows = dpo_pairs(train_tasks, seed=3)
    assert rows == dpo_pairs(train_tasks, seed=3)
    assert rows != dpo_pairs(train_tasks, seed=4)
    for row, task in zip(rows, train_tasks, strict=True):
        chosen = parse_cases(row["chosen"], "solve").proposals
        rejected = parse_cases(row["rejected"], "solve").proposals
        assert [p.args for p in chosen] == [p.args for p in rejected]
        assert sorted(map(repr, (p.expected for p in chosen))) == sorted(
            map(repr, (p.expected for p in rejected))
        )
        assert row["chosen"] != row["rejected"]
        assert row["chosen"] == format_cases(task.hidden_tests)
    # Outputs that shuffling cannot change give no pair.
    same = [CallTest("f", (i,), expected=0) for i in range(3)]
    assert shuffled_outputs(same, np.random.default_rng(0)) is None


@pytest.mark.slow
def test_sft_and_dpo_steps_change_parameters_and_repeat_with_a_seed(small_base, train_tasks, tmp_path):
    before = _weights(small_base)
    rows = sft_examples(train_tasks)
    sft_a = train_tcg_sft(small_base, rows, tmp_path / "sft_a", epochs=1, batch_size=4, seed=0)
    sft_b = train_tcg_sft(small_base, rows, tmp_path / "sft_b", epochs=1, batch_size=4, seed=0)
    after_sft = _weights(sft_a)
    assert not _same(before, after_sft)
    assert _same(after_sft, _weights(sft_b))

    pairs = dpo_pairs(train_tasks, seed=0)
    dpo_a = train_tcg_dpo(sft_a, pairs, tmp_path / "dpo_a", epochs=1, batch_size=4, seed=0)
    dpo_b = train_tcg_dpo(sft_a, pairs, tmp_path / "dpo_b", epochs=1, batch_size=4, seed=0)
    after_dpo = _weights(dpo_a)
    assert not _same(after_sft, after_dpo)
    assert _same(after_dpo, _weights(dpo_b))


@pytest.mark.slow
def test_train_tcg_writes_a_loadable_model_and_its_metrics(small_base, sandbox_factory, tmp_path):
    heldout = SyntheticTasks("test").tasks(2, seed=0)
    result = train_tcg(
        tmp_path / "tcg",
        n_tasks=6,
        dpo_tasks=4,
        sft_epochs=1,
        dpo_epochs=1,
        batch_size=4,
        eval_tasks=heldout,
        base=small_base,
        sandbox=sandbox_factory("local"),
    )
    assert (result.sft_examples, result.dpo_pairs) == (6, 4)
    assert set(result.evaluations) == {"base", "sft", "dpo"}
    metrics = json.loads((tmp_path / "tcg" / METRICS_FILE).read_text())
    assert metrics == json.loads(json.dumps(result.as_dict()))
    assert metrics["evaluations"]["dpo"]["tasks"] == 2
    assert metrics["settings"]["n_tasks"] == 6
    # The folder holds the DPO-stage model: loaded by a ModelTCG, it samples exactly what was measured.
    from codegym.models.hf_policy import HFPolicy

    tcg = ModelTCG(
        tmp_path / "tcg",
        sandbox=sandbox_factory("local"),
        policy_options={"device": "cpu", "batch_size": 32},  # evaluate_tcg's batch size
    )
    assert isinstance(tcg.policy, HFPolicy)
    again = tcg.evaluate(heldout, n=8)
    assert again.as_dict() == metrics["evaluations"]["dpo"]
