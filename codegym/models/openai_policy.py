"""A policy served over HTTP by any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp,
``transformers serve``).

Standard library only (``urllib.request`` and ``json``), so it adds no dependency (a chat protocol over
the completions endpoint loads the model's tokenizer with transformers, for its chat template).

Two endpoints:

- ``completions`` (default): continues a raw prompt. With the ``native`` protocol the prompt is the env's
  text; with a chat protocol (``think``, ``direct``) the client renders the chat template itself (the
  tokenizer comes from ``tokenizer=``, else from ``model`` when that is a local folder), so the assistant
  turn is continued exactly, on any server.
- ``chat/completions``: sends the protocol's messages. A server that can continue the final assistant
  message (vLLM with ``continue_final_message=True``) does so; any other opens a new assistant turn, so
  by default the steps so far go as a finished assistant message and a user message asks for the next.

Servers differ, and the client adapts (each once per policy, remembered): a server that refuses a list
``prompt`` (HTTP 400/422) gets one prompt per request; one that ignores ``n`` gets ``n`` separate
requests with seeds ``seed + j``; one that returns no log-probs yields ``Sample.logprob = None``
(unknown, not a number); the server's error text (``error.message``, ``message`` or ``detail``) is in
every :class:`PolicyServerError`.

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

from codegym.errors import UserError
from codegym.models.policy import DEFAULT_STOP, Sample, check_sample_args, cut_at_stop
from codegym.models.protocol import PromptProtocol, ProtocolPrompt, get_protocol

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
    """A :class:`~codegym.models.policy.Policy` that asks an OpenAI-compatible server.

    A ``sample`` call sends all prompts in one request (``prompt`` as a list, ``n`` samples each, as in
    the OpenAI API and vLLM) when the server takes that, else one request per prompt, and ``n``
    separate seeded requests per prompt when the server ignores ``n`` (see the module docstring).

    What each :class:`~codegym.models.policy.Sample` holds:

    - ``text``: the choice's text (``text``, or ``message.content`` from a chat endpoint), cut again
      client-side at the first stop string (servers differ in whether they honour ``stop``, and some keep
      the stop text), with the protocol's forced opening in front.
    - ``logprob``: the sum of the returned token log-probs (asked for with ``logprobs``); when the client
      cut the text, only tokens that start before the cut count. ``None`` when the server returned none.
    - ``num_tokens``: the number of kept tokens with log-probs; without them the response's
      ``usage.completion_tokens`` shared evenly among its choices, an approximation.
    - ``finish_reason``: ``"length"`` where the server says so and the client did not cut, else ``"stop"``.

    Args:
        base_url: the server's API root, e.g. ``http://localhost:8000/v1``.
        model: the served model's name, e.g. ``Qwen/Qwen2.5-0.5B``, or an absolute local folder (what
            ``transformers serve`` takes), or a built-in name such as ``smollm2-135m-instruct`` (sent as
            its local folder, for a server on this machine).
        api_key: sent as ``Authorization: Bearer``; by default the ``OPENAI_API_KEY`` environment variable
            if set, else no header.
        timeout_s: socket timeout per request attempt (urllib's: for connecting and for each read, not
            for the whole answer).
        max_retries: retries after the first attempt on connection errors, timeouts, HTTP 429 and 5xx,
            with a wait of ``backoff_s * 2**retry`` before each; other HTTP errors raise at once.
        backoff_s: the first wait between attempts, in seconds.
        endpoint: ``"completions"`` or ``"chat/completions"`` (the path after ``base_url``).
        batch_prompts: True sends a list ``prompt``, False one prompt per request, None (default) tries
            the list once and falls back for good if the server refuses it.
        protocol: the prompt protocol (:mod:`codegym.models.protocol`); default ``native`` on the
            completions endpoint and ``think`` on the chat endpoint.
        tokenizer: for a chat protocol on the completions endpoint: a tokenizer, or a folder or hub id to
            load one from (offline); default ``model`` when it is a local folder.
        continue_final_message: on the chat endpoint, ask the server to continue the last assistant
            message (vLLM's ``continue_final_message``/``add_generation_prompt`` request fields; servers
            that do not know them may refuse the request: ``transformers serve`` answers HTTP 422).

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
        batch_prompts: bool | None = None,
        protocol: str | PromptProtocol | None = None,
        tokenizer: Any = None,
        continue_final_message: bool = False,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise UserError("model must name the served model, e.g. 'Qwen/Qwen2.5-0.5B'")
        if not timeout_s > 0:
            raise UserError(f"timeout_s must be > 0, got {timeout_s!r}")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise UserError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not backoff_s >= 0:
            raise UserError(f"backoff_s must be >= 0, got {backoff_s!r}")
        endpoint = endpoint.strip("/")
        if endpoint not in ("completions", "chat/completions"):
            raise UserError(f"endpoint must be 'completions' or 'chat/completions', got {endpoint!r}")
        from codegym.models.builtin import BUILTIN_MODELS, builtin_model_dir

        if model in BUILTIN_MODELS:
            model = str(builtin_model_dir(model))
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.endpoint = endpoint
        self.chat = endpoint == "chat/completions"
        self.url = f"{self.base_url}/{endpoint}"
        self.batch_prompts = batch_prompts
        self.supports_n: bool | None = None  # learnt from the first answer with n > 1
        self.protocol = get_protocol(protocol or ("think" if self.chat else "native"))
        if self.chat and not self.protocol.is_chat:
            raise UserError(
                f"the chat endpoint needs a chat protocol ('think' or 'direct'), got {self.protocol.name!r}; "
                "use endpoint='completions' for the native protocol"
            )
        self.continue_final_message = continue_final_message
        self.tokenizer = None
        if self.protocol.is_chat and not self.chat:
            self.tokenizer = _load_tokenizer(
                tokenizer if tokenizer is not None else model, self.protocol.name
            )

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> OpenAIPolicy:
        """A policy from ``"openai:<base_url>/<model>"``, where ``<base_url>`` ends in ``/v1``.

        The rule: drop the ``openai:`` prefix and split at the *first* ``/v1/``; what comes before it,
        plus ``/v1``, is the base URL, and everything after it is the model, slashes included (a local
        folder keeps its leading ``/``). So ``openai:http://localhost:8000/v1/Qwen/Qwen2.5-0.5B`` is model
        ``Qwen/Qwen2.5-0.5B`` and ``openai:http://localhost:8000/v1//srv/models/m`` is ``/srv/models/m``.
        ``kwargs`` are :class:`OpenAIPolicy`'s keyword arguments.

        Raises:
            UserError: the spec does not have that form.
        """
        expected = "expected 'openai:<http(s)://host:port>/v1/<model>', e.g. 'openai:http://localhost:8000/v1/Qwen/Qwen2.5-0.5B'"
        if not spec.startswith(SPEC_PREFIX):
            raise UserError(f"policy spec {spec!r} does not start with {SPEC_PREFIX!r}; {expected}")
        url = spec[len(SPEC_PREFIX) :]
        root, found, model = url.partition("/v1/")
        model = model.rstrip("/")
        if not found or not model.strip("/") or not url.startswith(("http://", "https://")):
            raise UserError(f"malformed policy spec {spec!r}; {expected}")
        return cls(root + "/v1", model, **kwargs)

    def __repr__(self) -> str:  # no api_key: reprs end up in logs
        return (
            f"OpenAIPolicy(base_url={self.base_url!r}, model={self.model!r}, endpoint={self.endpoint!r}, "
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
        """For each prompt, ``n`` samples in order (see the class docstring for what they hold)."""
        stop = check_sample_args(prompts, n, max_new_tokens, temperature, stop, seed)
        built = [self.protocol.build(prompt, stop) for prompt in prompts]
        if self.chat:
            built = [self._chat_prompt(prompt, b) for prompt, b in zip(prompts, built, strict=True)]
        if not built:
            return []
        if self.chat or self.batch_prompts is False:
            results = [self._sample_one(b, n, max_new_tokens, temperature, seed) for b in built]
        else:
            results = self._sample_list(built, n, max_new_tokens, temperature, seed)
        return [
            [
                Sample(
                    self.protocol.finish(b, s.text, s.finish_reason == "stop"),
                    s.logprob,
                    s.num_tokens,
                    s.finish_reason,
                )
                for s in row
            ]
            for b, row in zip(built, results, strict=True)
        ]

    def _chat_prompt(self, prompt: str, built: ProtocolPrompt) -> ProtocolPrompt:
        if not built.is_chat:  # not an env prompt (a TCG prompt, say): the text as one user message
            return ProtocolPrompt(messages=({"role": "user", "content": built.text or ""},), stop=built.stop)
        if self.continue_final_message:
            return built
        from codegym.steps import parse_state

        # A server that opens a new assistant turn: ask for the next step in a user message.
        header = prompt.rstrip().rsplit("\n\n", 1)[0]
        problem, steps = parse_state(header)
        return self.protocol.build_steps(problem, steps, stop=built.stop, continued=False)

    def _body(self, built: ProtocolPrompt, max_new_tokens: int, temperature: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": min(max_new_tokens, built.max_new_tokens or max_new_tokens),
            "temperature": temperature,
        }
        if self.chat:
            body["messages"] = list(built.messages)
            body["logprobs"] = True
            if self.continue_final_message and built.messages[-1]["role"] == "assistant":
                body.update(continue_final_message=True, add_generation_prompt=False)
        else:
            body["prompt"] = built.render(self.tokenizer.apply_chat_template if self.tokenizer else None)
            body["logprobs"] = 1
        if built.stop:
            body["stop"] = list(built.stop)
        return body

    def _sample_list(
        self, built: list[ProtocolPrompt], n: int, max_new_tokens: int, temperature: float, seed: int | None
    ) -> list[list[Sample]]:
        """All prompts of equal stops and caps in one request each group; falls back to one per prompt."""
        groups: dict[tuple[tuple[str, ...], int | None], list[int]] = {}
        for index, b in enumerate(built):
            groups.setdefault((b.stop, b.max_new_tokens), []).append(index)
        results: dict[int, list[Sample]] = {}
        for indices in groups.values():
            body = self._body(built[indices[0]], max_new_tokens, temperature)
            texts = [self._body(built[i], max_new_tokens, temperature)["prompt"] for i in indices]
            # A single prompt goes as a string, which every server takes: a refusal is then about it.
            body["prompt"] = texts if len(texts) > 1 else texts[0]
            body["n"] = n
            if seed is not None:
                body["seed"] = seed
            try:
                answer = self._post(body)
            except PolicyServerError as error:
                if self.batch_prompts is None and len(indices) > 1 and error.status in (400, 422):
                    self.batch_prompts = False  # this server takes one prompt per request
                    return [self._sample_one(b, n, max_new_tokens, temperature, seed) for b in built]
                raise
            choices = answer.get("choices") if isinstance(answer, dict) else None
            count = len(choices) if isinstance(choices, list) else -1
            if self.batch_prompts is None and count == 1 and len(indices) > 1:
                self.batch_prompts = False  # the server read only one prompt of the list
                return [self._sample_one(b, n, max_new_tokens, temperature, seed) for b in built]
            if n > 1 and count == len(indices):  # one choice per prompt: the server ignores n
                self.supports_n = False
                if len(indices) > 1:
                    return [self._sample_one(b, n, max_new_tokens, temperature, seed) for b in built]
                first = self._parse(answer, 1, 1, built[indices[0]].stop)[0]
                more = self._more_samples(
                    built[indices[0]], n - 1, max_new_tokens, temperature, seed, start=1
                )
                results[indices[0]] = first + more
                continue
            if n > 1:
                self.supports_n = True
            if len(indices) > 1:
                self.batch_prompts = True
            for i, row in zip(
                indices, self._parse(answer, len(indices), n, built[indices[0]].stop), strict=True
            ):
                results[i] = row
        return [results[i] for i in range(len(built))]

    def _sample_one(
        self, built: ProtocolPrompt, n: int, max_new_tokens: int, temperature: float, seed: int | None
    ) -> list[Sample]:
        """``n`` samples of one prompt: one request with ``n``, or ``n`` seeded requests if ``n`` is ignored."""
        body = self._body(built, max_new_tokens, temperature)
        if self.supports_n is not False or n == 1:
            answer = self._post({**body, "n": n, **({"seed": seed} if seed is not None else {})})
            choices = answer.get("choices") if isinstance(answer, dict) else None
            if n == 1 or not (isinstance(choices, list) and len(choices) == 1):
                if n > 1:
                    self.supports_n = True
                return self._parse(answer, 1, n, built.stop)[0]
            self.supports_n = False  # one choice for n > 1: the server ignores n
            first = self._parse(answer, 1, 1, built.stop)[0]
        else:
            first = []
        return first + self._more_samples(
            built, n - len(first), max_new_tokens, temperature, seed, start=len(first)
        )

    def _more_samples(
        self,
        built: ProtocolPrompt,
        count: int,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
        *,
        start: int,
    ) -> list[Sample]:
        """``count`` more samples of one prompt, one request each, sample ``j`` seeded ``seed + j`` (a
        greedy request repeats itself; unseeded ones differ as the server's sampling does)."""
        body = self._body(built, max_new_tokens, temperature)
        samples: list[Sample] = []
        for j in range(start, start + count):
            extra = {"seed": seed + j} if seed is not None else {}
            samples += self._parse(self._post({**body, "n": 1, **extra}), 1, 1, built.stop)[0]
        return samples

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
                "batch_prompts=False",
                status=None,
                url=self.url,
            )
        usage_tokens = (answer.get("usage") or {}).get("completion_tokens")
        tokens_per_choice = round(usage_tokens / expected) if isinstance(usage_tokens, int) else None
        by_index = {choice["index"]: choice for choice in choices}
        samples = [self._sample(by_index[k], stop, tokens_per_choice) for k in range(expected)]
        return [samples[i * n : (i + 1) * n] for i in range(num_prompts)]

    def _sample(self, choice: dict[str, Any], stop: Sequence[str], tokens_per_choice: int | None) -> Sample:
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        if not isinstance(text, str):
            raise PolicyServerError(f"choice without text: {str(choice)[:200]}", status=None, url=self.url)
        kept, was_cut = cut_at_stop(text, stop)
        finish_reason = "length" if choice.get("finish_reason") == "length" and not was_cut else "stop"
        logprobs = _choice_logprobs(choice.get("logprobs"))
        if logprobs is None:
            if tokens_per_choice is None:
                raise PolicyServerError(
                    "the answer has neither token log-probs nor usage.completion_tokens, "
                    "so its token counts are unknown",
                    status=None,
                    url=self.url,
                )
            if was_cut and text:  # the share of the tokens that the kept text needed, roughly
                tokens_per_choice = max(1, round(tokens_per_choice * len(kept) / len(text))) if kept else 0
            return Sample(kept, None, tokens_per_choice, finish_reason)
        token_logprobs, starts = logprobs
        if was_cut:
            if starts is None:  # the cut cannot be placed among the tokens
                return Sample(kept, None, len(token_logprobs), finish_reason)
            token_logprobs = [
                lp for lp, start in zip(token_logprobs, starts, strict=False) if start < len(kept)
            ]
        logprob = math.fsum(lp for lp in token_logprobs if lp is not None)
        return Sample(kept, logprob, len(token_logprobs), finish_reason)


def _choice_logprobs(logprobs: Any) -> tuple[list[float | None], list[int] | None] | None:
    """A choice's token log-probs and where each token starts in its text, from the completions format
    (``token_logprobs``, ``text_offset``/``tokens``) or the chat format (``content: [{token, logprob}]``);
    None when the choice has none."""
    if not isinstance(logprobs, dict):
        return None
    token_logprobs = logprobs.get("token_logprobs")
    if isinstance(token_logprobs, list):
        return token_logprobs, _token_starts(logprobs, None)
    content = logprobs.get("content")
    if isinstance(content, list) and content:
        tokens = [str(entry.get("token", "")) for entry in content if isinstance(entry, dict)]
        values = [entry.get("logprob") for entry in content if isinstance(entry, dict)]
        return values, _starts_from_tokens(tokens)
    return None


def _starts_from_tokens(tokens: list[str]) -> list[int]:
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token)
    return starts


def _load_tokenizer(source: Any, protocol: str) -> Any:
    """A tokenizer with a chat template, from an object or a local folder or cached hub id (offline)."""
    if not isinstance(source, str):
        tokenizer = source
    else:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except OSError as exc:
            raise UserError(
                f"protocol {protocol!r} over the completions endpoint renders the chat template here and "
                f"needs the model's tokenizer, which could not be loaded from {source!r}: pass tokenizer= "
                "(a local folder), or use endpoint='chat/completions'"
            ) from exc
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"protocol {protocol!r} needs a chat template and the tokenizer has none")
    return tokenizer


def _token_starts(logprobs: dict[str, Any], text: str | None) -> list[int] | None:
    """Where each generated token starts in ``text``, or None when the answer does not say."""
    offsets = logprobs.get("text_offset")
    if offsets:
        # OpenAI counts offsets from the prompt's start, vLLM from the completion's: the first token starts at 0.
        return [offset - offsets[0] for offset in offsets]
    tokens = logprobs.get("tokens")
    if tokens and (text is None or "".join(tokens) == text):
        return _starts_from_tokens(tokens)
    return None


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's error message: ``error.message`` of a JSON body, else the body, truncated."""
    try:
        body = exc.read().decode(errors="replace")
    except OSError:
        body = ""
    try:  # OpenAI, llama.cpp: {"error": {"message": ...}}; vLLM: {"message": ...}; FastAPI: {"detail": ...}
        parsed = json.loads(body)
        error = parsed.get("error")
        message = (
            error.get("message")
            if isinstance(error, dict)
            else error or parsed.get("message") or parsed.get("detail")
        )
        message = str(message) if message else body
    except (ValueError, AttributeError):
        message = body
    message = message or exc.reason or ""
    return message if len(message) <= _MESSAGE_LIMIT else message[:_MESSAGE_LIMIT] + "..."
