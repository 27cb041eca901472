"""The built-in tiny model: a byte-level BPE tokenizer and a small Llama, both built from scratch.

Nothing is downloaded. :func:`create_tiny` trains a tokenizer on reference episodes of training-split
synthetic tasks (:func:`synthetic_corpus`), builds a Llama-style causal LM of about a million parameters
(984,192 with the defaults; :func:`build_tiny_model`) and saves both with ``save_pretrained``, so the
result loads through the same ``AutoTokenizer`` / ``AutoModelForCausalLM`` path as a hub model (and so
through :class:`~codegym.models.hf_policy.HFPolicy`).

The model :func:`create_tiny` makes is the untrained starting point (a seeded random init). The trained
tiny models ship inside the package (:data:`CHECKPOINTS_DIR`, one folder per role): ``tiny-policy``
(this architecture after supervised fine-tuning on :func:`synthetic_corpus`, by
:func:`~codegym.training.policy_sft.train_policy`), ``tiny-prm`` and ``tiny-tcg``.
``load_policy("tiny")``, ``load_prm("tiny")`` and the ``"tiny"`` test case generator load them through
:func:`tiny_checkpoint`; each folder's ``training.json`` (``tcg_metrics.json`` for the TCG) records how it
was made, and :data:`TINY_ROLES` names the command that rebuilds it.

Example:
    >>> from codegym.models.tiny import create_tiny
    >>> path = create_tiny("/tmp/tiny", n_tasks=200)  # doctest: +SKIP
    >>> from codegym.models.hf_policy import HFPolicy
    >>> HFPolicy(path).sample(["### Problem\\n..."], n=2, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from codegym.errors import MissingInputError, UserError
from codegym.steps import render_state

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|endoftext|>"  # ends an episode: the model learns to stop after the code step
PAD_TOKEN = "<|pad|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)  # ids 0..3, in this order

# Trained tiny checkpoints ship inside the package (each a few MB), one folder per role; the command
# beside each rebuilds it, deterministically, from scratch.
CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
TINY_ROLES = {
    "policy": "codegym train policy",
    "prm": "codegym train prm",
    "tcg": "codegym train tcg",
}


def tiny_checkpoint(role: str) -> Path:
    """The folder of the built-in trained tiny model for ``role`` ("policy", "prm" or "tcg").

    Raises:
        UserError: an unknown role.
        FileNotFoundError: the checkpoint is not there; the message gives the command that builds it.
    """
    if role not in TINY_ROLES:
        raise UserError(f"unknown tiny model role {role!r}; choose one of {sorted(TINY_ROLES)}")
    path = CHECKPOINTS_DIR / f"tiny-{role}"
    if not (path / "config.json").is_file():
        raise MissingInputError(
            f"the built-in tiny {role} checkpoint is missing from {path}; rebuild it with "
            f"`{TINY_ROLES[role]} --out {path}`"
        )
    return path


# Llama uses RoPE, so the context length costs no parameters; synthetic episodes are a few hundred
# tokens, and a prompt plus a 256-token step must fit.
MAX_POSITIONS = 1024


def synthetic_corpus(n_tasks: int = 2000, seed: int = 0) -> list[str]:
    """Whole reference episodes of ``n_tasks`` training-split synthetic tasks, in the env's text format.

    Each text is ``render_state(task.problem, task.reference_steps)`` followed by :data:`EOS_TOKEN`, so a
    model trained on it learns where an episode ends (the env stops at the code step anyway).
    """
    from codegym.tasks.synthetic import SyntheticTasks

    tasks = SyntheticTasks("train").tasks(n_tasks, seed=seed)
    return [render_state(task.problem, task.reference_steps) + EOS_TOKEN for task in tasks]


def train_tokenizer(texts: Sequence[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``, wrapped for ``save_pretrained``.

    Byte-level, without a prefix space, so any text (indentation, newlines, non-ASCII) survives
    ``decode(encode(text, add_special_tokens=False))`` unchanged. Encoding prepends :data:`BOS_TOKEN`;
    :data:`EOS_TOKEN` in a text is one special token. Training is deterministic for the same texts.

    Args:
        texts: the training corpus.
        vocab_size: the vocabulary size, special tokens and the 256 byte tokens included.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise UserError("texts is empty; train the tokenizer on at least one text")
    min_size = 256 + len(SPECIAL_TOKENS)
    if vocab_size < min_size:
        raise UserError(f"vocab_size must be >= {min_size} (the 256 bytes and the special tokens)")

    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,  # would turn "a ." into "a." and break the round trip
    )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 4,
    intermediate_size: int | None = None,
    max_positions: int = MAX_POSITIONS,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A small Llama-style causal LM over ``tokenizer``'s vocabulary, randomly initialised from ``seed``.

    With the defaults and a 1024-token vocabulary it has 984,192 parameters (input and output embeddings
    tied): 4 layers of width 128, 4 heads, SwiGLU MLPs of width 3 x 128.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % heads:
        raise UserError(f"hidden_size ({hidden_size}) must be a multiple of heads ({heads})")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,  # at this size the embeddings would be a third of the model twice over
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def create_tiny(
    out_dir: str | PathLike[str],
    *,
    n_tasks: int = 2000,
    vocab_size: int = 1024,
    seed: int = 0,
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 4,
) -> Path:
    """Train the tokenizer, build the (untrained) model and ``save_pretrained`` both into ``out_dir``.

    Deterministic given the arguments; takes a few seconds (most of it drawing the tasks).

    Returns:
        ``out_dir`` as a Path, loadable with ``AutoTokenizer`` / ``AutoModelForCausalLM``.
    """
    out_path = Path(out_dir)
    texts = synthetic_corpus(n_tasks, seed=seed)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    model = build_tiny_model(tokenizer, hidden_size=hidden_size, layers=layers, heads=heads, seed=seed)
    out_path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_path)
    model.save_pretrained(out_path)
    logger.debug(
        "saved tiny model (%d parameters, vocab %d) to %s", model.num_parameters(), len(tokenizer), out_path
    )
    return out_path
