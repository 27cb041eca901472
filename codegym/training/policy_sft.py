"""Supervised fine-tuning of a policy on whole reasoning episodes (TRL's SFTTrainer).

An episode is a problem and its steps in the env's text format. Each becomes one prompt/completion pair:
the prompt is the problem up to the first step header (what the env shows before any step), the
completion is every step and then the end-of-sequence token, and only the completion is learned. The
default data is the synthetic tasks' reference episodes (O1-Coder's outline, refine, code); the
self-improvement loop passes the search paths whose code passed instead.

``train_policy(out_dir)`` with no base model builds the built-in tiny model from scratch (tokenizer and
Llama, :mod:`codegym.models.tiny`) and trains it: this is what ``codegym train policy`` runs and how the
shipped ``tiny-policy`` checkpoint was made.

Example:
    >>> from codegym.training.policy_sft import train_policy
    >>> result = train_policy("/tmp/my-policy", n_tasks=500, epochs=1)  # doctest: +SKIP
    >>> result.out_dir, result.final_loss  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegym.errors import UserError
from codegym.models.protocol import PromptProtocol, get_protocol
from codegym.steps import next_step_header, render_state
from codegym.training.run import run_folder, save_policy, seed_everything, write_metrics

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

METRICS_FILE = "training.json"


def episode_example(problem: str, steps: Sequence[str], eos_token: str) -> dict[str, str]:
    """One SFT row: the prompt the env shows before step 1, and the steps (then ``eos_token``) to learn.

    The prompt and completion concatenate to exactly ``render_state(problem, steps) + eos_token``.
    """
    if not steps:
        raise UserError("an episode to learn from needs at least one step")
    prompt = render_state(problem, []) + next_step_header(0)
    whole = render_state(problem, steps)
    if not whole.startswith(prompt):  # render_state strips each step; an empty first step would break this
        raise UserError(f"cannot split the episode into prompt and completion: {whole[:80]!r}")
    return {"prompt": prompt, "completion": whole[len(prompt) :] + eos_token}


def protocol_example(
    protocol: PromptProtocol, problem: str, steps: Sequence[str], eos_token: str, apply_chat_template: Any
) -> dict[str, str]:
    """One SFT row in a chat protocol's form: the prompt exactly as the policy renders it before step 1
    (its forced opening included), and the rest of the assistant turn as the completion: every step
    under its ``Step k:`` line, as the protocol shows the steps so far, then ``eos_token``.

    So each later prompt of the episode is a prefix of prompt + completion, and the model learns the
    blank line and ``Step k:`` line that end a step (TRL appends the end-of-sequence token only when a
    completion lacks it, so rows are whole episodes, not single steps).
    """
    if not steps:
        raise UserError("an episode to learn from needs at least one step")
    first = protocol.build_steps(problem, [])
    last = protocol.build_steps(problem, steps[:-1])
    prompt = first.render(apply_chat_template)
    whole = last.render(apply_chat_template)
    if not (steps[-1].strip().startswith(last.prefix) and whole.startswith(prompt)):
        raise UserError(
            f"the episode's steps do not open as the {protocol.name!r} protocol forces them to "
            f"({first.prefix!r}, ..., {last.prefix!r}); train on episodes written through the same protocol"
        )
    completion = whole[len(prompt) :] + steps[-1].strip()[len(last.prefix) :]
    return {"prompt": prompt, "completion": completion + eos_token}


def episodes_dataset(
    episodes: Iterable[tuple[str, Sequence[str]]],
    eos_token: str,
    *,
    protocol: PromptProtocol | None = None,
    apply_chat_template: Any = None,
) -> Dataset:
    """A prompt/completion ``datasets.Dataset`` from ``(problem, steps)`` pairs: one row per episode, in
    the env's text or in a chat protocol's form (:func:`protocol_example`)."""
    from datasets import Dataset

    if protocol is not None and protocol.is_chat:
        rows = [
            protocol_example(protocol, problem, steps, eos_token, apply_chat_template)
            for problem, steps in episodes
        ]
    else:
        rows = [episode_example(problem, steps, eos_token) for problem, steps in episodes]
    if not rows:
        raise UserError("no episodes to train on")
    return Dataset.from_list(rows)


def synthetic_episodes(n_tasks: int, seed: int = 0) -> list[tuple[str, tuple[str, ...]]]:
    """Reference episodes of ``n_tasks`` training-split synthetic tasks (1 to 3 ops, drawn uniformly)."""
    from codegym.tasks.synthetic import SyntheticTasks

    tasks = SyntheticTasks("train").tasks(n_tasks, seed=seed)
    return [(task.problem, task.reference_steps) for task in tasks]


@dataclass(frozen=True)
class PolicyTrainingResult:
    """What :func:`train_policy` did.

    Attributes:
        out_dir: where the model and tokenizer were saved (``save_pretrained``).
        examples: training episodes.
        steps: optimizer steps.
        final_loss: mean training loss over the last 10% of logged steps.
        loss_curve: (step, loss) pairs as logged.
        seconds: wall-clock training time.
        parameters: the parameters trained (the whole model, or only the LoRA adapter).
    """

    out_dir: str
    examples: int
    steps: int
    final_loss: float
    loss_curve: tuple[tuple[int, float], ...]
    seconds: float
    parameters: int


def train_policy(
    out_dir: str | PathLike[str],
    *,
    base: str | PathLike[str] | None = None,
    episodes: Iterable[tuple[str, Sequence[str]]] | None = None,
    n_tasks: int = 2000,
    epochs: float = 3.0,
    learning_rate: float = 3e-3,
    batch_size: int = 16,
    warmup_ratio: float = 0.05,
    max_length: int = 512,
    seed: int = 0,
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 4,
    logging_steps: int = 10,
    progress: bool = True,
    protocol: str = "native",
    lora_r: int = 0,
    lora_alpha: int = 0,
    dtype: str = "float32",
) -> PolicyTrainingResult:
    """Fine-tune a causal LM on reasoning episodes and save it to ``out_dir``.

    Args:
        out_dir: where the trained model, its tokenizer and ``training.json`` go.
        base: a hub id or local path to start from; None builds the tiny model from scratch (its
            tokenizer is trained on the synthetic corpus, then ``hidden_size``, ``layers`` and ``heads``
            shape it).
        episodes: ``(problem, steps)`` pairs to learn; None uses the reference episodes of ``n_tasks``
            training-split synthetic tasks.
        n_tasks: how many synthetic tasks, when ``episodes`` is None.
        epochs: passes over the data.
        learning_rate: peak learning rate (linear warm-up, then cosine decay).
        batch_size: episodes per optimizer step.
        warmup_ratio: share of the steps spent warming up.
        max_length: longer episodes are truncated to this many tokens.
        seed: seeds data order, initialisation and dropout; the same seed on the same machine
            reproduces the same weights.
        hidden_size, layers, heads: the tiny model's shape (only when ``base`` is None).
        logging_steps: how often the loss is logged.
        progress: show the trainer's progress bar.
        protocol: the prompt protocol the model is trained in and later prompted with (``native``,
            ``think``, ``direct``); saved beside the model, so ``load_policy(out_dir)`` uses it.
        lora_r: train a LoRA adapter of this rank instead of every weight (0: full fine-tuning); only
            the adapter is saved, and ``load_policy(out_dir)`` puts it back on ``base``.
        lora_alpha: LoRA's scaling numerator (0: twice the rank).
        dtype: the weights' dtype, ``float32`` (the only sensible choice on a CPU: without bf16 units,
            bf16 is several times slower) or, on a GPU, ``bfloat16``/``float16``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from codegym.models.tiny import build_tiny_model, synthetic_corpus, train_tokenizer

    for name, value in (("epochs", epochs), ("learning_rate", learning_rate)):
        if not value > 0:
            raise UserError(f"{name} must be > 0, got {value!r}")
    for name, value in (("batch_size", batch_size), ("n_tasks", n_tasks), ("max_length", max_length)):
        if not (isinstance(value, int) and value >= 1):
            raise UserError(f"{name} must be an int >= 1, got {value!r}")
    if not (isinstance(lora_r, int) and lora_r >= 0):
        raise UserError(f"lora_r must be an int >= 0 (0: no LoRA), got {lora_r!r}")
    prompt_protocol = get_protocol(protocol)
    torch_dtype = _torch_dtype(dtype)
    out_path = Path(out_dir)
    seed_everything(seed)
    if base is None:
        if lora_r:
            raise UserError("lora_r needs a base model to adapt; the tiny model from scratch trains whole")
        tokenizer = train_tokenizer(synthetic_corpus(2000, seed=0))
        model = build_tiny_model(tokenizer, hidden_size=hidden_size, layers=layers, heads=heads, seed=seed)
    else:
        from codegym.models.builtin import BUILTIN_MODELS, builtin_model_dir

        base = builtin_model_dir(str(base)) if str(base) in BUILTIN_MODELS else base
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    if prompt_protocol.is_chat and not getattr(tokenizer, "chat_template", None):
        raise UserError(f"protocol {protocol!r} needs a chat template; the base model's tokenizer has none")
    if lora_r:
        from codegym.models.lora import add_lora

        model = add_lora(model, lora_r, alpha=lora_alpha or None)
    dataset = episodes_dataset(
        synthetic_episodes(n_tasks, seed=seed) if episodes is None else episodes,
        tokenizer.eos_token,
        protocol=prompt_protocol,
        apply_chat_template=getattr(tokenizer, "apply_chat_template", None),
    )
    steps_per_epoch = -(-len(dataset) // batch_size)
    scratch = tempfile.TemporaryDirectory(
        prefix="codegym-sft-"
    )  # the trainer wants a folder; nothing is kept
    config = SFTConfig(
        output_dir=scratch.name,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, round(warmup_ratio * steps_per_epoch * epochs)),
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        completion_only_loss=True,
        seed=seed,
        data_seed=seed,
        logging_steps=logging_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch_dtype == torch.bfloat16,
        fp16=torch_dtype == torch.float16,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    started = time.perf_counter()
    try:
        trainer.train()
    finally:
        scratch.cleanup()
    seconds = time.perf_counter() - started
    model = trainer.model.eval()
    save_policy(run_folder(out_path), model, tokenizer, prompt_protocol)  # with LoRA: the adapter alone
    curve = tuple(
        (int(entry["step"]), float(entry["loss"])) for entry in trainer.state.log_history if "loss" in entry
    )
    tail = [loss for _, loss in curve[-max(1, len(curve) // 10) :]]
    result = PolicyTrainingResult(
        out_dir=str(out_path),
        examples=len(dataset),
        steps=trainer.state.global_step,
        final_loss=sum(tail) / len(tail) if tail else float("nan"),
        loss_curve=curve,
        seconds=seconds,
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad)
        if lora_r
        else model.num_parameters(),
    )
    settings = {
        "base": None if base is None else str(base),
        "n_tasks": n_tasks if episodes is None else None,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "warmup_ratio": warmup_ratio,
        "max_length": max_length,
        "seed": seed,
        "shape": None if base is not None else {"hidden_size": hidden_size, "layers": layers, "heads": heads},
        "protocol": prompt_protocol.name,
        "lora_r": lora_r,
        "dtype": dtype,
    }
    write_metrics(out_path, {"settings": settings, **asdict(result)}, METRICS_FILE)
    logger.info("trained policy saved to %s (%.0f s, final loss %.3f)", out_path, seconds, result.final_loss)
    return result


def _torch_dtype(name: str) -> Any:
    """A torch dtype from its name, refusing what a trainer cannot use."""
    import torch

    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in choices:
        raise UserError(f"dtype must be one of {sorted(choices)}, got {name!r}")
    if choices[name] is not torch.float32 and not torch.cuda.is_available():
        raise UserError(f"dtype={name!r} trains only on a GPU here; on a CPU use float32")
    return choices[name]
