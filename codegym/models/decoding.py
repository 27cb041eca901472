"""Batched decoding that lets rows go as they finish.

``model.generate`` keeps every row of a batch until the last one stops, so a batch costs as many forward
passes as its longest row, at the full batch width. On a CPU a forward pass of a small model is bound
by reading its weights, so a wide batch costs little more per pass than a narrow one; what costs is
rows that wait. :func:`decode` runs the passes itself: a row leaves the batch (and the key/value cache)
at its end-of-sequence token, its stop string or its token limit, so later passes only carry the rows
still writing, and a policy can use wide batches.

The arithmetic is the model's own (its forward with a key/value cache, left padding masked, position ids
counted from each row's first real token, as ``generate`` does), so greedy decoding writes what
``generate`` writes, up to the float noise a different batch width can add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

__all__ = ["decode"]

# choose(rows, scores) -> (tokens, logprobs): the next token of each live row (``rows`` are their indices
# in the batch) from its raw logits, and that token's log-probability.
Chooser = Callable[["list[int]", "torch.Tensor"], "tuple[torch.Tensor, torch.Tensor]"]
# finished(rows, tokens) -> for each live row, whether its tokens so far end it (a stop string).
Finisher = Callable[["list[int]", "list[list[int]]"], "list[bool]"]


def decode(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    choose: Chooser,
    finished: Finisher | None,
    max_new_tokens: int,
    eos_token_ids: set[int],
) -> tuple[list[list[int]], list[list[float]]]:
    """Generate up to ``max_new_tokens`` tokens for each row of a left-padded batch.

    Returns each row's new tokens (its end-of-sequence token included, when it wrote one) and their
    log-probabilities as ``choose`` gave them.
    """
    import torch

    batch = input_ids.shape[0]
    tokens: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    live = list(range(batch))
    mask = attention_mask
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cache_argument, extra = _forward_conventions()
    step_ids, step_positions, cache = input_ids, positions, None
    for step in range(max_new_tokens):
        output = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_positions,
            use_cache=True,
            **{cache_argument: cache},
            **extra,
        )
        cache = getattr(output, "cache", None) or output.past_key_values
        chosen, chosen_logprobs = choose(live, output.logits[:, -1, :])
        chosen_list, logprob_list = chosen.tolist(), chosen_logprobs.tolist()
        for j, row in enumerate(live):
            tokens[row].append(chosen_list[j])
            logprobs[row].append(logprob_list[j])
        if step == max_new_tokens - 1:
            break
        stopped = finished(live, tokens) if finished else [False] * len(live)
        keep = [j for j, row in enumerate(live) if not stopped[j] and tokens[row][-1] not in eos_token_ids]
        if not keep:
            break
        last_positions = step_positions[:, -1]
        if len(keep) < len(live):
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            mask, chosen, last_positions = mask[index], chosen[index], last_positions[index]
            live = [live[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
        step_ids, step_positions = chosen[:, None], (last_positions + 1)[:, None]
    return tokens, logprobs


def _forward_conventions() -> tuple[str, dict]:
    """How this transformers version names the cache argument, and the logits-only-for-the-last-position
    option where it has one (the prompt's other positions need no output-head pass)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    cache_argument = "cache" if major >= 5 else "past_key_values"
    extra = {"logits_to_keep": 1} if (major, minor) >= (4, 50) else {}
    return cache_argument, extra
