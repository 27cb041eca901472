"""Train a process reward model from step labels, and measure it: ``codegym train prm``.

Two objectives over the same model output, each step's "good" logit ``z`` (see
:mod:`codegym.models.hf_prm`; the score is ``sigmoid(z)``):

- ``"pointwise"``: binary cross-entropy between ``sigmoid(z)`` and each step's label, ``"hard"`` (0/1,
  Math-Shepherd's hard estimate) or ``"soft"`` (in [0, 1], its soft estimate and O1-Coder's step values).
  Rows that extend one another (a reference outline, then its refinement, ...) share one sequence with a
  loss at each labelled step.
- ``"pairwise"``: Bradley-Terry on sibling steps (same prefix, different labels),
  ``-log sigmoid(z_chosen - z_rejected)``; the pairs come from :func:`~codegym.models.prm_data.sibling_pairs`.
  Bradley-Terry fixes only differences, so the scale and offset of ``z`` are fitted afterwards (Platt
  scaling on the point-wise labels) to make the scores probabilities again.

The likelihood head's scale and offset are fitted the same way before training starts, as its raw value
(a mean log-probability) has neither.

The loop is our own, not TRL's: ``RewardTrainer`` (the only reward trainer left in TRL) scores a whole
sequence with a one-logit ``AutoModelForSequenceClassification`` head at its last token and appends EOS,
while a PRM scores every step tag of a path in one pass with the head it is served with; fitting step
pairs into it would need a different model class at training and at scoring time. A loop of our own is
short, seeded and shares :meth:`~codegym.models.hf_prm.HFProcessRewardModel.step_logits` with scoring,
so what is trained is exactly what is served.

Example:
    >>> from codegym.training.prm import train_prm
    >>> result = train_prm("runs/prm", objective="pointwise", labels="hard")  # doctest: +SKIP
    >>> result.eval_auc  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codegym.errors import UserError
from codegym.models.hf_prm import HFProcessRewardModel
from codegym.models.prm_calibration import MIN_SCALE, calibrate
from codegym.models.prm_data import (
    LABEL_KINDS,
    STEP_PAIR_FEATURES,
    label_balance,
    load_step_labels,
    sibling_pairs,
    synthetic_step_labels,
)
from codegym.models.prm_eval import PRMEvaluation, evaluate_prm, merge_paths
from codegym.models.prm_format import DEFAULT_STEP_TAG, HEADS, TAG_HEADS, PRMFormat, ScoringWindow
from codegym.training.run import run_folder, seed_everything, write_metrics

if TYPE_CHECKING:
    from datasets import Dataset

    from codegym.sandbox import Sandbox

logger = logging.getLogger(__name__)

OBJECTIVES = ("pointwise", "pairwise")
METRICS_FILE = "training.json"  # the same name as the policy's training record


@dataclass(frozen=True)
class PRMTrainingResult:
    """What :func:`train_prm` did.

    Attributes:
        out_dir: the saved PRM (load it with ``load_prm(str(out_dir))``).
        metrics_path: the JSON file with the loss curve, the settings and the evaluation.
        objective: "pointwise" or "pairwise".
        labels: "hard" or "soft".
        examples: training sequences (point-wise) or pairs (pair-wise) per epoch.
        optimizer_steps: the number of updates.
        final_loss: the mean loss over the last tenth of the updates.
        train_seconds: wall time of the training loop (data labelling and evaluation excluded).
        evaluation: held-out evaluation, or None when ``eval_tasks=0``.
    """

    out_dir: Path
    metrics_path: Path
    objective: str
    labels: str
    examples: int
    optimizer_steps: int
    final_loss: float
    train_seconds: float
    evaluation: PRMEvaluation | None

    @property
    def eval_auc(self) -> float | None:
        return None if self.evaluation is None else self.evaluation.auc


def train_prm(
    out_dir: str | PathLike[str],
    *,
    data: str | PathLike[str] | Dataset | None = None,
    base: str = "tiny",
    head: str = "likelihood",
    objective: str = "pointwise",
    labels: str = "hard",
    n_tasks: int = 300,
    corruptions_per_step: int = 2,
    eval_tasks: int = 200,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 3e-4,
    weight_decay: float = 0.0,
    warmup_fraction: float = 0.05,
    max_length: int | None = None,
    seed: int = 0,
    sandbox: str | Sandbox = "local",
    device: str | None = None,
    progress: bool = True,
    lora_r: int = 0,
    protocol: str = "",
) -> PRMTrainingResult:
    """Train a PRM on step labels, save it with ``save_pretrained`` and write ``training.json``.

    ``training.json`` holds the settings, the loss curve, the calibration and the held-out evaluation.

    Deterministic for a seed on the same machine and device: the labels, the added tag's embedding, the
    classifier head, the shuffling and the updates all draw from ``seed``.

    Args:
        out_dir: where the PRM (model, tokenizer, ``prm_config.json``) and the metrics go.
        data: step labels (:data:`~codegym.models.prm_data.STEP_LABEL_FEATURES`): a ``Dataset``, a
            ``save_to_disk`` folder or a ``.jsonl``/``.parquet`` file; None labels ``n_tasks`` training-split
            synthetic tasks by execution (:func:`~codegym.models.prm_data.synthetic_step_labels`).
        base: the model to start from: ``"tiny"`` (the trained tiny policy when its checkpoint exists,
            else a fresh untrained tiny model), a local folder or a hub id. A saved PRM continues training.
        head: ``"likelihood"`` (the mean log-probability of the step, calibrated; the default, as it starts
            from what a trained policy knows), ``"lm"`` ("+"/"-" after each tag) or ``"classifier"`` (a new
            two-class head at each tag). See :mod:`codegym.models.hf_prm`.
        objective: ``"pointwise"`` (cross-entropy on each step's label) or ``"pairwise"`` (Bradley-Terry on
            sibling steps).
        labels: ``"hard"`` or ``"soft"``: the label column the point-wise loss fits, and the one that
            orders sibling pairs.
        n_tasks: synthetic training tasks when ``data`` is None.
        corruptions_per_step: corrupted siblings per reference step in the synthetic labels.
        eval_tasks: held-out (test-split) synthetic tasks whose labelled steps measure the result; 0 skips.
        epochs: passes over the training examples.
        batch_size: sequences (point-wise) or pairs (pair-wise) per update.
        learning_rate: AdamW's peak learning rate (3e-4 suits fine-tuning the tiny policy; a tag head on an
            untrained tiny model wants ~3e-3, a large hub model ~1e-5).
        weight_decay: AdamW's weight decay.
        warmup_fraction: the share of updates over which the learning rate ramps up, then decays linearly.
        max_length: the longest window in tokens; default the model's context length.
        seed: seeds everything (see above).
        sandbox: a sandbox or its name, for labelling synthetic steps.
        device: where to train; default ``"cuda"`` when available, else ``"cpu"``.
        progress: show a tqdm progress bar.
        lora_r: train LoRA adapters of this rank (PEFT) instead of every weight (0: the whole model);
            they are merged into the saved model, so ``load_prm(out_dir)`` loads it as any other.
        protocol: lay paths out in this prompt protocol (``native``, ``think``, ``direct``), the one the
            policy is prompted with; saved in ``prm_config.json``. Empty: the base's own (``native``
            unless the base is a saved PRM).
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if objective not in OBJECTIVES:
        raise UserError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if labels not in LABEL_KINDS:
        raise UserError(f"labels must be one of {LABEL_KINDS}, got {labels!r}")
    for name, value, low in [
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("eval_tasks", eval_tasks, 0),
    ]:
        if not (isinstance(value, int) and value >= low):
            raise UserError(f"{name} must be an int >= {low}, got {value!r}")
    if not (isinstance(learning_rate, int | float) and learning_rate > 0):
        raise UserError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if not 0 <= warmup_fraction < 1:
        raise UserError(f"warmup_fraction must lie in [0, 1), got {warmup_fraction!r}")

    out_path = Path(out_dir)
    if data is None:
        logger.info("labelling %d synthetic training tasks by execution", n_tasks)
        dataset = synthetic_step_labels(
            "train", n_tasks=n_tasks, seed=seed, corruptions_per_step=corruptions_per_step, sandbox=sandbox
        )
    else:
        dataset = load_step_labels(data)
    if len(dataset) == 0:
        raise UserError("the step-label data has no rows; label some steps first")

    seed_everything(seed)
    if not (isinstance(lora_r, int) and lora_r >= 0):
        raise UserError(f"lora_r must be an int >= 0 (0: no LoRA), got {lora_r!r}")
    from codegym.models.builtin import BUILTIN_MODELS, builtin_model_dir

    base = str(builtin_model_dir(base)) if base in BUILTIN_MODELS else base
    prm, base_used = prepare_prm(base, head=head, device=device, max_length=max_length, seed=seed)
    if protocol:
        from dataclasses import replace as replaced

        from codegym.models.protocol import get_protocol

        if get_protocol(protocol).is_chat and not getattr(prm.tokenizer, "chat_template", None):
            raise UserError(f"protocol {protocol!r} needs a chat template; the base's tokenizer has none")
        prm.format = replaced(prm.format, protocol=protocol)
    if lora_r:
        from codegym.models.lora import add_lora

        classifier = prm.format.head == "classifier"
        prm.model = add_lora(
            prm.model,
            lora_r,
            task_type="TOKEN_CLS" if classifier else "CAUSAL_LM",
            modules_to_save=["score"] if classifier else None,  # the new head trains whole
        )
    pointwise = _pointwise_examples(prm, dataset, labels)
    rng = np.random.default_rng(seed)
    if prm.format.head == "likelihood":
        # Its raw value (a mean log-probability) has no learned offset or scale: fit both first.
        _calibrate(prm, pointwise, rng)
    if objective == "pointwise":
        examples: list[Any] = pointwise
    else:
        pairs = sibling_pairs(dataset, labels=labels)
        if len(pairs) == 0:
            raise UserError(
                f"no sibling steps with different {labels} labels in the data; pair-wise training needs "
                "steps after the same prefix with different labels (or use objective='pointwise')"
            )
        examples = _pairwise_examples(prm, pairs)

    steps_per_epoch = math.ceil(len(examples) / batch_size)
    total_steps = epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(prm.trainable_parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_fraction * total_steps), total_steps)
    losses: list[float] = []
    prm.model.train()
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"prm {objective}/{labels}", disable=not progress, unit="step")
    for _ in range(epochs):
        order = rng.permutation(len(examples))
        for first in range(0, len(examples), batch_size):
            batch = [examples[int(index)] for index in order[first : first + batch_size]]
            loss = _loss(prm, batch, objective)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prm.trainable_parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            # Training may move the likelihood head's scale too, but never through zero (see calibrate).
            prm.calibration.data[0].clamp_(min=MIN_SCALE)
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    train_seconds = time.perf_counter() - start
    prm.model.eval()
    if objective == "pairwise":
        # Bradley-Terry fixes differences only; Platt scaling makes the scores probabilities again.
        _calibrate(prm, pointwise, rng)

    evaluation = None
    if eval_tasks:
        held_out = synthetic_step_labels(
            "test",
            n_tasks=eval_tasks,
            seed=seed + 1,
            corruptions_per_step=corruptions_per_step,
            sandbox=sandbox,
        )
        evaluation = evaluate_prm(prm, held_out)
        logger.info("held-out step AUC %.3f on %d steps", evaluation.auc, evaluation.steps)

    if lora_r:
        from codegym.models.lora import merged

        prm.model = merged(prm.model)  # saved whole: load_prm(out_dir) reads a plain folder
    prm.save_pretrained(run_folder(out_path))
    tail = losses[-max(1, len(losses) // 10) :]
    result = PRMTrainingResult(
        out_dir=out_path,
        metrics_path=out_path / METRICS_FILE,
        objective=objective,
        labels=labels,
        examples=len(examples),
        optimizer_steps=len(losses),
        final_loss=float(np.mean(tail)),
        train_seconds=train_seconds,
        evaluation=evaluation,
    )
    metrics = {
        "objective": objective,
        "labels": labels,
        "head": prm.format.head,
        "base": base_used,
        "settings": {
            "n_tasks": n_tasks if data is None else None,
            "corruptions_per_step": corruptions_per_step,
            "eval_tasks": eval_tasks,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "warmup_fraction": warmup_fraction,
            "max_length": prm.max_length,
            "seed": seed,
        },
        "data": label_balance(dataset),
        "calibration": {"scale": prm.format.scale, "bias": prm.format.bias},
        "parameters": prm.model.num_parameters(),
        "examples": len(examples),
        "optimizer_steps": len(losses),
        "final_loss": result.final_loss,
        "train_seconds": train_seconds,
        "loss_curve": losses,
        "evaluation": None if evaluation is None else evaluation.__dict__,
    }
    write_metrics(out_path, metrics, METRICS_FILE)
    return result


def prepare_prm(
    base: str,
    *,
    head: str = "likelihood",
    step_tag: str = DEFAULT_STEP_TAG,
    device: str | None = None,
    max_length: int | None = None,
    seed: int = 0,
) -> tuple[HFProcessRewardModel, str]:
    """A PRM to train from ``base``, and the folder or hub id it came from.

    A saved PRM (a folder with ``prm_config.json``) loads as it is. Otherwise the model loads as a causal
    LM (``head="likelihood"`` or ``"lm"``) or with a new, seeded two-class token-classification head
    (``head="classifier"``); for the tag heads the tokenizer gets ``step_tag`` as one special token when
    it is not one token already (the embeddings grow to match, seeded).
    """
    if head not in HEADS:
        raise UserError(f"head must be one of {HEADS}, got {head!r}")
    if base == "tiny":
        from codegym.models.tiny import CHECKPOINTS_DIR, create_tiny, tiny_checkpoint

        try:
            policy = tiny_checkpoint("policy")
        except FileNotFoundError:
            logger.warning(
                "no trained tiny policy checkpoint, so the PRM starts from an untrained tiny model and learns "
                "little in minutes (the %s head reads what a policy knows); build the policy first with "
                "`codegym train policy --out %s`",
                head,
                CHECKPOINTS_DIR / "tiny-policy",
            )
            with tempfile.TemporaryDirectory(prefix="codegym-tiny-") as folder:
                prm, _ = _prepare(
                    str(create_tiny(folder, seed=seed)), head, step_tag, device, max_length, seed
                )
            return prm, "tiny (untrained: create_tiny)"
        return _prepare(str(policy), head, step_tag, device, max_length, seed)
    if PRMFormat.read(base) is not None:
        return HFProcessRewardModel(base, head=head, device=device, max_length=max_length), base
    return _prepare(base, head, step_tag, device, max_length, seed)


def _prepare(
    base: str, head: str, step_tag: str, device: str | None, max_length: int | None, seed: int
) -> tuple[HFProcessRewardModel, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    added = head in TAG_HEADS and len(tokenizer(step_tag, add_special_tokens=False)["input_ids"]) != 1
    if added:
        tokenizer.add_tokens([step_tag], special_tokens=True)
    torch.manual_seed(seed)  # the new head and the new tag embedding are drawn from the seed
    if head == "classifier":
        model = AutoModelForTokenClassification.from_pretrained(
            base, num_labels=2, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1}
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(base)
    if added:
        model.resize_token_embeddings(len(tokenizer))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    prm = HFProcessRewardModel(
        model, tokenizer=tokenizer, head=head, step_tag=step_tag, device=device, max_length=max_length
    )
    return prm, base


# --- examples and losses ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scored:
    """A window with a target for each step it reads (point-wise)."""

    window: ScoringWindow
    targets: tuple[float, ...]


def _pointwise_examples(prm: HFProcessRewardModel, dataset: Dataset, labels: str) -> list[_Scored]:
    values = dataset[f"{labels}_label"]
    examples = []
    for problem, path, labelled in merge_paths(dataset):
        for window in prm.encode(problem, path, sorted(labelled)):
            # Duplicate rows of one step (a dataset may hold them) average into one target.
            targets = tuple(
                float(np.mean([values[row] for row in labelled[step]])) for step in window.step_indices
            )
            examples.append(_Scored(window, targets))
    return examples


def _pairwise_examples(
    prm: HFProcessRewardModel, pairs: Dataset
) -> list[tuple[ScoringWindow, ScoringWindow]]:
    missing = [name for name in STEP_PAIR_FEATURES if name not in pairs.column_names]
    if missing:
        raise UserError(f"pair data lacks the columns {missing}")
    examples = []
    for row in pairs:
        prefix = list(row["prefix"])
        [chosen] = prm.encode(row["problem"], [*prefix, row["chosen"]], [len(prefix)])
        [rejected] = prm.encode(row["problem"], [*prefix, row["rejected"]], [len(prefix)])
        examples.append((chosen, rejected))
    return examples


def _calibrate(
    prm: HFProcessRewardModel, examples: list[_Scored], rng: np.random.Generator, limit: int = 512
) -> None:
    chosen = [examples[int(i)] for i in rng.permutation(len(examples))[:limit]]
    prm.model.eval()
    calibrate(prm, [example.window for example in chosen], [t for example in chosen for t in example.targets])
    logger.info("calibrated scale %.3f, bias %.3f", *prm.calibration.tolist())


def _loss(prm: HFProcessRewardModel, batch: list[Any], objective: str) -> Any:
    import torch
    import torch.nn.functional as F

    if objective == "pointwise":
        logits = prm.step_logits([example.window for example in batch])  # (N,) over all labelled tags
        targets = torch.tensor([t for example in batch for t in example.targets], device=logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), targets)
    # Chosen and rejected windows go through one forward pass; z is read back in the same order.
    logits = prm.step_logits([chosen for chosen, _ in batch] + [rejected for _, rejected in batch]).float()
    chosen_logits, rejected_logits = logits[: len(batch)], logits[len(batch) :]
    return -F.logsigmoid(chosen_logits - rejected_logits).mean()
