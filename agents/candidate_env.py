"""``CandidateChoiceEnv``: CodeReason-v0 as a space stable-baselines3 accepts (Box in, Discrete out).

SB3 cannot act in text. This wrapper lets the policy LM propose ``K`` candidate steps at each state and
turns the choice among them into the action: the observation embeds the state and the candidates in a
fixed-size vector, the action ``i`` plays candidate ``i`` through the wrapped env. An SB3 agent then
learns *which* of the LM's proposals to take, the same decision a best-of-N or tree search makes with
a PRM, but learned from the env's reward.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import gymnasium as gym
import numpy as np

from codegym.errors import UserError
from codegym.models import Policy, Sample, load_policy
from codegym.options import check_keywords
from codegym.steps import extract_code, policy_prompt

EMBEDDINGS = ("auto", "model", "hashed")
CANDIDATE_FEATURES = ("token_prob", "length", "is_code", "cut_at_limit")
BLANK_STEP = "(empty step)"  # played instead of a blank candidate, which the env would refuse
_NGRAMS = (2, 3, 4)


class CandidateChoiceEnv(gym.Env[np.ndarray, np.int64]):
    """Choose one of ``K`` policy-proposed steps; the chosen step is played in CodeReason-v0.

    ## Description

    At each state the policy LM writes ``K`` candidate next steps in one ``policy.sample([prompt],
    n=K)`` call, seeded from ``self.np_random`` (so ``reset(seed=s)`` repeats exactly, candidates
    included). The agent picks one; it is played through the wrapped env's ``step``.

    ## Observation Space

    ``Box(-1, 1, (D + 1 + K * (D + 4),), float32)``: the state's embedding (D), the step index over
    ``max_steps``, then per candidate its embedding (D) and four features: the geometric-mean token
    probability ``exp(logprob / num_tokens)``, ``num_tokens / max_new_tokens``, whether it is a code
    step (it would end the episode), and whether it was cut at ``max_new_tokens``. Embeddings are unit
    L2 vectors. ``embedding="model"`` is the policy's own :meth:`~codegym.models.HFPolicy.embed`, the
    mean-pooled last hidden state (D = its ``embedding_size``, 128 for ``"tiny"``); ``"hashed"`` counts
    signed character 2-, 3- and 4-grams hashed into ``hashed_dim`` buckets (any policy, no model);
    ``"auto"`` is ``"model"`` for an HFPolicy, else ``"hashed"``. After the episode ends the candidate
    slots are zeros.

    ## Action Space

    ``Discrete(K)``: the index of the candidate to play. Duplicates among candidates are legal. A blank
    candidate is played as ``"(empty step)"`` and one longer than the env's step limit is cut; either
    way ``info["candidate_note"]`` says so.

    ## Rewards, Episode End, Info

    Those of the wrapped env, unchanged. ``info`` is the wrapped env's plus ``candidate_index``,
    ``candidate_text`` (what was played), ``candidate_logprob``, ``candidate_num_tokens`` and
    ``candidates`` (the texts on offer in the new observation, empty at the end).

    ## Arguments

    - ``env``: a CodeReason env (``gym.make("CodeReason-v0", ...)`` or a ``CodeReasonEnv``), or None to
      make one from ``env_kwargs``; an env made here is closed by :meth:`close`, one passed in is not.
    - ``policy``: a :class:`~codegym.models.Policy` or a spec for :func:`~codegym.models.load_policy`.
    - ``candidates``: K >= 1. ``temperature``, ``max_new_tokens``: the policy's sampling settings.
    - ``embedding``, ``hashed_dim``, ``max_embed_tokens``: see Observation Space (the model embedding
      reads at most ``max_embed_tokens`` tokens of a text).

    Example:
        >>> env = CandidateChoiceEnv(policy="tiny", candidates=3, env_kwargs={"sandbox": "local"})  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
        >>> obs, reward, terminated, truncated, info = env.step(1)  # doctest: +SKIP

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        env: gym.Env | None = None,
        *,
        policy: Policy | str = "tiny",
        candidates: int = 3,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        embedding: str = "auto",
        hashed_dim: int = 128,
        max_embed_tokens: int = 512,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise UserError(f"candidates (K) must be an int >= 1, got {candidates!r}")
        if not (isinstance(temperature, int | float) and temperature >= 0):
            raise UserError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if embedding not in EMBEDDINGS:
            raise UserError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        if isinstance(hashed_dim, bool) or not isinstance(hashed_dim, int) or hashed_dim < 1:
            raise UserError(f"hashed_dim must be an int >= 1, got {hashed_dim!r}")
        if env is not None and env_kwargs:
            raise UserError("pass either env (an env instance) or env_kwargs (to make one), not both")
        from codegym.env import CodeReasonEnv  # what gym.make("CodeReason-v0") builds

        check_keywords(CodeReasonEnv, env_kwargs or {}, "CodeReason-v0 (env_kwargs)")
        self.policy: Policy = load_policy(policy) if isinstance(policy, str) else policy
        if not isinstance(self.policy, Policy):
            raise TypeError(f"policy must have a sample(prompts, n, ...) method, got {type(policy).__name__}")
        has_model = callable(getattr(self.policy, "embed", None))
        if embedding == "model" and not has_model:
            raise UserError(
                f"embedding='model' needs a policy with embed() and embedding_size (an HFPolicy), got "
                f"{type(self.policy).__name__}; use embedding='hashed'"
            )
        self.embedding = ("model" if has_model else "hashed") if embedding == "auto" else embedding

        self._owns_env = env is None
        self.env = gym.make("CodeReason-v0", **(env_kwargs or {})) if env is None else env
        if not all(hasattr(self.env.unwrapped, name) for name in ("get_state", "set_state", "max_steps")):
            raise TypeError(f"env must be a CodeReason env, got {self.env.unwrapped!r}")
        self.candidates = candidates
        self.temperature = float(temperature)
        self.max_new_tokens = max_new_tokens
        self.max_embed_tokens = max_embed_tokens
        self.max_step_chars: int | None = getattr(self.env.action_space, "max_length", None)
        self.embed_dim = self.policy.embedding_size if self.embedding == "model" else hashed_dim
        size = self.embed_dim + 1 + candidates * (self.embed_dim + len(CANDIDATE_FEATURES))
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(candidates)
        # What the wrapper spent (every agent reports its compute: CONTRIBUTING.md).
        self.compute = {"policy_calls": 0, "candidates_sampled": 0, "tokens_generated": 0}
        self._offer: list[Sample] = []
        self._text = ""
        self._done = True

    # -- the Gymnasium API -----------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the wrapped env (seeded from ``self.np_random``) and propose the first candidates."""
        super().reset(seed=seed)
        text, info = self.env.reset(seed=self._draw_seed(), options=options)
        return self._arrive(text, info, done=False)

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Play candidate ``action`` in the wrapped env; returns its reward, end flags and info."""
        if self._done:
            raise RuntimeError("the episode has ended or not begun; call reset() before step()")
        if not self.action_space.contains(action):
            raise UserError(f"action must be a candidate index in [0, {self.candidates}), got {action!r}")
        index = int(action)
        chosen = self._offer[index]
        text, note = chosen.text, None
        if not text.strip():
            text, note = BLANK_STEP, f"candidate {index} was blank; played {BLANK_STEP!r} instead"
        elif self.max_step_chars is not None and len(text) > self.max_step_chars:
            text = text[: self.max_step_chars]
            note = f"candidate {index} was longer than max_step_chars={self.max_step_chars}; cut to fit"
        text_after, reward, terminated, truncated, info = self.env.step(text)
        observation, info = self._arrive(text_after, info, done=terminated or truncated)
        info.update(
            candidate_index=index,
            candidate_text=text,
            candidate_logprob=chosen.logprob,
            candidate_num_tokens=chosen.num_tokens,
        )
        if note is not None:
            info["candidate_note"] = note
        return observation, float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        if self._owns_env:
            self.env.close()
        super().close()

    @property
    def offer(self) -> tuple[Sample, ...]:
        """The candidates on offer at the current state (empty once the episode has ended)."""
        return tuple(self._offer)

    # -- internals -------------------------------------------------------------------------------------

    def _draw_seed(self) -> int:
        return int(self.np_random.integers(2**31))

    def _arrive(self, text: str, info: dict[str, Any], *, done: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Propose candidates at a new state (none when it is terminal) and build its observation."""
        self._text, self._done = text, done
        step_index = int(info["step_index"])
        self._offer = [] if done else self._propose(text, step_index)
        info = {**info, "candidates": tuple(sample.text for sample in self._offer)}
        return self._observe(step_index), info

    def _propose(self, text: str, step_index: int) -> list[Sample]:
        [samples] = self.policy.sample(
            [policy_prompt(text, step_index)],
            n=self.candidates,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self._draw_seed(),
        )
        if len(samples) != self.candidates:
            raise RuntimeError(f"the policy returned {len(samples)} samples for n={self.candidates}")
        self.compute["policy_calls"] += 1
        self.compute["candidates_sampled"] += len(samples)
        self.compute["tokens_generated"] += sum(sample.num_tokens for sample in samples)
        return list(samples)

    def _observe(self, step_index: int) -> np.ndarray:
        dim, features = self.embed_dim, len(CANDIDATE_FEATURES)
        vectors = self._embed([self._text] + [sample.text for sample in self._offer])  # (1 + n, D)
        max_steps = self.env.unwrapped.max_steps
        parts = [vectors[0], np.array([min(step_index / max_steps, 1.0)], dtype=np.float32)]
        slots = np.zeros((self.candidates, dim + features), dtype=np.float32)  # (K, D + F)
        for slot, (sample, vector) in enumerate(zip(self._offer, vectors[1:], strict=True)):
            slots[slot, :dim] = vector
            slots[slot, dim:] = self._features(sample)
        observation = np.concatenate([*parts, slots.reshape(-1)]).astype(np.float32)
        return np.clip(observation, -1.0, 1.0)  # unit vectors can overshoot 1 by float error

    def _features(self, sample: Sample) -> list[float]:
        known = sample.logprob is not None and sample.num_tokens > 0
        token_prob = math.exp(sample.logprob / sample.num_tokens) if known else 0.0  # unknown reads as 0
        return [
            min(max(token_prob, 0.0), 1.0),
            min(sample.num_tokens / self.max_new_tokens, 1.0),
            float(extract_code(sample.text) is not None),
            float(sample.finish_reason == "length"),
        ]

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Unit-L2 embeddings of ``texts``, shape (len(texts), D)."""
        if self.embedding == "model":
            vectors = model_embedding(self.policy, texts, max_tokens=self.max_embed_tokens)
        else:
            vectors = np.stack([hashed_embedding(text, self.embed_dim) for text in texts])
        return _unit_rows(vectors)


def hashed_embedding(text: str, dim: int = 128) -> np.ndarray:
    """Signed counts of the character 2-, 3- and 4-grams of ``text`` hashed into ``dim`` buckets.

    The hash is CRC-32 (not Python's per-process salted ``hash``), so the vector is the same in every
    process. The result is not normalized; shape ``(dim,)``, float32.

    Example:
        >>> hashed_embedding("ab", dim=4).tolist()
        [0.0, 0.0, 1.0, 0.0]
    """
    vector = np.zeros(dim, dtype=np.float32)
    for n in _NGRAMS:
        for start in range(len(text) - n + 1):
            code = zlib.crc32(text[start : start + n].encode("utf-8", "surrogatepass"))
            # The low bit picks the sign (the "hashing trick", Weinberger et al. 2009), so that collisions
            # cancel on average instead of piling up.
            vector[(code >> 1) % dim] += 1.0 if code & 1 else -1.0
    return vector


def model_embedding(policy: Any, texts: list[str], *, max_tokens: int = 512) -> np.ndarray:
    """The policy's own embedding of each text (:meth:`~codegym.models.HFPolicy.embed`: the mean over
    tokens of its last hidden state), shape (len(texts), D). A text is cut to its first ``max_tokens``
    tokens.

    Raises:
        TypeError: the policy has no ``embed`` (an API policy, say); use ``embedding="hashed"``.
    """
    if not callable(getattr(policy, "embed", None)):
        raise TypeError(
            f"embedding='model' needs a policy with embed(texts, max_tokens=...) (an HFPolicy), got "
            f"{type(policy).__name__}; use embedding='hashed'"
        )
    return np.asarray(policy.embed(texts, max_tokens=max_tokens), dtype=np.float32)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
