"""OpenAIPolicy against a real local HTTP server that speaks the completions API."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codegym.models.openai_policy import OpenAIPolicy, PolicyServerError
from codegym.models.policy import DEFAULT_STOP, Policy, Sample
from codegym.steps import STEP_STOP


def fake_text(prompt: str, seed: int | None, sample_index: int) -> str:
    """What the fake model writes: depends on the prompt, seed and sample index, and runs into a stop."""
    return f"Outline: answer {prompt[-3:]} seed {seed} sample {sample_index}.{STEP_STOP} 9\nmore words"


def fake_tokens(text: str) -> list[str]:
    """Whitespace-led words: they join back to ``text`` exactly."""
    return re.findall(r"\s*\S+|\s+$", text)


def fake_logprob(position: int) -> float:
    return -0.5 - 0.25 * position


class FakeCompletionsServer:
    """A completions server in a thread, with knobs for how it behaves.

    Attributes:
        requests: the JSON bodies received, in order (recorded before any scripted failure).
        headers: the headers of each request.
        script: actions for the next requests, one each: ``("status", code, body)`` or ``("sleep", s)``.
        honour_stop: cut texts at ``stop`` server-side, as vLLM does.
        logprobs_mode: ``"offsets"`` (tokens, token_logprobs, text_offset from the prompt's start, like
            OpenAI), ``"tokens"`` (no text_offset), ``"none"`` (no logprobs, only usage) or
            ``"first_none"`` (the first token's log-prob is null).
        reverse_choices: list the choices in reverse order (clients must place them by ``index``).
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.script: deque[tuple] = deque()
        self.honour_stop = False
        self.logprobs_mode = "offsets"
        self.reverse_choices = False
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    action = fake.script.popleft() if fake.script else None
                if self.path != "/v1/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if action and action[0] == "sleep":
                    time.sleep(action[1])
                elif action:
                    return self._send(action[1], action[2])
                self._send(200, fake.answer(body))

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # A short poll interval: shutdown() waits up to one interval, and every test starts a server.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def answer(self, body: dict) -> dict:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = []
        for prompt_index, prompt in enumerate(prompts):
            for sample_index in range(body.get("n", 1)):
                choices.append(self.choice(body, prompt, sample_index, prompt_index * body.get("n", 1)))
        total_tokens = sum(choice.pop("_num_tokens") for choice in choices)
        if self.reverse_choices:
            choices.reverse()
        return {"object": "text_completion", "choices": choices, "usage": {"completion_tokens": total_tokens}}

    def choice(self, body: dict, prompt: str, sample_index: int, first_index: int) -> dict:
        tokens = fake_tokens(fake_text(prompt, body.get("seed"), sample_index))[: body["max_tokens"]]
        finish_reason = "length" if len(tokens) == body["max_tokens"] else "stop"
        text = "".join(tokens)
        if self.honour_stop:
            cuts = [text.find(s) for s in body.get("stop", []) if s in text]
            if cuts:
                text, finish_reason = text[: min(cuts)], "stop"
                tokens = fake_tokens(text)
        offsets = [len(prompt) + len("".join(tokens[:i])) for i in range(len(tokens))]
        logprobs = {
            "tokens": tokens,
            "token_logprobs": [fake_logprob(i) for i in range(len(tokens))],
            "text_offset": offsets,
        }
        if self.logprobs_mode == "tokens":
            del logprobs["text_offset"]
        if self.logprobs_mode == "first_none":
            logprobs["token_logprobs"][0] = None
        return {
            "index": first_index + sample_index,
            "text": text,
            "finish_reason": finish_reason,
            "logprobs": None if self.logprobs_mode == "none" else logprobs,
            "_num_tokens": len(tokens),
        }

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    fake = FakeCompletionsServer()
    yield fake
    fake.close()


def make_policy(server: FakeCompletionsServer, **kwargs) -> OpenAIPolicy:
    options = {"api_key": "", "timeout_s": 5.0, "max_retries": 3, "backoff_s": 0.01} | kwargs
    return OpenAIPolicy(server.base_url, "Qwen/Qwen2.5-0.5B", **options)


def expected_sample(prompt: str, seed: int | None, sample_index: int) -> Sample:
    """What the client should make of the fake's full answer, cut at the default stop."""
    text = fake_text(prompt, seed, sample_index)
    kept = text[: text.index(STEP_STOP)]
    kept_tokens = [t for t in fake_tokens(text) if text.index(t) < len(kept)]
    count = len(kept_tokens)
    return Sample(kept, sum(fake_logprob(i) for i in range(count)), count, "stop")


# --- requests and answers ---------------------------------------------------------------------------


def test_is_a_policy(server):
    assert isinstance(make_policy(server), Policy)


def test_request_body_as_received(server):
    policy = make_policy(server, api_key="sk-test")
    policy.sample(["p1", "p2"], n=3, stop=["\n###", "END"], max_new_tokens=64, temperature=0.7, seed=11)
    assert len(server.requests) == 1  # prompts travel in one batch
    assert server.requests[0] == {
        "model": "Qwen/Qwen2.5-0.5B",
        "prompt": ["p1", "p2"],
        "n": 3,
        "max_tokens": 64,
        "temperature": 0.7,
        "logprobs": 1,
        "stop": ["\n###", "END"],
        "seed": 11,
    }
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_defaults_send_step_stop_and_no_seed(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    policy = OpenAIPolicy(server.base_url, "m")
    policy.sample(["p"])
    body = server.requests[0]
    assert body["stop"] == list(DEFAULT_STOP)
    assert body["n"] == 1 and body["max_tokens"] == 256 and body["temperature"] == 1.0
    assert "seed" not in body
    assert server.headers[0]["Authorization"] == "Bearer sk-env"


@pytest.mark.parametrize("reverse_choices", [False, True])
def test_shape_order_logprobs_and_client_side_cut(server, reverse_choices):
    server.reverse_choices = reverse_choices
    prompts = ["first aaa", "second bbb", "third ccc"]
    result = make_policy(server).sample(prompts, n=2, seed=5)
    assert [[s.text for s in row] for row in result] == [
        [expected_sample(p, 5, j).text for j in range(2)] for p in prompts
    ]
    for prompt, row in zip(prompts, result, strict=True):
        for j, got in enumerate(row):
            want = expected_sample(prompt, 5, j)
            assert got.text == want.text and STEP_STOP not in got.text
            assert got.num_tokens == want.num_tokens == 7
            assert got.logprob == pytest.approx(want.logprob)
            assert got.finish_reason == "stop"


@pytest.mark.parametrize("mode", ["offsets", "tokens"])
def test_cut_counts_only_kept_tokens_with_and_without_offsets(server, mode):
    server.logprobs_mode = mode
    [[got]] = make_policy(server).sample(["abc"], seed=1)
    assert got == expected_sample("abc", 1, 0)
    assert got.logprob == pytest.approx(sum(fake_logprob(i) for i in range(7)))


def test_server_side_stop_is_taken_as_is(server):
    server.honour_stop = True
    [[got]] = make_policy(server).sample(["abc"], seed=1)
    assert got == expected_sample("abc", 1, 0)
    assert "more words" not in got.text


def test_null_logprobs_are_skipped(server):
    server.logprobs_mode = "first_none"
    [[got]] = make_policy(server).sample(["abc"], seed=1)
    assert got.num_tokens == 7
    assert got.logprob == pytest.approx(sum(fake_logprob(i) for i in range(1, 7)))


def test_no_logprobs_gives_none_and_usage_count(server):
    server.logprobs_mode = "none"
    server.honour_stop = True
    [[a, b]] = make_policy(server).sample(["abc"], n=2, seed=1)
    assert a.logprob is None and b.logprob is None  # unknown, not a number
    assert a.num_tokens == b.num_tokens == 7  # usage.completion_tokens (14) shared by 2 choices
    assert a.text == expected_sample("abc", 1, 0).text


def test_length_finish_reason(server):
    [[got]] = make_policy(server).sample(["abc"], max_new_tokens=3, stop=[])
    assert got.finish_reason == "length"
    assert got.num_tokens == 3
    assert got.text == "".join(fake_tokens(fake_text("abc", None, 0))[:3])
    assert "stop" not in server.requests[0]


def test_one_request_per_prompt_when_not_batching(server):
    result = make_policy(server, batch_prompts=False).sample(["one", "two"], n=2, seed=3)
    assert [body["prompt"] for body in server.requests] == ["one", "two"]
    assert result[1][1] == expected_sample("two", 3, 1)


def test_wrong_number_of_choices_is_an_error(server):
    server.script.append(("status", 200, {"choices": [{"index": 0, "text": "x", "finish_reason": "stop"}]}))
    with pytest.raises(PolicyServerError, match=r"expected 4 choices.*batch_prompts=False"):
        make_policy(server, batch_prompts=True).sample(["a", "b"], n=2)


def test_argument_checks(server):
    policy = make_policy(server)
    with pytest.raises(TypeError, match="list of strings"):
        policy.sample("one prompt")
    with pytest.raises(ValueError, match=r"n \(samples per prompt\)"):
        policy.sample(["p"], n=0)
    assert policy.sample([]) == []
    assert server.requests == []


# --- failures and retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_retries_then_succeeds(server, status):
    server.script.extend([("status", status, {"error": {"message": "busy"}})] * 2)
    [[got]] = make_policy(server).sample(["abc"], seed=1)
    assert len(server.requests) == 3
    assert got == expected_sample("abc", 1, 0)


def test_gives_up_after_max_retries(server):
    server.script.extend([("status", 500, {"message": "engine dead"})] * 5)
    with pytest.raises(PolicyServerError, match=r"engine dead.*3 attempts") as info:
        make_policy(server, max_retries=2).sample(["abc"])
    assert info.value.status == 500
    assert len(server.requests) == 3


def test_client_error_raises_at_once(server):
    message = "This model's maximum context length is 2048 tokens. " + "x" * 2000
    server.script.append(("status", 400, {"object": "error", "message": message}))
    with pytest.raises(PolicyServerError, match=r"HTTP 400 .*maximum context length") as info:
        make_policy(server).sample(["abc"])
    assert info.value.status == 400
    assert info.value.url == server.base_url + "/completions"
    assert len(info.value.message) < 600  # truncated
    assert len(server.requests) == 1


def test_timeout_raises_after_all_attempts(server):
    server.script.extend([("sleep", 1.0)] * 3)
    started = time.monotonic()
    with pytest.raises(PolicyServerError, match=r"timed out.*2 attempts") as info:
        make_policy(server, timeout_s=0.2, max_retries=1).sample(["abc"])
    assert time.monotonic() - started < 1.5
    assert info.value.status is None
    assert len(server.requests) == 2


def test_connection_refused_is_retried_then_raised():
    with socket.socket() as probe:  # a port that nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = OpenAIPolicy(f"http://127.0.0.1:{port}/v1", "m", max_retries=2, backoff_s=0.01)
    with pytest.raises(PolicyServerError, match="3 attempts") as info:
        policy.sample(["abc"])
    assert info.value.status is None


# --- specs and construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "base_url", "model"),
    [
        ("openai:http://localhost:8000/v1/Qwen2.5-0.5B", "http://localhost:8000/v1", "Qwen2.5-0.5B"),
        (
            "openai:http://localhost:8000/v1/Qwen/Qwen2.5-0.5B",
            "http://localhost:8000/v1",
            "Qwen/Qwen2.5-0.5B",
        ),
        ("openai:https://host/proxy/v1/org/m-v1/x/", "https://host/proxy/v1", "org/m-v1/x"),
        ("openai:http://h:11434/v1/qwen2.5:0.5b", "http://h:11434/v1", "qwen2.5:0.5b"),
    ],
)
def test_from_spec(spec, base_url, model):
    policy = OpenAIPolicy.from_spec(spec, timeout_s=7.0)
    assert (policy.base_url, policy.model, policy.timeout_s) == (base_url, model, 7.0)
    assert policy.url == base_url + "/completions"


@pytest.mark.parametrize(
    "spec",
    [
        "http://localhost:8000/v1/m",  # no prefix
        "openai:http://localhost:8000/m",  # no /v1/
        "openai:http://localhost:8000/v1/",  # no model
        "openai:localhost:8000/v1/m",  # no scheme
    ],
)
def test_malformed_spec(spec):
    with pytest.raises(ValueError, match=re.escape("openai:<http(s)://host:port>/v1/<model>")):
        OpenAIPolicy.from_spec(spec)


def test_from_spec_talks_to_the_server(server):
    policy = OpenAIPolicy.from_spec(f"openai:{server.base_url}/Qwen/Qwen2.5-0.5B", backoff_s=0.01)
    [[got]] = policy.sample(["abc"], seed=2)
    assert server.requests[0]["model"] == "Qwen/Qwen2.5-0.5B"
    assert got == expected_sample("abc", 2, 0)


def test_constructor_checks_and_repr_hides_key():
    with pytest.raises(ValueError, match="chat endpoint"):
        OpenAIPolicy("http://h/v1", "m", endpoint="chat/completions", protocol="native")
    with pytest.raises(ValueError, match="base_url must start with http"):
        OpenAIPolicy("localhost:8000/v1", "m")
    assert "sk-secret" not in repr(OpenAIPolicy("http://h/v1/", "m", api_key="sk-secret"))


# --- servers that refuse lists or ignore n (transformers serve does both) ---------------------------


def test_a_refused_list_falls_back_to_one_prompt_per_request_for_good(server):
    server.script.append(("status", 400, {"detail": "prompt must be a string."}))
    policy = make_policy(server)
    result = policy.sample(["one", "two"], seed=3)
    assert policy.batch_prompts is False
    assert [body["prompt"] for body in server.requests] == [["one", "two"], "one", "two"]
    assert result == [[expected_sample("one", 3, 0)], [expected_sample("two", 3, 0)]]
    policy.sample(["three", "four"], seed=3)
    assert [body["prompt"] for body in server.requests[3:]] == ["three", "four"]  # no list tried again


def test_a_single_prompt_goes_as_a_string_and_its_errors_show_the_servers_detail(server):
    server.script.append(("status", 422, {"detail": "Unexpected fields in the request: {'x'}"}))
    with pytest.raises(PolicyServerError, match=r"HTTP 422 .*Unexpected fields"):
        make_policy(server).sample(["only"])
    assert server.requests[0]["prompt"] == "only"


def test_an_ignored_n_is_emulated_with_seeded_requests(server):
    one_choice = {"choices": [{"index": 0, "text": "a\n### Step", "finish_reason": "stop"}]}
    server.script.append(("status", 200, {**one_choice, "usage": {"completion_tokens": 2}}))
    policy = make_policy(server)
    [samples] = policy.sample(["p"], n=3, seed=7)
    assert policy.supports_n is False and len(samples) == 3
    assert [body.get("seed") for body in server.requests] == [7, 8, 9]
    assert samples[0].text == "a" and samples[0].logprob is None  # that answer had no log-probs
    assert [s.text for s in samples[1:]] == [expected_sample("p", j, 0).text for j in (8, 9)]
    assert all(s.logprob is not None and s.num_tokens > 0 for s in samples[1:])


def test_a_local_path_keeps_its_leading_slash():
    policy = OpenAIPolicy.from_spec("openai:http://127.0.0.1:8000/v1//srv/models/m/")
    assert (policy.base_url, policy.model) == ("http://127.0.0.1:8000/v1", "/srv/models/m")


def test_a_chat_protocol_on_completions_needs_a_tokenizer():
    with pytest.raises(ValueError, match=r"needs the model's tokenizer.*tokenizer="):
        OpenAIPolicy("http://h/v1", "/no/such/folder", protocol="think")
