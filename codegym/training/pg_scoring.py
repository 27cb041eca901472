"""Scoring the steps of episodes for the policy-gradient loss, one forward pass per episode.

The loss needs ``log pi(step_t | prompt_t)`` for every step t of every episode. Scored one row per step,
an episode of k steps reads its problem k times and its first step k - 1 times, and a batch is padded to
its longest row. But ``prompt_{t+1}`` is ``prompt_t``, then step t, then the next header: when its
tokens start with exactly the tokens of ``prompt_t`` followed by the ids sampled for step t (checked
for every step, never assumed), the causal model's log-probs of step t inside the longer sequence are
the same numbers, so one forward pass over the episode's last row scores all its steps
(:func:`carriers`). The episodes of a task also share their first prompt: it is read once per task and
its keys and values are reused by each episode, through which the gradient still flows. The episodes'
sequences then run in passes of similar length (:func:`_buckets`): padded to the longest of one batch,
a batch of episodes from 20 to 260 tokens was half padding.

Only the scored positions go through the output head and the softmax. :func:`step_log_probs` does this
with :class:`codegym.models.lean_llama.LeanLlama`; a model it does not cover (a LoRA wrapper, another
architecture) is scored row by row with the model's own forward, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codegym.models.prefix_cache import common_prefix

if TYPE_CHECKING:
    import torch

    from codegym.models import HFPolicy

# Carriers next to each other that start with at least this many equal tokens (the episodes of one task,
# whose first prompt is the same) share those tokens' keys and values.
MIN_SHARED = 16


@dataclass
class Carrier:
    """One sequence to run, and the rows it scores: ``(row, start, end)`` scores tokens
    ``tokens[start:end]`` (each predicted from the position before it) for ``row``."""

    tokens: list[int]
    spans: list[tuple[int, int, int]] = field(default_factory=list)


def row_token_ids(
    policy: HFPolicy,
    prompts: Sequence[str],
    continuations: Sequence[str],
    token_ids: Sequence[Sequence[int] | None] | None = None,
) -> tuple[list[list[int]], list[list[int]]]:
    """Each row's prompt ids (as the policy encodes them when it samples) and continuation ids (the ids
    it sampled when given, else the generated part of the text tokenized on its own)."""
    prompt_ids = [list(ids) for ids in policy.prompt_token_ids(prompts)]
    continuation_ids = [
        list(ids) if ids is not None else None for ids in (token_ids or [None] * len(prompts))
    ]
    missing = [i for i, ids in enumerate(continuation_ids) if ids is None]
    if missing:
        generated = [policy.generated_text(prompts[i], continuations[i]) for i in missing]
        for i, ids in zip(
            missing, policy.tokenizer(generated, add_special_tokens=False)["input_ids"], strict=True
        ):
            continuation_ids[i] = list(ids)
    return prompt_ids, continuation_ids  # type: ignore[return-value]


def carriers(
    prompt_ids: Sequence[Sequence[int]],
    continuation_ids: Sequence[Sequence[int]],
    chains: Sequence[Sequence[int]],
) -> list[Carrier]:
    """The fewest sequences that score every row: ``chains`` lists rows in order (an episode's steps);
    a row whose prompt and continuation are a prefix of a later row's in its chain rides on that row's
    sequence, any other row gets its own."""
    out: list[Carrier] = []
    for chain in chains:
        current: Carrier | None = None
        for row in reversed(chain):
            prompt, continuation = prompt_ids[row], continuation_ids[row]
            full = [*prompt, *continuation]
            if current is None or current.tokens[: len(full)] != full:
                current = Carrier(tokens=full)
                out.append(current)
            current.spans.append((row, len(prompt), len(full)))
    return out


def _shared_prefix(group: Sequence[Carrier]) -> int:
    """How many leading tokens every carrier of ``group`` shares and no scored position needs as a
    query of its own (a scored token's logits come from the position before it)."""
    starts = [start for carrier in group for _, start, end in carrier.spans if end > start]
    limit = max(0, min([*starts, *(len(carrier.tokens) for carrier in group)]) - 1)
    for carrier in group[1:]:
        limit = min(limit, common_prefix(group[0].tokens[:limit], carrier.tokens))
    return limit


def step_log_probs(
    policy: HFPolicy,
    prompt_ids: Sequence[Sequence[int]],
    continuation_ids: Sequence[Sequence[int]],
    chains: Sequence[Sequence[int]],
    *,
    model: Any = None,
    max_rows: int | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``log pi(continuation | prompt)`` summed over each row's continuation tokens, ``(rows,)``,
    differentiable (unless called under ``no_grad``); see the module docstring.

    Args:
        policy: the policy (its model scores, unless ``model`` is given).
        prompt_ids, continuation_ids: each row's tokens (:func:`row_token_ids`).
        chains: rows in order, one list per episode; chains that start with the same prompt (the
            episodes of one task) share its keys and values when they are next to each other.
        model: score with this model instead (a frozen reference, for the KL penalty).
        max_rows: sequences per forward pass (default: the policy's ``batch_size``).
        temperature: score the distribution ``softmax(logits / temperature)``, the one a sampler at that
            temperature drew from (1: the model's own).
    """
    import torch

    from codegym.models.lean_llama import lean_llama

    net = model if model is not None else policy.model
    lean = lean_llama(net)
    rows = len(prompt_ids)
    device = policy.device
    if lean is None:
        needed = [row for chain in chains for row in chain]
        scores = rowwise_log_probs(
            policy,
            net,
            [prompt_ids[row] for row in needed],
            [continuation_ids[row] for row in needed],
            max_rows or policy.batch_size,
            temperature,
        )
        return torch.zeros(rows, device=device, dtype=scores.dtype).index_put(
            (torch.tensor(needed, device=device),), scores
        )
    pad = policy.tokenizer.pad_token_id
    sequences = carriers(prompt_ids, continuation_ids, chains)
    # Neighbouring carriers that start alike (the episodes of a task) form a group sharing a prefix.
    groups: list[list[Carrier]] = []
    for carrier in sequences:
        if groups and common_prefix(groups[-1][0].tokens, carrier.tokens) >= MIN_SHARED:
            groups[-1].append(carrier)
        else:
            groups.append([carrier])
    limit = max_rows or policy.batch_size
    prefixes = [_shared_prefix(group) for group in groups]
    past = _prefix_keys_values(lean, groups, prefixes, pad, device, limit)
    members = [(g, carrier) for g, group in enumerate(groups) for carrier in group]
    suffixes = [len(carrier.tokens) - prefixes[g] for g, carrier in members]
    totals = torch.zeros(rows, device=device)
    for bucket in _buckets(suffixes, limit):
        totals = totals + _score_bucket(
            lean, [members[m] for m in bucket], prefixes, past, pad, rows, device, temperature
        )
    return totals


# What one more forward pass costs beyond its tokens, in tokens (its few dozen operations, each with its
# own overhead, and their backward): the price a bucket of shorter sequences must save to be worth it.
PASS_COST_TOKENS = 256


def _buckets(lengths: Sequence[int], limit: int) -> list[list[int]]:
    """The indices of ``lengths`` split into forward passes of at most ``limit`` sequences each, padded
    to their longest, with the fewest padded tokens plus :data:`PASS_COST_TOKENS` a pass: sorted by
    length, the best split into runs is found exactly (a run costs its size times its longest)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    count = len(order)
    best = [0.0] + [float("inf")] * count  # best[j]: the cheapest split of the j shortest
    cut = [0] * (count + 1)
    for j in range(1, count + 1):
        longest = lengths[order[j - 1]]
        for i in range(max(0, j - limit), j):
            cost = best[i] + (j - i) * longest + PASS_COST_TOKENS
            if cost < best[j]:
                best[j], cut[j] = cost, i
    runs, j = [], count
    while j:
        runs.append(order[cut[j] : j])
        j = cut[j]
    return runs[::-1]


def _prefix_keys_values(
    lean: Any, groups: list[list[Carrier]], prefixes: list[int], pad: int, device: Any, limit: int
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Each layer's keys and values of every group's shared prefix, ``(groups, heads, width, head_dim)``
    with ``width`` the longest prefix (a shorter one is right-padded; the padding is never attended to),
    run ``limit`` groups a pass; None when no group shares a prefix."""
    import torch

    width = max(prefixes, default=0)
    if not width:
        return None
    parts: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    for first in range(0, len(groups), limit):
        chunk = range(first, min(first + limit, len(groups)))
        prefix_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        for row, g in enumerate(chunk):
            prefix_ids[row, : prefixes[g]] = torch.tensor(groups[g][0].tokens[: prefixes[g]])
        positions = torch.arange(width, device=device)[None].expand(len(chunk), -1)
        keep: list[tuple[torch.Tensor, torch.Tensor]] = []
        lean.hidden(prefix_ids.to(device), positions, None, keep=keep)
        parts.append(keep)
    if len(parts) == 1:
        return parts[0]
    return [
        (torch.cat([part[layer][0] for part in parts]), torch.cat([part[layer][1] for part in parts]))
        for layer in range(len(parts[0]))
    ]


def _score_bucket(
    lean: Any,
    members: list[tuple[int, Carrier]],
    prefixes: list[int],
    past: list[tuple[torch.Tensor, torch.Tensor]] | None,
    pad: int,
    rows: int,
    device: Any,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The summed log-probs per row from one forward pass over ``members`` (each a carrier and its
    group), their suffixes attending to their groups' prefix keys and values in ``past``."""
    import torch

    # Keys: the prefix slots (valid up to each group's prefix), then the suffix slots, causal.
    prefix_width = max(prefixes[g] for g, _ in members)
    suffix_width = max(len(carrier.tokens) - prefixes[g] for g, carrier in members)
    bucket_past = None
    if prefix_width:
        owner = torch.tensor([g for g, _ in members], device=device)
        bucket_past = [
            (k.index_select(0, owner)[:, :, :prefix_width], v.index_select(0, owner)[:, :, :prefix_width])
            for k, v in past or []
        ]
    suffix_ids = torch.full((len(members), suffix_width), pad, dtype=torch.long)
    positions = torch.zeros((len(members), suffix_width), dtype=torch.long)
    valid_prefix = torch.zeros((len(members), prefix_width), dtype=torch.bool)
    gather_rows, gather_cols, targets, owners = [], [], [], []
    for m, (g, carrier) in enumerate(members):
        start = prefixes[g]
        suffix = carrier.tokens[start:]
        suffix_ids[m, : len(suffix)] = torch.tensor(suffix)
        positions[m] = torch.arange(start, start + suffix_width)
        valid_prefix[m, :start] = True
        for row, begin, end in carrier.spans:
            for position in range(begin, end):  # token `position` is predicted at position - 1
                gather_rows.append(m)
                gather_cols.append(position - 1 - start)
                targets.append(carrier.tokens[position])
                owners.append(row)
    mask = None
    if prefix_width:
        causal = torch.ones((suffix_width, suffix_width), dtype=torch.bool).tril()
        mask = torch.cat(
            [
                valid_prefix[:, None, None, :].expand(-1, 1, suffix_width, -1),
                causal.expand(len(members), 1, -1, -1),
            ],
            dim=-1,
        ).to(device)
    hidden = lean.hidden(suffix_ids.to(device), positions.to(device), mask, past=bucket_past)
    totals = torch.zeros(rows, device=device)
    if not targets:
        return totals + 0.0 * hidden.sum()
    picked = hidden[torch.tensor(gather_rows, device=device), torch.tensor(gather_cols, device=device)]
    logprobs = torch.log_softmax(lean.logits(picked).float() / temperature, dim=-1)
    chosen = logprobs.gather(1, torch.tensor(targets, device=device)[:, None])[:, 0]
    return totals.index_add(0, torch.tensor(owners, device=device), chosen)


def rowwise_log_probs(
    policy: HFPolicy,
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    continuation_ids: Sequence[Sequence[int]],
    max_rows: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The model's own forward, one row per step, right-padded micro-batches (any causal LM), scoring
    ``softmax(logits / temperature)``."""
    import torch

    parts = []
    for start in range(0, len(prompt_ids), max_rows):
        prompts = prompt_ids[start : start + max_rows]
        rows = [[*p, *c] for p, c in zip(prompts, continuation_ids[start : start + max_rows], strict=True)]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), policy.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        scored = torch.zeros((len(rows), width - 1), dtype=torch.bool)  # position j predicts token j + 1
        for row, (ids, prompt) in enumerate(zip(rows, prompts, strict=True)):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            scored[row, len(prompt) - 1 : len(ids) - 1] = True
        input_ids, attention, scored = (x.to(policy.device) for x in (input_ids, attention, scored))
        logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]  # (B, T-1, V)
        token_logprobs = torch.log_softmax(logits.float() / temperature, dim=-1).gather(
            2, input_ids[:, 1:, None]
        )[..., 0]
        parts.append((token_logprobs * scored).sum(dim=1))
    return torch.cat(parts)
