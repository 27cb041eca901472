"""Programs that try to forge a verdict, on every backend: none of them may pass, crash the caller, or
leave the sandbox unable to judge the next program correctly.

Each program's function is wrong on purpose (it returns -1), so the only way it could pass is a forgery.
Each case runs three ways: AssertTest without an entry point (the code names the function), AssertTest
with one (HumanEval's style), and CallTest.
"""

from __future__ import annotations

import pytest

from codegym.sandbox import AssertTest, CallTest, TestStatus

S = TestStatus.PASSED
PASSED_FRAME = b'{"i":0,"r":{"status":"passed","duration_s":0},"load":null,"id":2,"ok":1}\n'

# Calls every harness callable it can reach through gc with forged messages (issue 12's first attack).
FORGE_CLOSURES = """
import gc, os, sys
def forge(indices):
    for obj in gc.get_objects():
        closure = getattr(obj, "__closure__", None) if callable(obj) else None
        if closure and getattr(obj, "__name__", "") in ("send", "report", "register"):
            for i in indices:
                for message in ({"i": i, "r": {"status": "passed", "duration_s": 0}}, {"id": i, "ok": 1}):
                    try:
                        obj(message)
                    except BaseException:
                        pass
"""
# Writes a forged pass on every descriptor it holds.
FORGE_DESCRIPTORS = f"""
import os
def forge_fds():
    for fd in range(3, 1024):
        try:
            os.write(fd, {PASSED_FRAME!r})
        except OSError:
            pass
"""

CASES = {
    # Issue 12's first attack: the result-sending closure found through gc, called with a pass, then exit.
    "gc_closure_then_exit": FORGE_CLOSURES + "def f(x):\n    forge([0, 1])\n    os._exit(0)\n",
    "gc_closure_then_return": FORGE_CLOSURES + "def f(x):\n    forge([0, 1, 2, 3])\n    return -1\n",
    "descriptors_then_return": FORGE_DESCRIPTORS + "def f(x):\n    forge_fds()\n    return -1\n",
    # Issue 12's third attack: an index past the job's tests must not make run() raise.
    "index_out_of_range": FORGE_CLOSURES + "def f(x):\n    forge([10 ** 9, -5])\n    return -1\n",
    # The same closures reached through the frames above the function.
    "frames_above": (
        "import sys\n"
        "def f(x):\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        for name, value in list(frame.f_locals.items()):\n"
        "            if callable(value) and name in ('send', 'report'):\n"
        "                try:\n"
        "                    value({'i': 0, 'r': {'status': 'passed'}})\n"
        "                    value({'id': frame.f_locals.get('request', {}).get('id', 0) + 1, 'ok': 1})\n"
        "                except BaseException:\n"
        "                    pass\n"
        "        frame = frame.f_back\n"
        "    return -1\n"
    ),
    # Threads that write forged frames after the function returned, while later tests run.
    "late_thread_writer": (
        "import os, threading, time\n"
        "def _late():\n"
        "    for _ in range(20):\n"
        "        time.sleep(0.005)\n"
        "        for fd in range(3, 64):\n"
        "            try:\n"
        f"                os.write(fd, {PASSED_FRAME!r})\n"
        "            except OSError:\n"
        "                pass\n"
        "def f(x):\n"
        "    threading.Thread(target=_late, daemon=True).start()\n"
        "    time.sleep(0.03)\n"
        "    return -1\n"
    ),
    # A signal handler that forges in the middle of the harness's own work.
    "signal_handler_forgery": (
        "import os, signal\n"
        "def _handler(*_):\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        f"            os.write(fd, {PASSED_FRAME!r})\n"
        "        except OSError:\n"
        "            pass\n"
        "signal.signal(signal.SIGALRM, _handler)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)\n"
        "def f(x):\n"
        "    return -1\n"
    ),
    # A trace function that rewrites what the harness encodes.
    "settrace_rewrites_results": (
        "import sys\n"
        "def _tracer(frame, event, arg):\n"
        "    if event == 'return' and frame.f_code.co_name in ('encode', 'encode_plain', 'error_result'):\n"
        "        frame.f_locals['status'] = 'passed'\n"
        "    return _tracer\n"
        "sys.settrace(_tracer)\n"
        "def f(x):\n"
        "    sys.settrace(_tracer)\n"
        "    return -1\n"
    ),
    # ctypes and /proc: write into the memory or the descriptors of every other process it can see.
    "proc_mem_and_fds_of_others": (
        "import os, ctypes\n"
        "def f(x):\n"
        "    me = os.getpid()\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if not pid.isdigit() or int(pid) == me:\n"
        "            continue\n"
        "        try:\n"
        "            with open(f'/proc/{pid}/mem', 'r+b', buffering=0) as mem:\n"
        "                mem.write(b'x')\n"
        "        except OSError:\n"
        "            pass\n"
        "        try:\n"
        "            for fd in os.listdir(f'/proc/{pid}/fd'):\n"
        "                try:\n"
        "                    out = os.open(f'/proc/{pid}/fd/{fd}', os.O_WRONLY)\n"
        f"                    os.write(out, {PASSED_FRAME!r})\n"
        "                except OSError:\n"
        "                    pass\n"
        "        except OSError:\n"
        "            pass\n"
        "        libc = ctypes.CDLL(None, use_errno=True)\n"
        "        libc.ptrace(16, int(pid), 0, 0)  # PTRACE_ATTACH\n"
        "    return -1\n"
    ),
    # Its own memory is its own: rewriting it through /proc/self/mem changes nothing outside.
    "proc_self_mem": (
        "import ctypes\n"
        "def f(x):\n"
        "    buffer = ctypes.create_string_buffer(b'passed')\n"
        "    with open('/proc/self/mem', 'r+b', buffering=0) as mem:\n"
        "        mem.seek(ctypes.addressof(buffer))\n"
        "        mem.write(b'PASSED')\n"
        "    return -1\n"
    ),
    # The judge is a sibling: stop it, or kill it (possible where both share a uid, as in a container).
    "signals_to_every_process": (
        "import os, signal\n"
        "def f(x):\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit() and int(pid) != os.getpid():\n"
        "            for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "                try:\n"
        "                    os.kill(int(pid), sig)\n"
        "                except OSError:\n"
        "                    pass\n"
        "    return -1\n"
    ),
    # SIGINT is the one signal Python handles by default: as a KeyboardInterrupt it could land in the
    # judge's or the worker's own code (both share the candidate's uid in a container).
    "sigint_to_every_process": (
        "import os, signal\n"
        "def f(x):\n"
        "    for pid in [1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "        if pid != os.getpid():\n"
        "            try:\n"
        "                os.kill(pid, signal.SIGINT)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return -1\n"
    ),
    # Closing the pipe to the judge half way.
    "closes_its_pipes": (
        "import os\n"
        "def f(x):\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.close(fd)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return -1\n"
    ),
    # A reply frame far larger than any the judge accepts, with no newline.
    "endless_frame": (
        "import os\n"
        "def f(x):\n"
        "    chunk = b'[' * (1 << 20)\n"
        "    for fd in range(3, 16):\n"
        "        try:\n"
        "            for _ in range(80):\n"
        "                os.write(fd, chunk)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return -1\n"
    ),
    # Frames aimed at the readers' one-frame-per-read fast path: two in one write, and a verdict after
    # a reply on the same line.
    "two_frames_in_one_write": FORGE_DESCRIPTORS.replace(repr(PASSED_FRAME), repr(PASSED_FRAME * 2))
    + "def f(x):\n    forge_fds()\n    return -1\n",
    "verdict_after_a_reply_on_one_line": FORGE_DESCRIPTORS.replace(
        repr(PASSED_FRAME), repr(b'{"id":2,"ok":-1} {"i":0,"r":{"status":"passed","duration_s":0}}\n')
    )
    + "def f(x):\n    forge_fds()\n    return -1\n",
    # Issue 12's second attack: an object whose __eq__ is always True, in a plain AssertTest too.
    "lying_eq": "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\ndef f(x):\n    return Liar()\n",
    "lying_eq_int_subclass": "class Sly(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\ndef f(x):\n    return Sly(-1)\n",
    "lying_eq_list_subclass": "class Sly(list):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Sly([-1])\n",
}


def _tests(kind: str):
    if kind == "assert_plain":
        return [AssertTest("assert f(1) == 2\nassert f(2) == 3")]
    if kind == "assert_entry_point":
        return [AssertTest("def check(candidate):\n    assert candidate(1) == 2\ncheck(f)", entry_point="f")]
    return [CallTest("f", (1,), expected=2), CallTest("f", (2,), expected=3)]


@pytest.mark.parametrize("kind", ["assert_plain", "assert_entry_point", "call"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_forgery_does_not_pass(sandbox, name, kind):
    reports = sandbox.run_batch([(CASES[name], _tests(kind))], timeout_s=2.0)
    assert [t.status for t in reports[0].tests if t.status is S] == [], (name, reports[0].tests)
    # The sandbox still judges honestly afterwards, on the same workers.
    honest = sandbox.run("def f(x):\n    return x + 1\n", _tests(kind))
    assert [t.status for t in honest.tests] == [S] * len(honest.tests), honest.tests


def test_candidate_output_never_runs_in_the_judge(sandbox):
    # HumanEval's decode_cyclic pattern: the test passes one candidate function's output to another. If
    # `decode` (= exec) ran in the judge, the candidate's text would run there and could forge a pass.
    program = (
        "def encode(s):\n"
        '    return "import os\\nfor fd in range(3, 64):\\n    try:\\n        os.write(fd, '
        'b\'{\\"i\\":0,\\"r\\":{\\"status\\":\\"passed\\"}}\\\\n\')\\n    except OSError:\\n        pass\\n'
        'raise SystemExit(0)"\n'
        "decode = exec\n"
    )
    report = sandbox.run(program, [AssertTest("assert decode(encode('abc')) == 'abc'")])
    # It runs in the candidate's process, whose forged frame reaches the judge as a reply out of turn.
    assert report.tests[0].status is TestStatus.ERROR, report.tests[0]
    assert report.tests[0].error_type == "ProtocolError", report.tests[0]


def test_a_module_under_another_name_is_not_imported_by_the_judge(sandbox):
    program = "import os as math\ndef f(x):\n    return x\n"
    report = sandbox.run(program, [AssertTest("assert math.floor(f(2.5)) == 2")])
    assert report.tests[0].status is TestStatus.ERROR, report.tests[0]
    honest = sandbox.run(
        "import math\ndef f(x):\n    return x\n", [AssertTest("assert math.floor(f(2.5)) == 2")]
    )
    assert honest.tests[0].status is S, honest.tests[0]


def test_a_program_cannot_switch_off_a_test_s_main_block(sandbox):
    # A test whose checks sit under `if __name__ == ...`: the program's own __name__ must not decide, or a
    # program that renames itself skips every check and passes.
    test = AssertTest("if __name__ == 'solution':\n    assert f(1) == 2\n")
    for program in (
        "__name__ = 'elsewhere'\ndef f(x):\n    return -1\n",
        "__builtins__ = {}\ndef f(x):\n    return -1\n",
    ):
        assert sandbox.run(program, [test]).tests[0].status is TestStatus.FAILED
    assert sandbox.run("__name__ = 'elsewhere'\ndef f(x):\n    return x + 1\n", [test]).passed == 1


def test_a_program_cannot_redefine_the_builtins_a_test_uses(sandbox):
    # HumanEval's float checks read `assert abs(candidate(x) - y) < 1e-6`: a program's own `abs` must not
    # be the one the test calls.
    program = "abs = lambda x: 0\nsorted = lambda x: 0\nlen = lambda x: 3\ndef f(x):\n    return -1.0\n"
    tests = [
        AssertTest("assert abs(f(1) - 2.0) < 1e-6"),
        AssertTest("assert sorted(f(1)) == sorted([3, 1])", entry_point="f"),
        AssertTest("assert len([f(1)]) == 3"),
    ]
    assert TestStatus.PASSED not in [t.status for t in sandbox.run(program, tests).tests]
    # A function named like a builtin is the program's when the test names it as its entry point.
    named_max = "def max(values):\n    return min(values)\n"
    assert sandbox.run(named_max, [AssertTest("assert max([3, 1]) == 1", entry_point="max")]).passed == 1


def test_arguments_written_back_carry_no_lying_objects(sandbox):
    # A list the test passes comes back with the candidate's changes: objects that are not plain data come
    # back as handles, which compare by identity, so filling the list with liars does not sort it.
    program = (
        "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def f(xs):\n    xs[:] = [Liar(), Liar()]\n"
    )
    test = AssertTest("xs = [3, 1]\nf(xs)\nassert xs == [1, 3]")
    assert sandbox.run(program, [test]).tests[0].status is TestStatus.FAILED
    assert sandbox.run("def f(xs):\n    xs.sort()\n", [test]).passed == 1


def test_program_names_that_match_a_test_s_attributes_change_nothing(sandbox):
    # The judge asks the candidate for every name a test's code objects read, attribute names included
    # (co_names). A program that defines top-level names like the attributes a test uses (append, real,
    # keys) and fills them with liars must not reach the judge's own lists, numbers or dicts.
    program = (
        "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "    def __call__(self, *args):\n        return Liar()\n"
        "append = real = keys = Liar()\n"
        "def f(x):\n    return -1\n"
    )
    tests = [
        AssertTest("out = []\nout.append(f(1))\nassert out == [2]"),
        AssertTest("assert f(1).real == 2", entry_point="f"),
        AssertTest("d = {f(1): 0}\nassert list(d.keys()) == [2]"),
    ]
    assert [t.status for t in sandbox.run(program, tests).tests] == [TestStatus.FAILED] * 3
    honest = "append = real = keys = None\ndef f(x):\n    return x + 1\n"
    assert sandbox.run(honest, tests).passed == 3


def test_a_flat_list_of_int_subclasses_does_not_travel_as_ints(sandbox):
    # Flat lists of scalars skip the encoder's walk; an int subclass with a lying __eq__ must still be kept
    # out (as a handle compared by identity), not copied as if it were an int.
    program = (
        "class Int(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def f(x):\n    return [Int(-1), Int(-1)]\n"
    )
    tests = [AssertTest("assert f(1) == [2, 3]"), CallTest("f", (1,), expected=[2, 3])]
    assert TestStatus.PASSED not in [t.status for t in sandbox.run(program, tests).tests]
