"""A lean forward pass of a plain Llama causal LM, on the model's own parameters.

transformers' Llama forward is general (many attention backends, cache classes, output capture, kernel
hooks), and at the size of the built-in tiny policy (about 1M parameters) that generality is most of
what a forward pass costs on a CPU: a decoding step of 32 rows spent about 7 ms in it, most of it Python.
:class:`LeanLlama` does the same arithmetic (RMSNorm, rotary embeddings, SDPA attention, SwiGLU, the
tied or untied output head) in a few dozen tensor operations, on the very ``nn.Parameter`` objects of
the model, so gradients reach the model and an optimizer step is seen at the next call.

It serves only models it reproduces exactly (:func:`lean_llama`): a ``LlamaForCausalLM`` with default
rotary embeddings, no biases, SiLU and the SDPA or eager attention; anything else (a LoRA wrapper,
rope scaling, another architecture) returns None and callers use the model's own forward.

Keys and values are kept in one preallocated buffer per layer (:class:`KVCache`), written in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["KVCache", "LeanLlama", "lean_llama"]


@dataclass
class _Layer:
    input_norm: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    post_norm: torch.Tensor
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor


def lean_llama(model: Any) -> LeanLlama | None:
    """A :class:`LeanLlama` over ``model``'s parameters, or None when ``model`` is not a plain Llama it
    reproduces exactly (then use the model's own forward)."""
    try:
        from transformers import LlamaForCausalLM
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    if type(model) is not LlamaForCausalLM:
        return None
    config = model.config
    rope = getattr(config, "rope_parameters", None) or {"rope_type": "default"}
    plain = (
        rope.get("rope_type", "default") == "default"
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and config.hidden_act == "silu"
        and getattr(config, "pretraining_tp", 1) == 1
        and getattr(config, "_attn_implementation", "sdpa") in ("sdpa", "eager", None)
        and "rope_theta" in rope
    )
    if not plain:
        return None
    return LeanLlama(model)


class KVCache:
    """Keys and values of every layer for ``rows`` sequences, with room for ``capacity`` positions.

    ``keys[layer]`` is ``(rows, heads, capacity, head_dim)``; the first ``length`` positions are filled.
    """

    def __init__(self, layers: int, rows: int, heads: int, capacity: int, head_dim: int, like: torch.Tensor):
        import torch

        self.buffer = torch.empty(
            layers, 2, rows, heads, capacity, head_dim, dtype=like.dtype, device=like.device
        )
        self.length = 0

    @property
    def rows(self) -> int:
        return self.buffer.shape[2]

    def select(self, index: torch.Tensor) -> None:
        """Keep (or repeat) the rows ``index``, in that order; only the filled positions are copied."""
        import torch

        layers, _, _, heads, capacity, head_dim = self.buffer.shape
        kept = torch.empty(
            layers,
            2,
            len(index),
            heads,
            capacity,
            head_dim,
            dtype=self.buffer.dtype,
            device=self.buffer.device,
        )
        torch.index_select(self.buffer[..., : self.length, :], 2, index, out=kept[..., : self.length, :])
        self.buffer = kept


class LeanLlama:
    """The forward pass of a plain ``LlamaForCausalLM`` (see the module docstring).

    Args:
        model: the model; its parameters are used as they are (not copied).
    """

    def __init__(self, model: Any) -> None:
        import torch

        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.scaling = self.head_dim**-0.5
        inner = model.model
        self.embed = inner.embed_tokens.weight
        self.final_norm = inner.norm.weight
        self.head = model.lm_head.weight
        self.layers = [
            _Layer(
                input_norm=layer.input_layernorm.weight,
                q=layer.self_attn.q_proj.weight,
                k=layer.self_attn.k_proj.weight,
                v=layer.self_attn.v_proj.weight,
                o=layer.self_attn.o_proj.weight,
                post_norm=layer.post_attention_layernorm.weight,
                gate=layer.mlp.gate_proj.weight,
                up=layer.mlp.up_proj.weight,
                down=layer.mlp.down_proj.weight,
            )
            for layer in inner.layers
        ]
        self._fused_weights: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        theta = config.rope_parameters["rope_theta"]
        # As transformers computes it: float32, then cos/sin of positions times these.
        self.inv_freq = 1.0 / (
            theta
            ** (
                torch.arange(0, self.head_dim, 2, dtype=torch.float, device=self.embed.device) / self.head_dim
            )
        )

    def _fused(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's query, key and value weights as one matrix, and its gate and up weights as one:
        two matrix products instead of five. Made on first use, so they follow the grad mode of the call
        (a trainer's call differentiates through them); make a new LeanLlama after changing weights."""
        import torch

        if self._fused_weights is None:
            self._fused_weights = [
                (torch.cat([layer.q, layer.k, layer.v]), torch.cat([layer.gate, layer.up]))
                for layer in self.layers
            ]
        return self._fused_weights

    def new_cache(self, rows: int, capacity: int) -> KVCache:
        return KVCache(len(self.layers), rows, self.kv_heads, capacity, self.head_dim, self.embed)

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        import torch

        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x.to(dtype)

    def _rotary(self, positions: torch.Tensor, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        freqs = positions[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype)[:, :, None], emb.sin().to(dtype)[:, :, None]  # (B, T, 1, D)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        import torch

        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def hidden(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        cache: KVCache | None = None,
        past: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        keep: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """The last hidden states ``(B, T, hidden)`` (after the final norm) of ``input_ids`` ``(B, T)``.

        Args:
            input_ids: the new tokens.
            positions: their rotary positions, ``(B, T)``.
            mask: which keys each new token attends to, a bool ``(B or 1, 1, T, keys)`` (True: attend),
                keys being the cached or past positions followed by the new ones; None: plain causal
                attention over the new tokens alone.
            cache: a :class:`KVCache` the new keys and values are written into (after ``cache.length``,
                which then grows by T); attention reads every filled position.
            past: instead of a cache, each layer's earlier keys and values ``(B, heads, P, head_dim)``
                (differentiable: the shared prompt of several sequences in training).
            keep: a list that receives each layer's keys and values of the new tokens (for ``past``).
        """
        import torch
        import torch.nn.functional as F

        batch, width = input_ids.shape
        fused = self._fused()
        sizes = [self.layers[0].q.shape[0] + self.layers[0].k.shape[0], self.layers[0].v.shape[0]]
        x = F.embedding(input_ids, self.embed)
        cos, sin = self._rotary(positions, x.dtype)
        start = cache.length if cache is not None else 0
        groups = self.heads // self.kv_heads
        for index, layer in enumerate(self.layers):
            h = self._norm(x, layer.input_norm)
            qkv, gate_up = fused[index]
            qk, v = F.linear(h, qkv).split(sizes, dim=-1)
            # Queries and keys rotate together: one pass of the same elementwise arithmetic.
            qk = self._rotate(qk.view(batch, width, -1, self.head_dim), cos, sin)
            q, k = qk[:, :, : self.heads].transpose(1, 2), qk[:, :, self.heads :].transpose(1, 2)
            v = v.reshape(batch, width, -1, self.head_dim).transpose(1, 2)
            if keep is not None:
                keep.append((k, v))
            if cache is not None:
                cache.buffer[index, 0, :, :, start : start + width] = k
                cache.buffer[index, 1, :, :, start : start + width] = v
                k = cache.buffer[index, 0, :, :, : start + width]
                v = cache.buffer[index, 1, :, :, : start + width]
            elif past is not None:
                k, v = torch.cat([past[index][0], k], dim=2), torch.cat([past[index][1], v], dim=2)
            if width == 1:
                # One new token (a decoding step): CPU SDPA kernels are tuned for long queries; two
                # matmuls and a softmax are faster here, and the arithmetic is the same.
                if groups > 1:
                    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
                scores = torch.matmul(q, k.transpose(-1, -2)) * self.scaling
                if mask is not None:
                    scores = scores.masked_fill(~mask, float("-inf"))
                attention = torch.matmul(torch.softmax(scores, dim=-1), v)
            else:
                attention = F.scaled_dot_product_attention(
                    q,
                    k,
                    v,
                    attn_mask=mask,
                    is_causal=mask is None,
                    scale=self.scaling,
                    enable_gqa=groups > 1,
                )
            x = x + F.linear(attention.transpose(1, 2).reshape(batch, width, -1), layer.o)
            h = self._norm(x, layer.post_norm)
            gate, up = F.linear(h, gate_up).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, layer.down)
        if cache is not None:
            cache.length = start + width
        return self._norm(x, self.final_norm)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The output head on hidden states (any leading shape)."""
        import torch.nn.functional as F

        return F.linear(hidden, self.head)
