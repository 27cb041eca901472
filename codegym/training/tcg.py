"""Training the model-based test case generator: SFT on tasks' own tests, then DPO (O1-Coder's recipe).

O1-Coder (arXiv 2412.00154, section 3.1) trains its TCG in two stages: supervised fine-tuning on problems
with their known input/output cases, then DPO with *chosen* = the correct cases and *rejected* = the same
inputs with their outputs shuffled, so the model learns that an output must belong to its input. Their
validity (share of generated cases the reference passes) went from 80.8% after SFT to 89.2% after DPO.

Here both stages run on TRL (``SFTTrainer`` with the loss on the cases only, ``DPOTrainer``), and
:func:`train_tcg` chains them from a base model (by default a fresh, untrained built-in tiny model,
:func:`~codegym.models.tiny.create_tiny`), measures validity on held-out synthetic tasks before and after
each stage, and writes the result and ``tcg_metrics.json`` into ``out_dir``.

With the defaults (a fresh tiny model, 2,000 training tasks, 2 SFT epochs, 500 DPO pairs) the whole run
takes 7.5 to 9 minutes on 2 CPU cores shared with other jobs, one torch thread. Validity on 64 held-out
synthetic tasks (``benchmarks/studies/tcg_model.py``): 0% untrained, 15.7% after SFT, 16.0% after DPO. The tiny
model learns the format (97% of its lines parse) and the edge cases (``solve([]) -> []``) but cannot
compute most outputs, and DPO on shuffled outputs does not change that at this size; the recipe is the
point, and a real model (``base="org/model"``) is where O1-Coder's gains are expected.

Example:
    >>> from codegym.training.tcg import train_tcg
    >>> result = train_tcg("/tmp/tiny-tcg")  # doctest: +SKIP
    >>> result.evaluations["dpo"].validity_rate  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from codegym.errors import UserError
from codegym.sandbox import Sandbox, make_sandbox
from codegym.tasks.task import Task, TaskSource
from codegym.tcg.model_tcg import TCGEvaluation
from codegym.tcg.tcg_data import dpo_pairs, evaluate_tcg, heldout_tasks, sft_examples
from codegym.training.run import run_folder, write_metrics

logger = logging.getLogger(__name__)

TINY_BASE = "tiny-untrained"  # train_tcg's default base: a fresh create_tiny() model
METRICS_FILE = "tcg_metrics.json"


# ------------------------------------------------------------------------------------------ training


def _trainer_args(
    out_dir: str | PathLike[str], *, epochs: float, learning_rate: float, batch_size: int, seed: int
) -> dict:
    """TrainingArguments shared by both stages: float32, no checkpoints, no trackers, seeded."""
    return {
        "output_dir": str(Path(out_dir)),
        "num_train_epochs": epochs,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.05,  # a float below 1 is a fraction of the steps
        "seed": seed,
        "data_seed": seed,
        "bf16": False,  # TRL defaults to bf16; on CPU it is slower and the tiny model trains in float32
        "gradient_checkpointing": False,  # TRL's default; the tiny model needs no memory saving
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 10,
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
    }


def train_tcg_sft(
    model: str | PathLike[str],
    examples: Sequence[Mapping[str, str]],
    out_dir: str | PathLike[str],
    *,
    epochs: float = 2.0,
    learning_rate: float = 2e-3,
    batch_size: int = 16,
    max_length: int = 1024,
    seed: int = 0,
    lora_r: int = 0,
) -> Path:
    """Supervised fine-tuning on prompt-completion rows (:func:`sft_examples`), loss on completions only.

    Args:
        model: the model to start from (a hub id or a local path; tokenizer in the same place).
        examples: ``{"prompt", "completion"}`` rows.
        out_dir: where the trained model and tokenizer are saved (``save_pretrained``).
        epochs: passes over ``examples``.
        learning_rate: peak learning rate (cosine schedule, 5% warm-up); the default suits the tiny model,
            a pretrained model wants about 1e-5.
        batch_size: rows per optimizer step.
        max_length: longer rows are truncated at the end.
        seed: seeds initialisation of the run and the data order.
        lora_r: train LoRA adapters of this rank (O1-Coder's TCG: QLoRA, rank 1) instead of every
            weight (0: the whole model); they are merged into the saved model.

    Returns:
        ``out_dir`` as a Path.
    """
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise UserError("examples is empty; SFT needs tasks with CallTest hidden tests (see sft_examples)")
    settings = _trainer_args(
        out_dir, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed
    )

    def config() -> SFTConfig:
        return SFTConfig(
            **settings,
            max_length=max_length,
            completion_only_loss=True,  # the cases are the target; the problem is only context
            packing=False,
        )

    return _fit(SFTTrainer, config, model, examples, Path(out_dir), lora_r)


def train_tcg_dpo(
    model: str | PathLike[str],
    pairs: Sequence[Mapping[str, str]],
    out_dir: str | PathLike[str],
    *,
    epochs: float = 1.0,
    learning_rate: float = 5e-5,
    beta: float = 0.1,
    batch_size: int = 16,
    max_length: int = 1024,
    seed: int = 0,
    lora_r: int = 0,
) -> Path:
    """DPO on preference rows (:func:`dpo_pairs`); the reference model is a frozen copy of ``model``.

    Args:
        model: the model to start from, normally the SFT output.
        pairs: ``{"prompt", "chosen", "rejected"}`` rows.
        out_dir: where the trained model and tokenizer are saved.
        epochs: passes over ``pairs``.
        learning_rate: peak learning rate (cosine schedule, 5% warm-up). The default suits the tiny model:
            at 2e-4 DPO drove the log-likelihood of the chosen cases down with the rejected ones (a known
            DPO failure), and the tiny model's parse rate fell from 97% to 40%.
        beta: DPO's inverse temperature (how far the policy may move from the reference).
        batch_size: pairs per optimizer step.
        max_length: longer sequences are truncated at the end.
        seed: seeds the run and the data order.
        lora_r: train LoRA adapters of this rank instead of every weight (0: the whole model); they are
            merged into the saved model. With adapters, the reference model is the base with them off.

    Returns:
        ``out_dir`` as a Path.
    """
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise UserError("pairs is empty; DPO needs tasks with two or more differing outputs (see dpo_pairs)")
    settings = _trainer_args(
        out_dir, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed
    )

    def config() -> DPOConfig:
        return DPOConfig(**settings, beta=beta, max_length=max_length)

    return _fit(DPOTrainer, config, model, pairs, Path(out_dir), lora_r)


def _fit(
    trainer_class: type,
    config: Callable[[], Any],
    model: str | PathLike[str],
    rows: Sequence[Mapping[str, str]],
    out_path: Path,
    lora_r: int,
) -> Path:
    """Load ``model`` (with LoRA adapters of rank ``lora_r``), train it with a TRL trainer on ``rows``
    under ``config()``, and save it (adapters merged) with its tokenizer into ``out_path``."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    policy = _with_lora(AutoModelForCausalLM.from_pretrained(model), lora_r)
    trainer = trainer_class(
        model=policy,
        args=config(),  # built after the model, as before: the same RNG draws for LoRA's init
        train_dataset=Dataset.from_list([dict(row) for row in rows]),
        processing_class=tokenizer,
    )
    trainer.train()
    _save(trainer.model, tokenizer, out_path)
    return out_path


def _with_lora(model: Any, lora_r: int) -> Any:
    if not (isinstance(lora_r, int) and lora_r >= 0):
        raise UserError(f"lora_r must be an int >= 0 (0: no LoRA), got {lora_r!r}")
    if not lora_r:
        return model
    from codegym.models.lora import add_lora

    return add_lora(model, lora_r)


def _save(model: Any, tokenizer: Any, out_path: Path) -> None:
    from codegym.models.lora import merged

    run_folder(out_path)
    merged(model).save_pretrained(out_path)  # adapters merged: the next stage loads a plain folder
    tokenizer.save_pretrained(out_path)


@dataclass(frozen=True)
class TCGTrainResult:
    """What :func:`train_tcg` did.

    Attributes:
        out_dir: the trained model (after DPO), loadable with ``ModelTCG(out_dir)``.
        evaluations: validity on the held-out tasks by stage: ``"base"``, ``"sft"``, ``"dpo"`` (only the
            stages that were evaluated).
        seconds: wall time by phase (``"data"``, ``"sft"``, ``"dpo"``, ``"eval"``, ``"total"``).
        sft_examples: SFT rows trained on.
        dpo_pairs: DPO pairs trained on.
        settings: the arguments of the run, as plain data.
    """

    out_dir: Path
    evaluations: Mapping[str, TCGEvaluation]
    seconds: Mapping[str, float]
    sft_examples: int
    dpo_pairs: int
    settings: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Everything as plain data (what ``tcg_metrics.json`` holds)."""
        return {
            "out_dir": str(self.out_dir),
            "validity": {stage: e.validity_rate for stage, e in self.evaluations.items()},
            "evaluations": {stage: e.as_dict() for stage, e in self.evaluations.items()},
            "seconds": dict(self.seconds),
            "sft_examples": self.sft_examples,
            "dpo_pairs": self.dpo_pairs,
            "settings": dict(self.settings),
        }


@dataclass(frozen=True)
class _Settings:
    tasks: str
    n_tasks: int
    dpo_tasks: int
    sft_epochs: float
    dpo_epochs: float
    sft_learning_rate: float
    dpo_learning_rate: float
    beta: float
    batch_size: int
    eval_tasks: int
    eval_tests: int
    seed: int
    base: str
    with_reference: bool
    evaluate_base: bool


def train_tcg(
    out_dir: str | PathLike[str],
    *,
    tasks: str | TaskSource | Sequence[Task] = "synthetic",
    n_tasks: int = 2000,
    dpo_tasks: int = 500,
    sft_epochs: float = 2.0,
    dpo_epochs: float = 1.0,
    sft_learning_rate: float = 2e-3,
    dpo_learning_rate: float = 5e-5,
    beta: float = 0.1,
    batch_size: int = 16,
    eval_tasks: int | Sequence[Task] = 64,
    eval_tests: int = 8,
    seed: int = 0,
    base: str | PathLike[str] = TINY_BASE,
    with_reference: bool = False,
    evaluate_base: bool = True,
    keep_sft: bool = False,
    sandbox: str | Sandbox = "local",
    lora_r: int = 0,
) -> TCGTrainResult:
    """Train a test case generator end to end: SFT, then DPO, with validity measured around each stage.

    Args:
        out_dir: where the final (DPO) model, its tokenizer and ``tcg_metrics.json`` are saved.
        tasks: the training tasks: a source spec for :func:`~codegym.tasks.load_tasks` (``"synthetic"``
            means its train split), a TaskSource, or a list of Task. Their hidden ``CallTest`` s are the
            cases learned; tasks without any are skipped.
        n_tasks: SFT tasks; drawn with ``seed`` from an endless source, the first ``n_tasks`` of a finite one.
        dpo_tasks: DPO pairs are built from the first ``dpo_tasks`` of the SFT tasks (one pair each).
        sft_epochs, dpo_epochs: passes over each stage's data; 0 skips the stage.
        sft_learning_rate, dpo_learning_rate: peak learning rates (defaults suit the tiny model).
        beta: DPO's beta.
        batch_size: rows per optimizer step in both stages.
        eval_tasks: how many held-out synthetic tasks (test split, drawn with ``seed``) to measure validity
            on, or the tasks themselves; 0 skips evaluation.
        eval_tests: cases kept per task when evaluating (``n`` of ``generate``).
        seed: seeds everything: the base model, the tasks, the shuffles, training and sampling.
        base: ``"tiny-untrained"`` (a fresh :func:`~codegym.models.tiny.create_tiny` model), a hub id or
            a local path.
        with_reference: show the reference solution in the prompt (O1-Coder's TCG sees only the problem).
        evaluate_base: also measure the model before SFT (for the tiny base: untrained noise).
        keep_sft: also save the SFT-stage model in ``out_dir / "sft"``.
        sandbox: where the references run during evaluation. "local" by default: only the tasks' own
            reference solutions run there, on literal arguments the parser has checked.

    Returns:
        A :class:`TCGTrainResult`; the same figures are written to ``out_dir / "tcg_metrics.json"``.
        lora_r: train LoRA adapters of this rank in both stages (O1-Coder: QLoRA, rank 1) instead of
            every weight (0: the whole model); each stage saves its model with the adapters merged.
    """
    from codegym.tasks import load_tasks

    if not (isinstance(n_tasks, int) and n_tasks >= 1):
        raise UserError(f"n_tasks must be an int >= 1, got {n_tasks!r}")
    if not (isinstance(dpo_tasks, int) and dpo_tasks >= 0):
        raise UserError(f"dpo_tasks must be an int >= 0, got {dpo_tasks!r}")
    started = time.perf_counter()
    seconds: dict[str, float] = {"data": 0.0, "sft": 0.0, "dpo": 0.0, "eval": 0.0}
    out_path = run_folder(out_dir)

    source = load_tasks(tasks, split="train") if tasks == "synthetic" else load_tasks(tasks)
    train_tasks = _take_tasks(source, n_tasks, seed)
    test_tasks = heldout_tasks(eval_tasks, seed) if isinstance(eval_tasks, int) else list(eval_tasks)
    sft_rows = sft_examples(train_tasks, with_reference=with_reference)
    dpo_rows = dpo_pairs(train_tasks[:dpo_tasks], seed=seed, with_reference=with_reference)
    seconds["data"] = time.perf_counter() - started
    logger.info("%d SFT rows, %d DPO pairs, %d held-out tasks", len(sft_rows), len(dpo_rows), len(test_tasks))

    evaluations: dict[str, TCGEvaluation] = {}
    box = make_sandbox(sandbox) if isinstance(sandbox, str) and test_tasks else sandbox

    def measure(stage: str, model_dir: Path | str) -> None:
        if not test_tasks:
            return
        tick = time.perf_counter()
        evaluations[stage] = evaluate_tcg(
            model_dir, test_tasks, n=eval_tests, seed=seed, sandbox=box, with_reference=with_reference
        )
        seconds["eval"] += time.perf_counter() - tick
        logger.info("validity %s: %.3f", stage, evaluations[stage].validity_rate)

    try:
        with tempfile.TemporaryDirectory(prefix="codegym-tcg-") as scratch:
            current: Path | str = base
            from codegym.models.builtin import BUILTIN_MODELS, builtin_model_dir

            if str(base) in BUILTIN_MODELS:
                current = builtin_model_dir(str(base))
            if str(base) == TINY_BASE:
                from codegym.models.tiny import create_tiny

                current = create_tiny(Path(scratch) / "base", seed=seed)
            if evaluate_base:
                measure("base", current)
            if sft_epochs > 0:
                tick = time.perf_counter()
                sft_dir = out_path / "sft" if keep_sft else Path(scratch) / "sft"
                current = train_tcg_sft(
                    current,
                    sft_rows,
                    sft_dir,
                    epochs=sft_epochs,
                    learning_rate=sft_learning_rate,
                    batch_size=batch_size,
                    seed=seed,
                    lora_r=lora_r,
                )
                seconds["sft"] = time.perf_counter() - tick
                measure("sft", current)
            if dpo_epochs > 0 and dpo_rows:
                tick = time.perf_counter()
                current = train_tcg_dpo(
                    current,
                    dpo_rows,
                    Path(scratch) / "dpo",
                    epochs=dpo_epochs,
                    learning_rate=dpo_learning_rate,
                    beta=beta,
                    batch_size=batch_size,
                    seed=seed,
                    lora_r=lora_r,
                )
                seconds["dpo"] = time.perf_counter() - tick
                measure("dpo", current)
            _copy_model(current, out_path)
    finally:
        if isinstance(sandbox, str) and isinstance(box, Sandbox):
            box.close()

    seconds["total"] = time.perf_counter() - started
    settings = _Settings(
        tasks=tasks if isinstance(tasks, str) else type(tasks).__name__,
        n_tasks=len(train_tasks),
        dpo_tasks=min(dpo_tasks, len(train_tasks)),
        sft_epochs=sft_epochs,
        dpo_epochs=dpo_epochs,
        sft_learning_rate=sft_learning_rate,
        dpo_learning_rate=dpo_learning_rate,
        beta=beta,
        batch_size=batch_size,
        eval_tasks=len(test_tasks),
        eval_tests=eval_tests,
        seed=seed,
        base=str(base),
        with_reference=with_reference,
        evaluate_base=evaluate_base,
    )
    result = TCGTrainResult(out_path, evaluations, seconds, len(sft_rows), len(dpo_rows), asdict(settings))
    write_metrics(out_path, result.as_dict(), METRICS_FILE)
    return result


def _take_tasks(source: TaskSource, count: int, seed: int) -> list[Task]:
    """The first ``count`` tasks of a finite source, or ``count`` drawn with ``seed`` from an endless one."""
    if hasattr(source, "__len__") and hasattr(source, "__iter__"):
        return list(source)[:count]
    if hasattr(source, "tasks"):
        return source.tasks(count, seed=seed)
    rng = np.random.default_rng(seed)
    return [source.sample(rng) for _ in range(count)]


def _copy_model(model: Path | str, out_path: Path) -> None:
    """Save the model at ``model`` (a folder or a hub id) into ``out_path`` with ``save_pretrained``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if Path(model).resolve() == out_path.resolve():
        return
    _save(AutoModelForCausalLM.from_pretrained(model), AutoTokenizer.from_pretrained(model), out_path)
