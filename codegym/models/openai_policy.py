"""A policy served over HTTP by any OpenAI-compatible completions server (vLLM, SGLang, Ollama, llama.cpp).

Standard library only (``urllib.request`` and ``json``), so it adds no dependency. It speaks the legacy
*completions* API (``POST {base_url}/completions``), the one that continues a raw prompt; chat endpoints
would wrap the observation in a chat template, which is the server's business, not this format's.

Example:
    >>> policy = OpenAIPolicy.from_spec("openai:http://localhost:8000/v1/Qwen/Qwen2.5-0.5B")
    >>> policy.base_url, policy.model
    ('http://localhost:8000/v1', 'Qwen/Qwen2.5-0.5B')
"""

from __future__ import annotations

import http.client
import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from codegym.models.policy import DEFAULT_STOP, Sample, check_sample_args, cut_at_stop

SPEC_PREFIX = "openai:"
_MESSAGE_LIMIT = 500  # characters of a server's error body kept in PolicyServerError


class PolicyServerError(RuntimeError):
    """The completions server refused a request, kept failing, or answered something unreadable.

    Attributes:
        status: the HTTP status, or None when no HTTP answer came (connection refused, timeout, bad JSON).
        url: the URL that was requested.
        message: the server's message (truncated) or what went wrong.
    """

    def __init__(self, message: str, *, status: int | None, url: str) -> None:
        self.status = status
        self.url = url
        self.message = message
        where = f"HTTP {status} from {url}" if status is not None else f"request to {url} failed"
        super().__init__(f"{where}: {message}")


class OpenAIPolicy:
    """A :class:`~codegym.models.policy.Policy` that asks an OpenAI-compatible completions server.

    One ``sample`` call is one ``POST {base_url}/{endpoint}`` holding all prompts (``prompt`` is a list
    and the answer's ``choices[k].index`` is ``prompt_index * n + sample_index``, as in the OpenAI API and
    vLLM); with ``batch_prompts=False`` it sends one request per prompt, for servers that take a single
    prompt only (Ollama, some llama.cpp builds).

    What each :class:`~codegym.models.policy.Sample` holds:

    - ``text``: ``choices[k].text``, cut again client-side at the first stop string (servers differ in
      whether they honour ``stop``; vLLM does).
    - ``logprob``: the sum of ``logprobs.token_logprobs`` (``None`` entries skipped), asked for with
      ``logprobs: 1``. When the client cut the text, only tokens that start before the cut count (by
      ``logprobs.text_offset``, else by the lengths of ``logprobs.tokens``). Which log-probs a server
      reports (raw or tempered) is its setting: vLLM reports the raw model's by default, as ``Sample``
      asks. A server that returns no log-probs gives ``nan``.
    - ``num_tokens``: the number of kept entries of ``token_logprobs``. Without log-probs it is the
      response's ``usage.completion_tokens`` shared evenly among its choices, an approximation.
    - ``finish_reason``: ``"length"`` where the server says so and the client did not cut, else ``"stop"``.

    Args:
        base_url: the server's API root, e.g. ``http://localhost:8000/v1``.
        model: the served model's name, e.g. ``Qwen/Qwen2.5-0.5B``.
        api_key: sent as ``Authorization: Bearer``; by default the ``OPENAI_API_KEY`` environment variable
            if set, else no header.
        timeout_s: socket timeout per request attempt (urllib's: for connecting and for each read, not
            for the whole answer).
        max_retries: retries after the first attempt on connection errors, timeouts, HTTP 429 and 5xx,
            with a wait of ``backoff_s * 2**retry`` before each; other HTTP errors raise at once.
        backoff_s: the first wait between attempts, in seconds.
        endpoint: the path after ``base_url``; it must answer in the completions format.
        batch_prompts: send all prompts in one request (True) or one request per prompt.

    Raises:
        PolicyServerError: from ``sample``, when the server refuses, keeps failing or answers nonsense.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        endpoint: str = "completions",
        batch_prompts: bool = True,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("model must name the served model, e.g. 'Qwen/Qwen2.5-0.5B'")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not backoff_s >= 0:
            raise ValueError(f"backoff_s must be >= 0, got {backoff_s!r}")
        if "chat" in endpoint:
            raise ValueError(
                f"endpoint {endpoint!r} looks like a chat endpoint; OpenAIPolicy continues raw prompts "
                "and needs the completions API (endpoint='completions')"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.url = f"{self.base_url}/{endpoint.strip('/')}"
        self.batch_prompts = batch_prompts

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> OpenAIPolicy:
        """A policy from ``"openai:<base_url>/<model>"``, where ``<base_url>`` ends in ``/v1``.

        The rule: drop the ``openai:`` prefix and split at the *first* ``/v1/``; what comes before it,
        plus ``/v1``, is the base URL, and everything after it is the model, slashes included. So
        ``openai:http://localhost:8000/v1/Qwen/Qwen2.5-0.5B`` is model ``Qwen/Qwen2.5-0.5B`` at
        ``http://localhost:8000/v1``. ``kwargs`` are :class:`OpenAIPolicy`'s keyword arguments.

        Raises:
            ValueError: the spec does not have that form.
        """
        expected = "expected 'openai:<http(s)://host:port>/v1/<model>', e.g. 'openai:http://localhost:8000/v1/Qwen/Qwen2.5-0.5B'"
        if not spec.startswith(SPEC_PREFIX):
            raise ValueError(f"policy spec {spec!r} does not start with {SPEC_PREFIX!r}; {expected}")
        url = spec[len(SPEC_PREFIX) :]
        root, found, model = url.partition("/v1/")
        if not found or not model.strip("/") or not url.startswith(("http://", "https://")):
            raise ValueError(f"malformed policy spec {spec!r}; {expected}")
        return cls(root + "/v1", model.strip("/"), **kwargs)

    def __repr__(self) -> str:  # no api_key: reprs end up in logs
        return f"OpenAIPolicy(base_url={self.base_url!r}, model={self.model!r})"

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
        """For each prompt, ``n`` samples in order (see the class docstring for what they hold)."""
        stop = check_sample_args(prompts, n, max_new_tokens, temperature, stop, seed)
        prompts = list(prompts)
        if not prompts:
            return []
        groups = [prompts] if self.batch_prompts else [[prompt] for prompt in prompts]
        results: list[list[Sample]] = []
        for group in groups:
            body: dict[str, Any] = {
                "model": self.model,
                "prompt": group if self.batch_prompts else group[0],
                "n": n,
                "max_tokens": max_new_tokens,
                "temperature": temperature,
                "logprobs": 1,
            }
            if stop:
                body["stop"] = stop
            if seed is not None:
                body["seed"] = seed
            results += self._parse(self._post(body), len(group), n, stop)
        return results

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON, retrying what may pass; the decoded JSON answer."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                status, message = exc.code, _error_message(exc)
                if status != 429 and status < 500:
                    raise PolicyServerError(message, status=status, url=self.url) from exc
                failure: Exception = exc
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                status, message = None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
                failure = exc
            else:
                try:
                    return json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise PolicyServerError(
                        f"answer is not JSON: {raw[:_MESSAGE_LIMIT]!r}", status=None, url=self.url
                    ) from exc
        raise PolicyServerError(
            f"{message} (gave up after {self.max_retries + 1} attempts; timeout_s={self.timeout_s})",
            status=status,
            url=self.url,
        ) from failure

    def _parse(
        self, answer: dict[str, Any], num_prompts: int, n: int, stop: Sequence[str]
    ) -> list[list[Sample]]:
        """The answer's choices as ``num_prompts`` lists of ``n`` samples, placed by ``choices[k].index``."""
        choices = answer.get("choices") if isinstance(answer, dict) else None
        expected = num_prompts * n
        indices = sorted(
            choice["index"]
            for choice in choices or []
            if isinstance(choice, dict) and isinstance(choice.get("index"), int)
        )
        if not isinstance(choices, list) or len(choices) != expected or indices != list(range(expected)):
            raise PolicyServerError(
                f"expected {expected} choices indexed 0..{expected - 1} ({num_prompts} prompts x n={n}), "
                f"got indices {indices[:20]}; if the server takes one prompt per request, pass "
                "batch_prompts=False; if it ignores n, ask for n=1",
                status=None,
                url=self.url,
            )
        usage_tokens = (answer.get("usage") or {}).get("completion_tokens")
        tokens_per_choice = round(usage_tokens / expected) if isinstance(usage_tokens, int) else None
        by_index = {choice["index"]: choice for choice in choices}
        samples = [self._sample(by_index[k], stop, tokens_per_choice) for k in range(expected)]
        return [samples[i * n : (i + 1) * n] for i in range(num_prompts)]

    def _sample(self, choice: dict[str, Any], stop: Sequence[str], tokens_per_choice: int | None) -> Sample:
        text = choice.get("text")
        if not isinstance(text, str):
            raise PolicyServerError(f"choice without text: {str(choice)[:200]}", status=None, url=self.url)
        kept, was_cut = cut_at_stop(text, stop)
        finish_reason = "length" if choice.get("finish_reason") == "length" and not was_cut else "stop"
        token_logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
        if token_logprobs is None:
            if tokens_per_choice is None:
                raise PolicyServerError(
                    "the answer has neither logprobs.token_logprobs nor usage.completion_tokens, "
                    "so its token counts are unknown",
                    status=None,
                    url=self.url,
                )
            return Sample(kept, math.nan, tokens_per_choice, finish_reason)
        if was_cut:
            starts = _token_starts(choice["logprobs"], text)
            if starts is None:  # the cut cannot be placed among the tokens
                return Sample(kept, math.nan, len(token_logprobs), finish_reason)
            token_logprobs = [
                lp for lp, start in zip(token_logprobs, starts, strict=False) if start < len(kept)
            ]
        logprob = math.fsum(lp for lp in token_logprobs if lp is not None)
        return Sample(kept, logprob, len(token_logprobs), finish_reason)


def _token_starts(logprobs: dict[str, Any], text: str) -> list[int] | None:
    """Where each generated token starts in ``text``, or None when the answer does not say."""
    offsets = logprobs.get("text_offset")
    if offsets:
        # OpenAI counts offsets from the prompt's start, vLLM from the completion's: the first token starts at 0.
        return [offset - offsets[0] for offset in offsets]
    tokens = logprobs.get("tokens")
    if tokens and "".join(tokens) == text:
        starts, position = [], 0
        for token in tokens:
            starts.append(position)
            position += len(token)
        return starts
    return None


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's error message: ``error.message`` of a JSON body, else the body, truncated."""
    try:
        body = exc.read().decode(errors="replace")
    except OSError:
        body = ""
    try:  # OpenAI and llama.cpp: {"error": {"message": ...}}; vLLM: {"message": ...}
        parsed = json.loads(body)
        error = parsed.get("error")
        message = error.get("message") if isinstance(error, dict) else error or parsed.get("message")
        message = str(message) if message else body
    except (ValueError, AttributeError):
        message = body
    message = message or exc.reason or ""
    return message if len(message) <= _MESSAGE_LIMIT else message[:_MESSAGE_LIMIT] + "..."
