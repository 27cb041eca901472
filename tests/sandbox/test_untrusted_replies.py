"""The host reads every worker reply as untrusted input: whatever a worker sends, ``run`` returns a
report whose verdicts are never a pass it did not earn, and never raises for the program's doing.

A real worker cannot be made to send these replies, so a scripted channel plays the worker here; the
code under test is the real host side (``Sandbox._exchange`` and ``judge``).
"""

from __future__ import annotations

import json
import logging

import pytest

from codegym.sandbox import AssertTest, CallTest, StdioTest, TestStatus
from codegym.sandbox.base import Sandbox, SandboxError, WorkerChannel, WorkerGone

TESTS = [CallTest("f", (1,), expected=2), AssertTest("assert f(1) == 2"), StdioTest("", "2")]
GOOD = {
    "results": [
        {"status": "returned", "value": 2},
        {"status": "passed"},
        {"status": "exited", "exit_code": 0, "stdout": "2"},
    ],
    "stdout": "",
    "stderr": "",
    "duration_s": 0.1,
}


class ScriptedChannel(WorkerChannel):
    """Answers each job with the next scripted reply; ``{id}`` in a reply becomes the job's id."""

    def __init__(self, script: list):
        self.script = script
        self.hello = {"hello": 2, "applied": [], "warnings": []}
        self.pending = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        job_id = json.loads(data)["id"]
        reply = self.script.pop(0) if self.script else dict(GOOD)
        lines = reply if isinstance(reply, list) else [reply]
        self.pending = b"".join(
            (line if isinstance(line, bytes) else json.dumps({"id": job_id, **line}).encode()) + b"\n"
            for line in lines
        )

    def read_line(self, deadline: float) -> bytes:
        if not self.pending:
            raise WorkerGone("nothing to read")
        line, _, self.pending = self.pending.partition(b"\n")
        return line

    def has_pending(self) -> bool:
        return bool(self.pending)

    def close(self) -> None:
        self.closed = True


class ScriptedSandbox(Sandbox):
    name = "scripted"

    def __init__(self, script: list):
        self.script = script
        self.started = 0
        super().__init__(1)

    def _start_worker(self, slot: int | None) -> WorkerChannel:
        self.started += 1
        return ScriptedChannel(self.script)


BAD_REPLIES = {
    "not_json": b"{this is not json",
    "not_an_object": b"[1, 2, 3]",
    "deeply_nested": b"[" * 100_000 + b"]" * 100_000,
    "foreign_job_id": b'{"id": 123456, "results": []}',
    "too_few_results": {"results": [{"status": "passed"}], "stdout": "", "stderr": "", "duration_s": 0},
    "too_many_results": {**GOOD, "results": GOOD["results"] * 2},
    "unknown_status": {**GOOD, "results": [{"status": "pwned"}] * 3},
    "result_not_an_object": {**GOOD, "results": ["passed", "passed", "passed"]},
    "no_output": {"results": GOOD["results"]},
    "extra_reply_after_a_good_one": [GOOD, GOOD],
    "runner_failure": {"fatal": "IndexError: list index out of range"},
}
MALFORMED_RESULTS = {
    "pass_claimed_for_a_call_test": [{"status": "passed"}, {"status": "failed"}, {"status": "failed"}],
    "pass_claimed_for_a_stdio_test": [{"status": "error"}, {"status": "error"}, {"status": "passed"}],
    "returned_value_malformed": [
        {"status": "returned", "value": {"zz": 1}},
        {"status": "error"},
        {"status": "error"},
    ],
    "returned_value_without_value": [{"status": "returned"}, {"status": "error"}, {"status": "error"}],
    "exit_code_not_an_int": [
        {"status": "error"},
        {"status": "error"},
        {"status": "exited", "exit_code": "0"},
    ],
    "duration_not_a_number": [
        {"status": "error"},
        {"status": "passed", "duration_s": "x"},
        {"status": "error"},
    ],
}


@pytest.mark.parametrize("name", sorted(BAD_REPLIES))
def test_a_malformed_reply_ends_the_job_with_errors_and_a_fresh_worker(name, caplog):
    # The fault repeats on the second try too: every test is an error, nothing raises.
    box = ScriptedSandbox([BAD_REPLIES[name], BAD_REPLIES[name]])
    with caplog.at_level(logging.WARNING, logger="codegym.sandbox"):
        report = box.run("def f(x):\n    return x + 1\n", TESTS)
    assert [t.status for t in report.tests] == [TestStatus.ERROR] * 3, report.tests
    assert {t.error_type for t in report.tests} == {"SandboxFault"}
    assert box.started == 3  # the first worker and both replacements
    assert "please report it" in caplog.text
    # The next job, answered properly, is judged normally.
    assert [t.status for t in box.run("def f(x):\n    return x + 1\n", TESTS).tests] == [
        TestStatus.PASSED
    ] * 3
    box.close()


def test_a_passing_fault_is_retried_on_a_fresh_worker():
    box = ScriptedSandbox([BAD_REPLIES["not_json"]])
    report = box.run("def f(x):\n    return x + 1\n", TESTS)
    assert [t.status for t in report.tests] == [TestStatus.PASSED] * 3
    assert box.started == 2
    box.close()


@pytest.mark.parametrize("name", sorted(MALFORMED_RESULTS))
def test_a_malformed_result_is_an_error_never_a_pass(name):
    box = ScriptedSandbox([{**GOOD, "results": MALFORMED_RESULTS[name]}])
    report = box.run("def f(x):\n    return x + 1\n", TESTS)
    assert TestStatus.PASSED not in [t.status for t in report.tests], report.tests
    assert "ProtocolError" in [t.error_type for t in report.tests]
    box.close()


def test_a_worker_that_cannot_confine_programs_fails_to_start():
    # A worker runs a self-check job before its hello; a failure there is the sandbox's, said at start.
    channel = ScriptedChannel([])
    channel.pending = (
        json.dumps({"hello": 3, "fatal": "RuntimeError: the self-check job failed"}).encode() + b"\n"
    )
    with pytest.raises(SandboxError, match="cannot confine programs here: RuntimeError: the self-check"):
        channel.handshake(deadline=0.0)


def test_a_setup_failure_after_the_start_is_that_job_s_error_and_the_caller_goes_on():
    # Once a worker has started, no reply (a taken-over judge could forge one) may stop a whole batch.
    fatal = {"fatal": "sandbox process setup failed: setresuid: EPERM", "setup": True}
    box = ScriptedSandbox([fatal, fatal])
    report, after = box.run_batch([("def f(x):\n    return x + 1\n", TESTS)] * 2)
    assert [t.status for t in report.tests] == [TestStatus.ERROR] * 3
    assert report.tests[0].error_type == "SandboxFault"
    assert after.all_passed
    box.close()
