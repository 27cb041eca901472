"""The policy protocol: a language model that writes the next reasoning step for many prompts at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from codegym.errors import UserError
from codegym.steps import STEP_STOP

DEFAULT_STOP: tuple[str, ...] = (STEP_STOP,)


@dataclass(frozen=True)
class Sample:
    """One generated continuation.

    Attributes:
        text: the generated text, cut before the first stop string (the stop string is not included).
        logprob: the summed log-probability of the generated tokens that were kept, under the sampling
            distribution's model (temperature 1 log-probs of the model's logits, not the tempered ones);
            None when the backend cannot tell (a server that returns no log-probs).
        num_tokens: how many tokens were generated (kept ones; what a budget counts).
        finish_reason: ``"stop"`` (a stop string or the end-of-sequence token) or ``"length"``
            (``max_new_tokens`` ran out).
        token_ids: the ids of the tokens the model generated for ``text`` (the ``num_tokens`` kept; a
            protocol's forced opening is part of the prompt, not of these), so a trainer can score
            exactly what was sampled instead of tokenizing the text again; None when the backend cannot
            tell (a server).
        end_token_id: the id of the token generated right after the kept ones, when the sample ended at
            a stop string or the end-of-sequence token: the model's choice to end the text there (the
            token the stop string starts with, or the EOS token). A trainer scores it with the kept
            tokens, or the choice of where a step ends is never trained. None for a sample cut by
            ``max_new_tokens`` or a backend that cannot tell.
    """

    text: str
    logprob: float | None
    num_tokens: int
    finish_reason: str
    token_ids: tuple[int, ...] | None = None
    end_token_id: int | None = None


@runtime_checkable
class Policy(Protocol):
    """Anything that continues prompts: the built-in tiny model, a transformers model, an HTTP server.

    ``sample(prompts, n, ...)`` returns, for each prompt, ``n`` samples in order. It stops each sample at
    the first of ``stop`` (by default the start of the next step header, so one call writes one step).
    With a ``seed`` the same call returns the same samples. ``temperature=0`` means greedy decoding.
    """

    def sample(
        self,
        prompts: Sequence[str],
        n: int = 1,
        *,
        stop: Sequence[str] = DEFAULT_STOP,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> list[list[Sample]]: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    cut = min((index for index in (text.find(s) for s in stop if s) if index >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def check_sample_args(
    prompts: Sequence[str],
    n: int,
    max_new_tokens: int,
    temperature: float,
    stop: Sequence[str] = DEFAULT_STOP,
    seed: int | None = None,
) -> list[str]:
    """The argument checks every backend shares, with messages that name the fix; returns the non-empty stops."""
    if isinstance(prompts, str) or not all(isinstance(prompt, str) for prompt in prompts):
        raise TypeError("prompts must be a list of strings (wrap a single prompt in a list)")
    if not (isinstance(n, int) and n >= 1):
        raise UserError(f"n (samples per prompt) must be an int >= 1, got {n!r}")
    if not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
        raise UserError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if not (isinstance(temperature, int | float) and temperature >= 0):
        raise UserError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
    if isinstance(stop, str) or not all(isinstance(s, str) for s in stop):
        raise TypeError("stop must be a list of strings (wrap a single stop string in a list)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise UserError(f"seed must be None or an int >= 0, got {seed!r}")
    return [s for s in stop if s]
