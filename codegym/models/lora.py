"""LoRA adapters (PEFT) for training real models with a small number of parameters.

O1-Coder trained its test case generator with QLoRA at rank 1; a 135M or 7B policy trains the same way
here: :func:`add_lora` wraps a transformers model so that only the adapter's matrices train, and the
adapter saves on its own (``adapter_config.json`` plus ``adapter_model.safetensors``, a few MB) with
``model.save_pretrained``. :func:`load_lora` puts a saved adapter back on its base model and merges it,
so inference costs what the base model costs; ``load_policy(adapter_folder)`` does that by itself,
reading the base model from the adapter's config.

On a CPU train in float32 (this project's default): bf16 autocast on a CPU without bf16 units was 7x
slower for one GRPO step on the development machine. On a GPU pass ``dtype="bfloat16"`` and
``device="cuda"`` to the loaders and trainers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegym.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ADAPTER_CONFIG = "adapter_config.json"
# Llama-style attention and MLP projections; PEFT matches these as name suffixes.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def is_adapter(folder: str | PathLike[str]) -> bool:
    """Whether ``folder`` holds a PEFT adapter (rather than a whole model)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def adapter_base(folder: str | PathLike[str]) -> str:
    """The base model an adapter was trained on (``base_model_name_or_path`` of its config).

    Raises:
        UserError: the config names no base model.
    """
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{folder}/{ADAPTER_CONFIG} names no base_model_name_or_path; load the base yourself")
    return str(base)


def add_lora(
    model: PreTrainedModel,
    r: int,
    *,
    alpha: int | None = None,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
    task_type: str = "CAUSAL_LM",
    modules_to_save: Sequence[str] | None = None,
) -> Any:
    """``model`` wrapped with fresh LoRA adapters of rank ``r``; only the adapters are trainable.

    Args:
        model: a transformers model.
        r: the adapters' rank (O1-Coder's TCG used 1).
        alpha: LoRA's scaling numerator; default ``2 * r``.
        dropout: dropout on the adapters' input.
        target_modules: module name suffixes to adapt; default the Llama projections present in the model.
        task_type: PEFT's task type (``"CAUSAL_LM"``, or ``"TOKEN_CLS"`` for a classifier head).
        modules_to_save: modules trained whole beside the adapters (a new classifier head).

    Raises:
        UserError: ``r`` is not a positive int, or no target module is in the model.
        ImportError: PEFT is not installed.
    """
    if not (isinstance(r, int) and not isinstance(r, bool) and r >= 1):
        raise UserError(f"the LoRA rank must be an int >= 1, got {r!r}")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("LoRA needs PEFT: `pip install peft` (`make install` installs it)") from None
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = list(target_modules) if target_modules else [t for t in DEFAULT_TARGETS if t in names]
    if not targets or not set(targets) & names:
        raise UserError(
            f"none of the LoRA target modules {targets or list(DEFAULT_TARGETS)} is in the model; "
            "pass target_modules= with names of its linear layers"
        )
    config = LoraConfig(
        r=r,
        lora_alpha=alpha or 2 * r,
        lora_dropout=dropout,
        target_modules=targets,
        task_type=task_type,
        modules_to_save=list(modules_to_save) if modules_to_save else None,
    )
    return get_peft_model(model, config)


def load_lora(model: PreTrainedModel, folder: str | PathLike[str], *, merge: bool = True) -> Any:
    """``model`` with the adapter saved in ``folder`` applied (merged into the weights by default).

    Raises:
        FileNotFoundError: ``folder`` holds no adapter.
    """
    if not is_adapter(folder):
        raise FileNotFoundError(f"{folder} holds no {ADAPTER_CONFIG}; save one with model.save_pretrained")
    from peft import PeftModel

    adapted = PeftModel.from_pretrained(model, str(folder))
    return adapted.merge_and_unload() if merge else adapted


def merged(model: Any) -> Any:
    """A model with its LoRA adapters merged into the weights (the model itself when it has none): what
    is saved when a whole model is wanted, e.g. a TCG or PRM that later loads as a plain folder."""
    merge = getattr(model, "merge_and_unload", None)
    return merge() if callable(merge) else model
