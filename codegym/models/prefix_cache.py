"""Keys and values of sequences decoded earlier, kept so a later prompt that starts with one is not read again.

An episode's prompt at step t + 1 is its prompt at step t, the step the policy just wrote and the next
step's header. Decoding step t already computed the keys and values of all but the header, so reading
the whole prompt again (the prefill) repeats that work: in tiny-policy RL it was a third of the rollout.
:class:`PrefixCache` keeps each decoded row's token ids and per-layer keys and values; :func:`decode
<codegym.models.decoding.decode>` looks up each new prompt's longest cached prefix (by token ids, checked
token for token, never assumed from the text) and reads only the rest.

Reused keys and values were computed one token at a time, while a prefill computes them all at once:
the same arithmetic in another order, so the logits can differ by float rounding (about 1e-6), as they
do between batch widths. A cache is therefore scoped: :meth:`HFPolicy.reusing_prefixes
<codegym.models.hf_policy.HFPolicy.reusing_prefixes>` opens an empty one for a block of calls (a
rollout), so what a call returns depends only on the calls in its block, and a run repeats exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from codegym.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = ["PrefixCache", "common_prefix"]

# A cached row is looked up by its first tokens; a prompt sharing fewer than this many with every cached
# row is read whole (too little to save).
MIN_REUSED = 16


class PrefixCache:
    """Rows' token ids and their keys and values ``(layers, 2, heads, tokens, head_dim)``, oldest evicted
    first once they hold more than ``max_bytes``.

    Args:
        max_bytes: the most the kept keys and values may hold (default 1 GiB: a few hundred rows of a
            small model's longest episodes).
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        if max_bytes <= 0:
            raise UserError(f"max_bytes must be > 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._rows: OrderedDict[int, tuple[tuple[int, ...], torch.Tensor]] = OrderedDict()
        self._by_start: dict[tuple[int, ...], list[int]] = {}
        self._next_key = 0
        self.hits = 0  # lookups that found a prefix
        self.reused_tokens = 0  # tokens not read again thanks to them
        # What the keys and values were computed with (the caller's token for its weights): rows made
        # under other weights are stale, and the caller clears them when this changes.
        self.weights: object = None

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, tokens: Sequence[int], keys_values: torch.Tensor) -> None:
        """Keep ``keys_values`` (``(layers, 2, heads, len(tokens), head_dim)``) as those of ``tokens``."""
        tokens = tuple(tokens)
        if keys_values.shape[3] != len(tokens):
            # The decoder's bookkeeping, not a caller's value: a mismatch is a bug to surface, never to cache.
            raise AssertionError(f"{keys_values.shape[3]} cached positions for {len(tokens)} tokens")
        if len(tokens) < MIN_REUSED:
            return
        size = keys_values.numel() * keys_values.element_size()
        if size > self.max_bytes:
            return
        key = self._next_key
        self._next_key += 1
        self._rows[key] = (tokens, keys_values)
        self._by_start.setdefault(tokens[:MIN_REUSED], []).append(key)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._evict()

    def longest_prefix(self, tokens: Sequence[int]) -> tuple[int, torch.Tensor | None]:
        """The most leading tokens of ``tokens`` some cached row starts with, and that row's keys and
        values (all of them: use the first ``length``); ``(0, None)`` when fewer than
        :data:`MIN_REUSED` match."""
        tokens = tuple(tokens)
        best, best_row = 0, None
        for key in self._by_start.get(tokens[:MIN_REUSED], ()):
            cached = self._rows[key][0]
            if len(cached) <= best:
                continue
            length = common_prefix(cached, tokens)
            if length > best:
                best, best_row = length, key
        if best_row is None:
            return 0, None
        self._rows.move_to_end(best_row)  # recently useful: evicted last
        return best, self._rows[best_row][1]

    def clear(self) -> None:
        """Forget every row (the hit counts stay)."""
        self._rows.clear()
        self._by_start.clear()
        self.bytes = 0

    def note_reuse(self, tokens: int) -> None:
        self.hits += 1
        self.reused_tokens += tokens

    def _evict(self) -> None:
        key, (tokens, keys_values) = self._rows.popitem(last=False)
        self.bytes -= keys_values.numel() * keys_values.element_size()
        siblings = self._by_start[tokens[:MIN_REUSED]]
        siblings.remove(key)
        if not siblings:
            del self._by_start[tokens[:MIN_REUSED]]


def common_prefix(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading tokens two token lists (or tuples) share: a binary search over slice
    comparisons, each done in C."""
    limit = min(len(first), len(second))
    if first[:limit] == second[:limit]:
        return limit
    low, high = 0, limit  # first[:low] == second[:low], first[:high] != second[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if first[:middle] == second[:middle]:
            low = middle
        else:
            high = middle
    return low
