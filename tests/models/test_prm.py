"""The transformers process reward model: format, batching, truncation, save/load, training, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from codegym.models.hf_prm import HFProcessRewardModel, load_prm  # noqa: E402
from codegym.models.prm_calibration import MIN_SCALE, calibrate  # noqa: E402
from codegym.models.prm_data import synthetic_step_labels  # noqa: E402
from codegym.models.prm_eval import evaluate_prm, roc_auc  # noqa: E402
from codegym.models.prm_format import DEFAULT_STEP_TAG, PRM_CONFIG_NAME  # noqa: E402
from codegym.models.tiny import create_tiny  # noqa: E402
from codegym.rewards import ProcessRewardModel, aggregate, checked_scores  # noqa: E402
from codegym.tasks.synthetic import SyntheticTasks  # noqa: E402
from codegym.training.prm import prepare_prm, train_prm  # noqa: E402

# A small shape keeps every training test to seconds on a busy CPU.
TINY_SHAPE = {"hidden_size": 64, "layers": 2, "heads": 2}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """An untrained tiny causal LM (no step tag in its vocabulary yet)."""
    return create_tiny(tmp_path_factory.mktemp("tiny-base"), n_tasks=200, seed=0, **TINY_SHAPE)


@pytest.fixture(scope="module")
def prm(tiny_base):
    """An untrained PRM (LM head) with the step tag added: what training starts from."""
    model, _ = prepare_prm(str(tiny_base), head="lm", device="cpu", seed=0)
    return model


@pytest.fixture(scope="module")
def likelihood_prm(tiny_base):
    """An untrained PRM with the likelihood head (no tag)."""
    model, _ = prepare_prm(str(tiny_base), head="likelihood", device="cpu", seed=0)
    return model


@pytest.fixture(scope="module")
def tasks():
    return SyntheticTasks("train", min_ops=2, max_ops=3).tasks(6, seed=3)


@pytest.fixture(scope="module")
def train_labels(sandbox_factory):
    return synthetic_step_labels("train", n_tasks=6, seed=3, min_ops=2, sandbox=sandbox_factory("local"))


# --- format and scoring ----------------------------------------------------------------------------


def test_scores_follow_the_protocol_and_batching_changes_nothing(prm, tasks):
    assert isinstance(prm, ProcessRewardModel)
    assert len(prm.tokenizer(DEFAULT_STEP_TAG, add_special_tokens=False)["input_ids"]) == 1
    paths = [(task.problem, list(task.reference_steps)) for task in tasks] + [(tasks[0].problem, [])]
    batched = prm.score_batch(paths)
    assert [len(scores) for scores in batched] == [len(steps) for _, steps in paths]
    for (problem, steps), scores in zip(paths, batched, strict=True):
        single = checked_scores(prm, problem, steps)
        np.testing.assert_allclose(single, scores, atol=1e-5)
        assert all(0.0 < score < 1.0 for score in scores)
    # Step j's score depends only on the steps up to j (one pass, causal model).
    problem, steps = paths[0]
    np.testing.assert_allclose(prm.score(problem, steps[:2]), batched[0][:2], atol=1e-5)
    assert prm.score(problem, [*steps[:2], "something else"])[:2] == pytest.approx(batched[0][:2], abs=1e-5)


def test_the_format_is_the_env_text_with_a_tag_after_each_step(prm, tasks):
    task = tasks[0]
    [window] = prm.encode(task.problem, task.reference_steps)
    tag_id = prm.tokenizer.convert_tokens_to_ids(DEFAULT_STEP_TAG)
    assert [window.input_ids[first] for first, _ in window.read_spans] == [tag_id] * 3
    assert window.input_ids[0] == prm.tokenizer.bos_token_id
    text = prm.tokenizer.decode(window.input_ids, skip_special_tokens=False)
    from codegym.steps import render_state

    assert text.replace(DEFAULT_STEP_TAG, "") == prm.tokenizer.bos_token + render_state(
        task.problem, task.reference_steps
    )
    assert text.count(DEFAULT_STEP_TAG) == 3 and text.endswith(DEFAULT_STEP_TAG)


def test_long_paths_are_cut_on_the_left_into_windows_that_end_at_tags(prm, tiny_base, tasks):
    task = tasks[1]
    steps = list(task.reference_steps)
    [whole] = prm.encode(task.problem, steps)
    short = HFProcessRewardModel(prm.model, tokenizer=prm.tokenizer, device="cpu", max_length=90)
    windows = short.encode(task.problem, steps)
    assert len(whole.input_ids) > 90 and len(windows) > 1
    assert sorted(i for w in windows for i in w.step_indices) == [0, 1, 2]
    tag_id = prm.tokenizer.convert_tokens_to_ids(DEFAULT_STEP_TAG)
    for window in windows:
        assert len(window.input_ids) <= 90
        assert window.input_ids[0] == prm.tokenizer.bos_token_id  # the special prefix survives the cut
        assert window.input_ids[-1] == tag_id
        # Each window is the tail of the whole path up to its last tag.
        end = whole.read_spans[window.step_indices[-1]][1]
        assert window.input_ids[1:] == whole.input_ids[end - len(window.input_ids) + 1 : end]
    scores = short.score(task.problem, steps)
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)
    # A window that holds the whole path scores exactly as the untruncated model.
    fits = HFProcessRewardModel(
        prm.model, tokenizer=prm.tokenizer, device="cpu", max_length=len(whole.input_ids)
    )
    np.testing.assert_allclose(fits.score(task.problem, steps), prm.score(task.problem, steps), atol=1e-6)


def test_likelihood_head_is_the_mean_log_probability_of_each_steps_tokens(likelihood_prm, tasks):
    prm, task = likelihood_prm, tasks[2]
    steps = list(task.reference_steps)
    [window] = prm.encode(task.problem, steps)
    from codegym.steps import render_state

    # No tag: the text is exactly what the policy reads, and each span holds exactly its step.
    assert prm.tokenizer.decode(window.input_ids) == prm.tokenizer.bos_token + render_state(
        task.problem, steps
    )
    assert [prm.tokenizer.decode(window.input_ids[a:b]) for a, b in window.read_spans] == steps
    with torch.inference_mode():
        raw = prm.step_logits([window], calibrated=False)
        logits = prm.model(torch.tensor([window.input_ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    expected = [
        np.mean([logprobs[t - 1, window.input_ids[t]].item() for t in range(a, b)])
        for a, b in window.read_spans
    ]
    np.testing.assert_allclose(raw.tolist(), expected, atol=1e-5)
    scores = prm.score(task.problem, steps)
    np.testing.assert_allclose(prm.score(task.problem, steps[:2]), scores[:2], atol=1e-6)
    np.testing.assert_allclose(prm.score_batch([(task.problem, steps)] * 2), [scores, scores], atol=1e-6)
    with pytest.raises(ValueError, match="step 1 is blank"):
        prm.score(task.problem, ["Outline: x", "   "])
    # A step longer than a whole window is read on its last tokens.
    short = HFProcessRewardModel(
        prm.model, tokenizer=prm.tokenizer, head="likelihood", device="cpu", max_length=40
    )
    windows = short.encode(task.problem, steps)
    assert len(windows) == 3 and all(len(w.input_ids) <= 40 for w in windows)
    assert all(1 <= a < b <= len(w.input_ids) for w in windows for a, b in w.read_spans)
    assert len(short.score(task.problem, steps)) == 3


def test_calibrate_is_platt_scaling(likelihood_prm, tasks):
    prm = likelihood_prm
    windows = [w for task in tasks for w in prm.encode(task.problem, task.reference_steps)]
    with torch.inference_mode():
        raw = prm.step_logits(windows, calibrated=False)
    targets = (raw > raw.median()).float().tolist()  # the likelier half is "good"
    before = prm.calibration.detach().clone()
    try:
        calibrate(prm, windows, targets)
        assert prm.calibration[0].item() > 0  # likelier is better
        with torch.inference_mode():
            probabilities = torch.sigmoid(prm.step_logits(windows))
        # At the cross-entropy optimum with a bias, the mean probability equals the mean target.
        assert probabilities.mean().item() == pytest.approx(np.mean(targets), abs=0.02)
        assert roc_auc(probabilities.tolist(), targets) == 1.0
        with pytest.raises(ValueError, match="one target per read span"):
            calibrate(prm, windows, targets[:-1])
    finally:
        prm.calibration.data = before


def test_calibration_never_turns_the_score_around(likelihood_prm, tasks):
    # Labels that favour the unlikelier steps (what a few tree rows can say by chance) once fitted a
    # negative scale, and the PRM ranked held-out steps backwards (AUC 0.10).
    prm = likelihood_prm
    windows = [w for task in tasks for w in prm.encode(task.problem, task.reference_steps)]
    with torch.inference_mode():
        raw = prm.step_logits(windows, calibrated=False)
    targets = (raw < raw.median()).float().tolist()  # the unlikelier half is "good"
    before = prm.calibration.detach().clone()
    try:
        calibrate(prm, windows, targets)
        assert prm.calibration[0].item() >= MIN_SCALE * 0.999
        with torch.inference_mode():
            scores = prm.step_logits(windows)
        assert roc_auc(scores.tolist(), (raw > raw.median()).float().tolist()) == 1.0  # the raw order kept
    finally:
        prm.calibration.data = before


def test_bad_input_gets_a_clear_error(prm, tiny_base, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="contains the step tag"):
        prm.score("p", ["fine", f"sneaky {DEFAULT_STEP_TAG}"])
    with pytest.raises(TypeError, match="sequence of strings"):
        prm.score("p", "one string")
    with pytest.raises(TypeError, match="step 1 must be a string"):
        prm.score("p", ["ok", 3])
    with pytest.raises(ValueError, match="head must be one of"):
        HFProcessRewardModel(prm.model, tokenizer=prm.tokenizer, head="regression")
    with pytest.raises(ValueError, match=r"good_token 'plus' is \d+ tokens"):
        HFProcessRewardModel(prm.model, tokenizer=prm.tokenizer, good_token="plus")
    with pytest.raises(ValueError, match="max_length=2 leaves no room"):
        HFProcessRewardModel(prm.model, tokenizer=prm.tokenizer, max_length=2)
    with pytest.raises(TypeError, match="non-empty string"):
        load_prm(None)
    monkeypatch.setattr("codegym.models.tiny.CHECKPOINTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="codegym train prm"):
        load_prm("tiny")


def test_classifier_head_needs_a_causal_backbone(tiny_base, prm):
    classifier, _ = prepare_prm(str(tiny_base), head="classifier", device="cpu", seed=0)
    assert type(classifier.model).__name__ == "LlamaForTokenClassification"
    assert classifier.model.config.id2label == {0: "bad", 1: "good"}
    scores = classifier.score("p", ["a", "b"])
    assert len(scores) == 2 and all(0 < s < 1 for s in scores)
    encoder = transformers.BertForTokenClassification(
        transformers.BertConfig(
            vocab_size=len(prm.tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=2,
        )
    )
    with pytest.raises(ValueError, match="causal"):
        HFProcessRewardModel(encoder, tokenizer=prm.tokenizer, head="classifier", device="cpu")


def test_tiny_base_is_the_trained_policy_when_there_else_an_untrained_model(
    tiny_base, monkeypatch, tmp_path, caplog
):
    import shutil

    import codegym.models.tiny as tiny

    monkeypatch.setattr(tiny, "CHECKPOINTS_DIR", tmp_path)
    monkeypatch.setattr(tiny, "create_tiny", lambda folder, seed: tiny_base)  # skip the 2000-task corpus
    prm, used = prepare_prm("tiny", head="likelihood", device="cpu")
    assert used == "tiny (untrained: create_tiny)" and "codegym train policy" in caplog.text
    shutil.copytree(tiny_base, tmp_path / "tiny-policy")
    prm, used = prepare_prm("tiny", head="likelihood", device="cpu")
    assert used == str(tmp_path / "tiny-policy") and prm.format.head == "likelihood"


@pytest.mark.parametrize("head", ["lm", "classifier", "likelihood"])
def test_save_load_round_trip_through_transformers(tiny_base, tasks, tmp_path, head):
    original, _ = prepare_prm(str(tiny_base), head=head, device="cpu", seed=0)
    original.calibration.data = torch.tensor([2.5, -0.75])
    folder = original.save_pretrained(tmp_path / head)
    saved = json.loads((folder / PRM_CONFIG_NAME).read_text())
    assert (saved["head"], saved["scale"], saved["bias"]) == (head, 2.5, -0.75)
    loaded = load_prm(str(folder), device="cpu")
    assert loaded.format == original.format
    assert type(loaded.model) is type(original.model)
    paths = [(task.problem, list(task.reference_steps)) for task in tasks[:3]]
    np.testing.assert_allclose(loaded.score_batch(paths), original.score_batch(paths), atol=1e-6)


# --- training ----------------------------------------------------------------------------------------


def _train(out_dir, data, base, **options):
    settings = {
        "head": "lm",
        "epochs": 1,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "eval_tasks": 0,
        "device": "cpu",
        "progress": False,
        "seed": 0,
    }
    return train_prm(out_dir, data=data, base=str(base), **{**settings, **options})


@pytest.mark.parametrize(
    ("objective", "labels", "head"),
    [
        ("pointwise", "hard", "lm"),
        ("pointwise", "soft", "classifier"),
        ("pairwise", "hard", "lm"),
        ("pointwise", "soft", "likelihood"),
    ],
)
@pytest.mark.slow
def test_training_changes_parameters_and_repeats_with_a_seed(
    tiny_base, train_labels, tmp_path, objective, labels, head
):
    options = {"objective": objective, "labels": labels, "head": head}
    three_tasks = train_labels.filter(lambda row: row["task_id"] in set(train_labels["task_id"][:30]))
    first = _train(tmp_path / "a", three_tasks, tiny_base, **options)
    second = _train(tmp_path / "b", three_tasks, tiny_base, **options)
    before = transformers.AutoModelForCausalLM.from_pretrained(tiny_base).state_dict()
    prm_a, prm_b = load_prm(str(first.out_dir), device="cpu"), load_prm(str(second.out_dir), device="cpu")
    assert prm_a.format == prm_b.format and prm_a.format.head == head
    after_a, after_b = prm_a.model.state_dict(), prm_b.model.state_dict()
    assert all(torch.equal(after_a[name], after_b[name]) for name in after_a)
    shared = [name for name in before if name in after_a]  # a classifier has no lm_head, a new score head
    changed = [name for name in shared if not torch.equal(before[name], after_a[name][: len(before[name])])]
    assert len(shared) >= len(before) - 1 and len(changed) >= len(shared) // 2  # the whole network learns
    metrics = json.loads(first.metrics_path.read_text())
    assert metrics["objective"] == objective and metrics["labels"] == labels
    assert len(metrics["loss_curve"]) == first.optimizer_steps == -(-first.examples // 8)
    assert first.final_loss == second.final_loss and np.isfinite(first.final_loss)
    third = _train(tmp_path / "c", three_tasks, tiny_base, **options, seed=1)
    assert third.final_loss != first.final_loss


@pytest.mark.slow
def test_short_training_scores_reference_paths_above_corrupted_ones(tiny_base, train_labels, tmp_path):
    # Two tasks, many epochs: a from-scratch tiny model learns these in seconds; telling good steps from
    # bad ones on unseen tasks takes a trained policy as the base and minutes (benchmarks/studies/prm_auc.py).
    tasks = SyntheticTasks("train", min_ops=2, max_ops=3).tasks(2, seed=3)
    two_tasks = train_labels.filter(lambda row: row["task_id"] in {task.task_id for task in tasks})
    before, _ = prepare_prm(str(tiny_base), head="lm", device="cpu", seed=0)
    result = _train(
        tmp_path / "prm",
        two_tasks,
        tiny_base,
        epochs=25,
        batch_size=8,
        learning_rate=3e-3,
        warmup_fraction=0.1,
    )
    trained = load_prm(str(result.out_dir), device="cpu")
    for task in tasks:
        # Every corrupted path in the labels: a bad step after its prefix.
        bad_rows = [row for row in two_tasks if row["task_id"] == task.task_id and row["hard_label"] == 0.0]
        assert len(bad_rows) >= 3
        reference = aggregate(trained.score(task.problem, task.reference_steps), "min")
        for row in bad_rows:
            corrupted = [*row["prefix"], row["step"]]
            assert reference > aggregate(trained.score(task.problem, corrupted), "min") + 0.3, row["step"]
            # Untrained, the two paths scored alike.
            untrained = [
                aggregate(before.score(task.problem, path), "min")
                for path in (task.reference_steps, corrupted)
            ]
            assert abs(untrained[0] - untrained[1]) < 0.05
    evaluation = evaluate_prm(trained, two_tasks)
    assert evaluation.auc > 0.95
    assert evaluation.mean_score_good > evaluation.mean_score_bad + 0.5


def test_pairwise_needs_siblings_with_different_labels(tiny_base, train_labels, tmp_path):
    all_good = train_labels.filter(lambda row: row["hard_label"] == 1.0)
    with pytest.raises(ValueError, match="no sibling steps"):
        _train(tmp_path / "p", all_good, tiny_base, objective="pairwise")
    with pytest.raises(ValueError, match="objective must be one of"):
        _train(tmp_path / "p", train_labels, tiny_base, objective="listwise")


# --- evaluation --------------------------------------------------------------------------------------


def test_roc_auc_matches_hand_computed_values():
    assert roc_auc([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert roc_auc([0.9, 0.2, 0.6, 0.6], [1, 0, 1, 0]) == 0.875  # the 0.6 tie counts half
    assert roc_auc([0.5] * 4, [1, 0, 1, 0]) == 0.5
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([0.1, 0.2], [1, 1])


def test_evaluate_prm_with_an_oracle_and_an_inverted_oracle(train_labels):
    good = {(row["problem"], row["step"]) for row in train_labels if row["hard_label"] == 1.0}

    class Oracle:
        def __init__(self, sign):
            self.sign = sign

        def score(self, problem, steps):
            return [0.5 + self.sign * (0.4 if (problem, step) in good else -0.4) for step in steps]

    perfect = evaluate_prm(Oracle(+1), train_labels)
    assert perfect.auc == 1.0 and perfect.pair_accuracy == 1.0
    assert perfect.mean_score_good == pytest.approx(0.9) and perfect.mean_score_bad == pytest.approx(0.1)
    assert set(perfect.auc_by_kind) == {"outline", "refine", "code"}
    assert perfect.steps == len(train_labels)
    assert evaluate_prm(Oracle(-1), train_labels).auc == 0.0
