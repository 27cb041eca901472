"""Batched decoding that lets rows go as they finish.

``model.generate`` keeps every row of a batch until the last one stops, so a batch costs as many forward
passes as its longest row, at the full batch width. On a CPU a forward pass of a small model is bound
by reading its weights, so a wide batch costs little more per pass than a narrow one; what costs is
rows that wait. :func:`decode` runs the passes itself: a row leaves the batch (and the key/value cache)
at its end-of-sequence token, its stop string or its token limit, so later passes only carry the rows
still writing, and a policy can use wide batches. Equal prompts in a batch (the samples of one prompt)
are read once, and their cache rows copied.

The key/value cache grows in place: transformers' default cache appends each new token by concatenating,
which copies a row's whole cache at every pass (on a CPU that copy was 46% of a pass at batch 32 and 600
tokens). Its layers here keep spare room and write into it, doubling it when full.

The arithmetic is the model's own (its forward with a key/value cache, left padding masked, position ids
counted from each row's first real token, as ``generate`` does), so greedy decoding writes what
``generate`` writes, up to the float noise a different batch width can add.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from codegym.models.lean_llama import KVCache, LeanLlama
    from codegym.models.prefix_cache import PrefixCache

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
    prefixes: PrefixCache | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """Generate up to ``max_new_tokens`` tokens for each row of a left-padded batch.

    Returns each row's new tokens (its end-of-sequence token included, when it wrote one) and their
    log-probabilities as ``choose`` gave them. ``prefixes``: reuse the keys and values of earlier rows
    that a prompt starts with, and keep this call's rows there (the lean forward only; see
    :mod:`codegym.models.prefix_cache`).
    """
    import torch

    from codegym.models.lean_llama import lean_llama

    lean = lean_llama(model)
    if lean is not None:
        return _decode_lean(
            lean,
            input_ids,
            attention_mask,
            choose=choose,
            finished=finished,
            max_new_tokens=max_new_tokens,
            eos_token_ids=eos_token_ids,
            prefixes=prefixes,
        )
    batch = input_ids.shape[0]
    tokens: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    live = list(range(batch))
    mask = attention_mask
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cache_argument, extra = _forward_conventions()
    # Equal prompts (the samples of one prompt) are read once; their cache rows are copied after.
    distinct, copies = torch.unique(
        torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1), dim=0, return_inverse=True
    )
    if len(distinct) == batch:
        copies = None
    step_ids, step_mask, step_positions, cache = input_ids, mask, positions, None
    if copies is not None:
        width = input_ids.shape[1]
        step_ids, step_mask = distinct[:, :width], distinct[:, width:].to(mask.dtype)
        step_positions = (step_mask.long().cumsum(-1) - 1).masked_fill(step_mask == 0, 1)
    for step in range(max_new_tokens):
        output = model(
            input_ids=step_ids,
            attention_mask=step_mask,
            position_ids=step_positions,
            use_cache=True,
            **{cache_argument: cache},
            **extra,
        )
        scores = output.logits[:, -1, :]
        if cache is None:
            cache = _growing(getattr(output, "cache", None) or output.past_key_values, max_new_tokens)
            if copies is not None:
                cache.batch_select_indices(copies)
                scores, step_positions = scores[copies], positions
        chosen, chosen_logprobs = choose(live, scores)
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
        step_ids, step_mask, step_positions = chosen[:, None], mask, (last_positions + 1)[:, None]
    return tokens, logprobs


def _decode_lean(
    lean: LeanLlama,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    choose: Chooser,
    finished: Finisher | None,
    max_new_tokens: int,
    eos_token_ids: set[int],
    prefixes: PrefixCache | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """:func:`decode` through :class:`~codegym.models.lean_llama.LeanLlama`: one preallocated key/value
    buffer written in place, and finished rows dropped from it only once they are half of it (a copy
    of the buffer costs more than a few idle rows in a pass). With ``prefixes``, each prompt's longest
    cached prefix is not read again, and every row's keys and values are cached when it ends."""
    import torch

    batch, width = input_ids.shape
    device = input_ids.device
    tokens: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    valid = attention_mask.bool()
    # Equal prompts (the samples of one prompt) are read once; their cache rows are copied after.
    distinct, copies = torch.unique(
        torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1), dim=0, return_inverse=True
    )
    if len(distinct) == batch:
        distinct_ids, distinct_valid, copies = input_ids, valid, None
    else:
        distinct_ids, distinct_valid = distinct[:, :width], distinct[:, width:].bool()
    cache, key_valid, scores = _prefill(lean, distinct_ids, distinct_valid, max_new_tokens, prefixes)
    prompt_lengths = distinct_valid.sum(dim=1, keepdim=True)
    prompts = [ids[row_valid].tolist() for ids, row_valid in zip(distinct_ids, distinct_valid, strict=True)]
    if copies is not None:
        cache.select(copies)
        scores, key_valid, prompt_lengths = scores[copies], key_valid[copies], prompt_lengths[copies]
        prompts = [prompts[index] for index in copies.tolist()]
    read = key_valid.shape[1]  # the cache positions the prompts fill
    keys = torch.zeros(batch, read + max_new_tokens, dtype=torch.bool, device=device)
    keys[:, :read] = key_valid
    next_positions = prompt_lengths  # (rows in cache, 1): a row's tokens so far
    live = list(range(batch))
    slot = list(range(batch))  # each batch row's row in the cache, while it lives

    def keep_in_cache(ended: list[int]) -> None:
        """Cache the keys and values of rows that end now: their prompt and every token fed back."""
        for row in ended:
            filled = keys[slot[row], : cache.length].nonzero()[:, 0]
            prefixes.add(  # type: ignore[union-attr]
                [*prompts[row], *tokens[row][:-1]], cache.buffer[:, :, slot[row]].index_select(3, filled)
            )

    for step in range(max_new_tokens):
        chosen, chosen_logprobs = choose(live, scores)
        chosen_list, logprob_list = chosen.tolist(), chosen_logprobs.tolist()
        for j, row in enumerate(live):
            tokens[row].append(chosen_list[j])
            logprobs[row].append(logprob_list[j])
        if step == max_new_tokens - 1:
            break
        stopped = finished(live, tokens) if finished else [False] * len(live)
        keep = [j for j, row in enumerate(live) if not stopped[j] and tokens[row][-1] not in eos_token_ids]
        if prefixes is not None and len(keep) < len(live):
            kept = set(keep)
            keep_in_cache([row for j, row in enumerate(live) if j not in kept])
        if not keep:
            live = []
            break
        live = [live[j] for j in keep]
        rows = torch.tensor([slot[row] for row in live], device=device)
        if len(live) <= cache.rows // 2:  # compact: the buffer holds only live rows from here on
            cache.select(rows)
            keys, next_positions = keys[rows], next_positions[rows]
            for index, row in enumerate(live):
                slot[row] = index
            rows = torch.arange(len(live), device=device)
        step_ids = torch.full((cache.rows, 1), 0, dtype=torch.long, device=device)
        step_ids[rows, 0] = chosen[torch.tensor(keep, device=device)]
        keys[:, cache.length] = True
        hidden = lean.hidden(step_ids, next_positions, keys[:, None, None, : cache.length + 1], cache=cache)
        scores = lean.logits(hidden[rows, -1])
        next_positions = next_positions + 1
    if prefixes is not None:
        keep_in_cache(live)
    return tokens, logprobs


def _prefill(
    lean: LeanLlama,
    ids: torch.Tensor,
    valid: torch.Tensor,
    max_new_tokens: int,
    prefixes: PrefixCache | None,
) -> tuple[KVCache, torch.Tensor, torch.Tensor]:
    """Read the left-padded prompts ``ids`` into a new cache with room for ``max_new_tokens`` more;
    returns the cache, which of its positions each row may attend to ``(rows, filled)``, and each
    row's next-token logits. A prompt with a prefix in ``prefixes`` has that prefix's keys and values
    copied in and only the rest read: cached prefixes go right-aligned before a left-padded block of
    the rest."""
    import torch

    from codegym.models.prefix_cache import MIN_REUSED

    device = ids.device
    rows = ids.shape[0]
    reused: list[tuple[int, torch.Tensor | None]] = [(0, None)] * rows
    if prefixes is not None:
        for row in range(rows):
            prompt = ids[row][valid[row]].tolist()
            length, keys_values = prefixes.longest_prefix(prompt)
            length = min(length, len(prompt) - 1)  # the last prompt token is read: it gives the logits
            if length >= MIN_REUSED:
                reused[row] = (length, keys_values)
                prefixes.note_reuse(length)
    # With nothing reused the rest is the whole left-padded prompt, and the cached part is empty.
    lengths = valid.sum(dim=1).tolist()
    cached_width = max(length for length, _ in reused)
    rest_width = max(total - length for total, (length, _) in zip(lengths, reused, strict=True))
    cache = lean.new_cache(rows, cached_width + rest_width + max_new_tokens)
    # Positions before a shorter cached prefix are never written, yet attention multiplies their
    # values by a zero weight: they must hold numbers, not whatever the memory held (0 x nan is nan).
    cache.buffer[:, :, :, :, :cached_width] = 0
    rest_ids = torch.zeros(rows, rest_width, dtype=torch.long, device=device)
    positions = torch.zeros(rows, rest_width, dtype=torch.long, device=device)
    key_valid = torch.zeros(rows, cached_width + rest_width, dtype=torch.bool, device=device)
    for row, (length, keys_values) in enumerate(reused):
        if length:
            cache.buffer[:, :, row, :, cached_width - length : cached_width] = keys_values[:, :, :, :length]
            key_valid[row, cached_width - length : cached_width] = True
        rest = ids[row][valid[row]][length:]
        rest_ids[row, rest_width - len(rest) :] = rest
        positions[row, rest_width - len(rest) :] = torch.arange(length, lengths[row], device=device)
        key_valid[row, cached_width + rest_width - len(rest) :] = True
    cache.length = cached_width
    # The rest's token i sits at position cached_width + i: it sees the valid positions up to itself; a
    # pad sees itself (never nothing).
    causal = torch.ones(rest_width, cached_width + rest_width, dtype=torch.bool, device=device).tril(
        diagonal=cached_width
    )
    eye = torch.zeros_like(causal)
    eye[:, cached_width:] = torch.eye(rest_width, dtype=torch.bool, device=device)
    hidden = lean.hidden(rest_ids, positions, (key_valid[:, None, None, :] & causal) | eye, cache=cache)
    return cache, key_valid, lean.logits(hidden[:, -1])


def _growing(cache, spare: int):
    """``cache`` with its plain layers made growing layers (room for ``spare`` more tokens); a cache
    of another kind (older transformers, sliding windows, quantised) is returned as it is."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # transformers < 4.56 keeps lists of tensors: leave them
        return cache
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in layers):
        return cache
    growing_layer = _growing_layer_type()
    cache.layers = [growing_layer(layer, spare) for layer in layers]
    return cache


@functools.cache
def _growing_layer_type() -> type:
    """The growing layer type, made on first use (transformers is imported only when decoding)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A :class:`DynamicLayer` whose keys and values live in buffers with spare room along the sequence,
        so a new token is one write instead of a copy of everything cached."""

        def __init__(self, layer, spare: int) -> None:
            super().__init__()
            self.device, self.is_initialized = layer.device, True
            self._length = layer.keys.shape[-2]
            self._key_buffer = self._with_room(layer.keys, spare)
            self._value_buffer = self._with_room(layer.values, spare)
            self._expose()

        def _with_room(self, tensor, spare: int):
            import torch

            batch, heads, length, width = tensor.shape
            buffer = torch.empty(
                batch, heads, length + spare, width, dtype=tensor.dtype, device=tensor.device
            )
            buffer[:, :, :length] = tensor
            return buffer

        def _expose(self) -> None:
            self.keys = self._key_buffer[:, :, : self._length]
            self.values = self._value_buffer[:, :, : self._length]

        def update(self, key_states, value_states, *args, **kwargs):
            new = key_states.shape[-2]
            if self._length + new > self._key_buffer.shape[-2]:
                room = max(self._key_buffer.shape[-2], new)
                self._key_buffer = self._with_room(self.keys, room)
                self._value_buffer = self._with_room(self.values, room)
            self._key_buffer[:, :, self._length : self._length + new] = key_states
            self._value_buffer[:, :, self._length : self._length + new] = value_states
            self._length += new
            self._expose()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self._length

        def batch_select_indices(self, indices) -> None:
            self._key_buffer = self._key_buffer[indices, ...]
            self._value_buffer = self._value_buffer[indices, ...]
            self._expose()

        def reorder_cache(self, beam_idx) -> None:
            self.batch_select_indices(beam_idx.to(self._key_buffer.device))

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._key_buffer = self._key_buffer.repeat_interleave(repeats, dim=0)
            self._value_buffer = self._value_buffer.repeat_interleave(repeats, dim=0)
            self._expose()

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                # transformers calls this (assisted decoding), never the caller: cropping to a length
                # is a feature this cache lacks, not a bad value someone passed.
                raise NotImplementedError(
                    f"this cache crops only by a negative count of tokens to remove, got {tokens_to_remove}"
                )
            self._length = max(0, self._length + tokens_to_remove)
            self._expose()

        def reset(self) -> None:
            self._length = 0
            self._expose()

    return GrowingLayer


def _forward_conventions() -> tuple[str, dict]:
    """How this transformers version names the cache argument, and the logits-only-for-the-last-position
    option where it has one (the prompt's other positions need no output-head pass)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    cache_argument = "cache" if major >= 5 else "past_key_values"
    extra = {"logits_to_keep": 1} if (major, minor) >= (4, 50) else {}
    return cache_argument, extra
