"""``HFPolicy``: a :class:`~codegym.models.policy.Policy` backed by a Hugging Face transformers causal LM."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codegym.errors import UserError
from codegym.models.policy import DEFAULT_STOP, Sample, check_sample_args, cut_at_stop
from codegym.models.protocol import PromptProtocol, ProtocolPrompt, get_protocol, read_protocol

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from codegym.models.prefix_cache import PrefixCache

logger = logging.getLogger(__name__)


class HFPolicy:
    """A causal LM from the hub or a local folder that continues prompts in batches.

    The model and tokenizer load with ``AutoModelForCausalLM`` / ``AutoTokenizer`` (pass already-loaded
    objects instead with ``tokenizer=``). Prompts are left-padded and generated ``batch_size`` rows at a
    time (a row is one sample of one prompt).

    Sampling is at ``temperature`` from the model's raw distribution: the model's own
    ``generation_config`` (top-k, top-p, repetition penalty, ...) is not applied, so
    :attr:`Sample.logprob` is the temperature-1 log-probability of exactly what was sampled. With a
    ``seed``, sample ``j`` of prompt ``i`` draws from its own generator seeded by ``(seed, i, j)``, so
    the results do not depend on ``batch_size`` or on the other prompts (up to the float noise padding
    can add). ``temperature=0`` is greedy: one generation per prompt, repeated ``n`` times.

    A sample ends at the first stop string, at the end-of-sequence token, or after ``max_new_tokens``.
    Its text is cut before the stop string; ``num_tokens`` and ``logprob`` count the tokens needed to
    produce that text (a token the stop string starts inside counts; the EOS token does not).

    Args:
        model: a hub id, a local path, or a loaded ``PreTrainedModel`` (then pass ``tokenizer``).
        tokenizer: the tokenizer, when ``model`` is a loaded model; loaded from ``model`` otherwise.
        device: where the model runs; default ``"cuda"`` when available, else ``"cpu"``.
        dtype: the weights' dtype when loading (a ``torch.dtype``, ``"auto"`` or a name such as
            ``"bfloat16"``); default: transformers' default (float32).
        batch_size: rows (prompt x sample) decoded together (:func:`codegym.models.decoding.decode`:
            a row leaves the batch when it ends, so wide batches cost little on a CPU).
        use_chat_template: wrap each prompt as one user message with the tokenizer's chat template (and
            the generation prompt); the env's text is the message. Kept for old callers: an instruct
            model is better served by ``protocol="think"`` or ``"direct"``.
        trust_remote_code: passed to ``from_pretrained``; only for models whose code you trust.
        protocol: how the model is prompted (:mod:`codegym.models.protocol`): ``"native"`` (the env's
            text as is, the default), ``"think"``, ``"direct"`` or a
            :class:`~codegym.models.protocol.PromptProtocol`. Chat protocols need a chat template. By
            default the protocol saved beside a model trained here, else ``"native"``.
        lora: a folder holding a PEFT LoRA adapter to apply on top of ``model`` (see
            :func:`codegym.models.lora.apply_lora`).

    Example:
        >>> policy = HFPolicy("path/to/model")  # doctest: +SKIP
        >>> [[sample]] = policy.sample(["### Problem\\nAdd two numbers.\\n\\n### Step 1\\n"], seed=0)  # doctest: +SKIP
        >>> sample.text, sample.finish_reason  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | PathLike[str] | PreTrainedModel,
        *,
        tokenizer: PreTrainedTokenizerBase | None = None,
        device: str | None = None,
        dtype: Any = None,
        batch_size: int = 32,
        use_chat_template: bool = False,
        trust_remote_code: bool = False,
        protocol: str | PromptProtocol | None = None,
        lora: str | PathLike[str] | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise UserError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(model, str | PathLike):
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
                model, trust_remote_code=trust_remote_code
            )
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=dtype, trust_remote_code=trust_remote_code
            )
        elif tokenizer is None:
            raise TypeError("pass tokenizer= with a loaded model (or pass a hub id or path instead)")
        else:
            self.model, self.tokenizer = model, tokenizer
        if lora is not None:
            from codegym.models.lora import load_lora

            self.model = load_lora(self.model, lora)
        self.model.to(self.device).eval()
        self.batch_size = batch_size

        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise UserError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.use_chat_template = use_chat_template
        if use_chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise UserError("use_chat_template=True but the tokenizer has no chat template")
        if use_chat_template and protocol is not None:
            raise UserError("pass either protocol= or use_chat_template=True, not both")
        # A model trained here carries the protocol it was trained in; otherwise the env's own text.
        saved = read_protocol(model) if isinstance(model, str | PathLike) and Path(model).is_dir() else None
        self.protocol = get_protocol(protocol or saved or "native")
        if self.protocol.is_chat and not getattr(self.tokenizer, "chat_template", None):
            raise UserError(
                f"protocol {self.protocol.name!r} needs a chat template and this tokenizer has none; "
                "use protocol='native' for a base model"
            )
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_token_ids: set[int] = set() if eos is None else set(eos if isinstance(eos, list) else [eos])
        self._prefixes: PrefixCache | None = None

    @contextmanager
    def reusing_prefixes(self, max_bytes: int = 1 << 30) -> Iterator[PrefixCache]:
        """Within this block, :meth:`sample` keeps every decoded row's keys and values and does not read
        again the part of a later prompt that starts like one of them (an episode's next prompt starts
        with its last prompt and the step just written). It opens an empty
        :class:`~codegym.models.prefix_cache.PrefixCache` (at most ``max_bytes``) and drops it at the
        end, so the block's results depend only on its own calls. Nested blocks share the outer cache.
        Weights changed in place within the block (an optimizer step, ``load_state_dict``) empty it; a
        change through ``.data``, which torch does not count, would not. Only models the lean forward
        covers (a plain Llama) use it; others decode as before."""
        from codegym.models.prefix_cache import PrefixCache

        if self._prefixes is not None:
            yield self._prefixes
            return
        self._prefixes = PrefixCache(max_bytes)
        try:
            yield self._prefixes
        finally:
            self._prefixes = None

    def __repr__(self) -> str:
        return (
            f"HFPolicy({self.model.name_or_path!r}, device={str(self.device)!r}, "
            f"protocol={self.protocol.name!r})"
        )

    def sample(
        self,
        prompts: Sequence[str],
        n: int = 1,
        *,
        stop: Sequence[str] = DEFAULT_STOP,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> list[list[Sample]]:
        """For each prompt, ``n`` continuations in order; see the class docstring for the semantics."""
        stop = check_sample_args(prompts, n, max_new_tokens, temperature, stop, seed)
        if not prompts:
            return []
        base_seed = random.SystemRandom().randrange(2**63) if seed is None else seed
        built = [self.protocol.build(prompt, stop) for prompt in prompts]
        # Prompts the protocol passes through (not env prompts) keep the caller's stops: generate
        # each group of equal stops on its own; seeds stay per (prompt, sample), so grouping changes nothing.
        groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
        for index, prompt in enumerate(built):
            cap = min(max_new_tokens, prompt.max_new_tokens or max_new_tokens)
            groups.setdefault((prompt.stop, cap), []).append(index)
        results: dict[int, list[Sample]] = {}
        for (group_stop, group_cap), indices in groups.items():
            texts = [self._render(built[i]) for i in indices]
            for i, row in zip(
                indices,
                self._sample_texts(texts, indices, n, list(group_stop), group_cap, temperature, base_seed),
                strict=True,
            ):
                results[i] = [
                    Sample(
                        text=self.protocol.finish(built[i], s.text, s.finish_reason == "stop"),
                        logprob=s.logprob,
                        num_tokens=s.num_tokens,
                        finish_reason=s.finish_reason,
                        token_ids=s.token_ids,
                        end_token_id=s.end_token_id,
                    )
                    for s in row
                ]
        return [results[i] for i in range(len(prompts))]

    def _sample_texts(
        self,
        texts: list[str],
        prompt_ids: list[int],
        n: int,
        stop: list[str],
        max_new_tokens: int,
        temperature: float,
        base_seed: int,
    ) -> list[list[Sample]]:
        """``n`` samples of each rendered prompt; ``prompt_ids`` are the prompts' indices (for seeds)."""
        # Greedy samples of a prompt are all the same: generate one, repeat it.
        draws = 1 if temperature == 0 else n
        rows = [(i, j) for i in range(len(texts)) for j in range(draws)]
        # Rows of similar prompt length share a batch, to pad less; seeds are per row, so order is free.
        lengths = [len(ids) for ids in self._encode(texts)["input_ids"]]
        rows.sort(key=lambda row: lengths[row[0]])
        results: dict[tuple[int, int], Sample] = {}
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            logger.debug("generating rows %d-%d of %d", start, start + len(batch), len(rows))
            samples = self._generate(
                [texts[i] for i, _ in batch],
                [_row_seed(base_seed, prompt_ids[i], j) for i, j in batch],
                stop=stop,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
            )
            results.update(zip(batch, samples, strict=True))
        return [[results[(i, min(j, draws - 1))] for j in range(n)] for i in range(len(texts))]

    def prompt_token_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """The token ids the model is given for each prompt, exactly as :meth:`sample` formats and encodes
        them (chat template and special tokens included); what a trainer scoring sampled steps needs."""
        return self._encode([self._format(prompt) for prompt in prompts])["input_ids"]

    @property
    def embedding_size(self) -> int:
        """D, the width of :meth:`embed`'s vectors (the model's hidden size)."""
        return int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str], *, max_tokens: int = 512) -> np.ndarray:
        """The mean over tokens of the model's last hidden state for each text, shape (len(texts), D).

        The decoder's output (the hidden states before the LM head), so a LoRA adapter's layers count. A
        text is cut to its first ``max_tokens`` tokens (or the model's context, if shorter); it is
        encoded as given, without the protocol's formatting.
        """
        import torch

        limit = min(max_tokens, getattr(self.model.config, "max_position_embeddings", max_tokens))
        # Right padding keeps every text's positions starting at 0, as in training.
        batch = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=limit,
            padding_side="right",
        ).to(self.device)
        with torch.no_grad():
            hidden = self.model.get_decoder()(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state  # (B, T, D)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, D)
        return pooled.float().cpu().numpy()

    def generated_text(self, prompt: str, step: str) -> str:
        """The part of ``step`` (a step this policy wrote for ``prompt``) that the model generated: the
        step without the protocol's forced opening, which :meth:`prompt_token_ids` already holds."""
        prefix = self.protocol.build(prompt).prefix
        return step[len(prefix) :] if prefix and step.startswith(prefix) else step

    def _format(self, prompt: str) -> str:
        """``prompt`` exactly as the model sees it (the protocol's form, rendered)."""
        return self._render(self.protocol.build(prompt))

    def _render(self, built: ProtocolPrompt) -> str:
        if built.is_chat:
            return built.render(self.tokenizer.apply_chat_template)
        if not self.use_chat_template:
            return built.text or ""
        messages = [{"role": "user", "content": built.text}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, texts: list[str], **kwargs: Any) -> Any:
        # A chat template already holds the BOS token; plain prompts get the tokenizer's usual specials.
        chat = self.use_chat_template or self.protocol.is_chat
        return self.tokenizer(texts, add_special_tokens=not chat, **kwargs)

    def _generate(
        self,
        texts: list[str],
        seeds: list[int],
        *,
        stop: list[str],
        max_new_tokens: int,
        temperature: float,
    ) -> list[Sample]:
        import torch

        from codegym.models.decoding import decode

        inputs = self._encode(texts, return_tensors="pt", padding=True, padding_side="left").to(self.device)
        chooser = _TokenChooser(seeds, temperature, self.device)
        if self._prefixes is not None:
            # Keys and values computed before the weights changed (an optimizer step, a loaded state
            # dict: each bumps its tensors' versions) would be stale: forget them.
            weights = tuple(parameter._version for parameter in self.model.parameters())
            if self._prefixes.weights != weights:
                self._prefixes.clear()
                self._prefixes.weights = weights
        with torch.inference_mode():
            generated, logprobs = decode(
                self.model,
                inputs["input_ids"],
                inputs["attention_mask"],
                choose=chooser,
                finished=_StopStrings(stop, self.tokenizer.batch_decode, self._stop_enders(stop))
                if stop
                else None,
                max_new_tokens=max_new_tokens,
                eos_token_ids=self.eos_token_ids,
                prefixes=self._prefixes,
            )
        return [
            self._to_sample(tokens, row_logprobs, stop)
            for tokens, row_logprobs in zip(generated, logprobs, strict=True)
        ]

    def _stop_enders(self, stop: list[str]) -> frozenset[int]:
        """The ids of the tokens that can end one of ``stop``: those whose text, decoded alone, holds the
        last character of a stop string or is not whole text (a piece of a multi-byte character). A row
        whose newest token is not one of them cannot have just completed a stop string (made once per
        set of stops and kept)."""
        key = tuple(stop)
        cached = getattr(self, "_stop_enders_cache", {})
        if key not in cached:
            lasts = {s[-1] for s in stop}
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            cached[key] = frozenset(
                i for i, text in enumerate(texts) if "\ufffd" in text or any(last in text for last in lasts)
            )
            self._stop_enders_cache = cached
        return cached[key]

    def _to_sample(self, tokens: list[int], logprobs: list[float], stop: list[str]) -> Sample:
        generated, ended_by_eos = tokens, False
        for index, token in enumerate(tokens):
            if token in self.eos_token_ids:
                tokens, ended_by_eos = tokens[:index], True
                break

        def decode(count: int) -> str:
            return self.tokenizer.decode(tokens[:count], skip_special_tokens=True)

        text, stopped = cut_at_stop(decode(len(tokens)), stop)
        # The fewest tokens whose text covers the kept text (decoded length grows with the prefix).
        low, high = 0, len(tokens)
        while low < high:
            middle = (low + high) // 2
            if len(decode(middle)) >= len(text):
                high = middle
            else:
                low = middle + 1
        ended = stopped or ended_by_eos
        return Sample(
            text=text,
            logprob=float(sum(logprobs[:low])),
            num_tokens=low,
            finish_reason="stop" if ended else "length",
            token_ids=tuple(tokens[:low]),
            # The first token after the kept ones: where the stop string starts, or the EOS token.
            end_token_id=generated[low] if ended and low < len(generated) else None,
        )


def _row_seed(base_seed: int, prompt_index: int, sample_index: int) -> int:
    return int(
        np.random.SeedSequence([base_seed, prompt_index, sample_index]).generate_state(1, np.uint64)[0]
    )


class _TokenChooser:
    """Picks each row's next token from its raw logits (greedy, or sampled from the row's own generator at
    ``temperature``) and gives that token's temperature-1 log-probability."""

    def __init__(self, seeds: list[int], temperature: float, device: torch.device) -> None:
        import torch

        self.temperature = temperature
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, rows: list[int], scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        scores = scores.float()
        logprobs = torch.log_softmax(scores, dim=-1)  # (B, V), raw logits: temperature 1
        if self.temperature == 0:
            chosen = scores.argmax(dim=-1)  # (B,)
        else:
            probs = torch.softmax(scores / self.temperature, dim=-1)
            if not bool(torch.isfinite(probs).all()):
                raise FloatingPointError("the model's next-token probabilities hold inf or nan")
            # The exponential race: argmax(p / q) with q ~ Exp(1) i.i.d. draws token i with probability
            # p_i. Each row's noise comes from its own generator, so a row's draws do not depend on the
            # batch; it is what torch.multinomial(p, 1) computes row by row, in one pass for the batch.
            noise = torch.empty_like(probs)
            for j, row in enumerate(rows):
                noise[j].exponential_(1.0, generator=self.generators[row])
            chosen = (probs / noise).argmax(dim=-1)
        return chosen, logprobs.gather(1, chosen[:, None]).squeeze(1)


class _StopStrings:
    """Whether a row's generated text holds a stop string yet.

    Only the last few tokens are decoded at each step (enough bytes for the longest stop string), so a
    step costs O(1) decoding; the final cut is made on the whole text afterwards.
    """

    def __init__(
        self, stop: list[str], batch_decode: Callable[..., list[str]], enders: frozenset[int] | None = None
    ) -> None:
        self.stop = stop
        self.batch_decode = batch_decode
        # A token holds at least one byte and a character at most four, plus one token of slack.
        self.window = 4 * max(len(s) for s in stop) + 1
        # Tokens that can complete a stop string (None: any); rows ending in another are not decoded.
        self.enders = enders

    def __call__(self, rows: list[int], tokens: list[list[int]]) -> list[bool]:
        check = [j for j, row in enumerate(rows) if self.enders is None or tokens[row][-1] in self.enders]
        result = [False] * len(rows)
        if check:
            tails = self.batch_decode(
                [tokens[rows[j]][-self.window :] for j in check], skip_special_tokens=True
            )
            for j, tail in zip(check, tails, strict=True):
                result[j] = any(s in tail for s in self.stop)
        return result
