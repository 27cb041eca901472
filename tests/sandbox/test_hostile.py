"""Hostile programs: each run ends in bounded time, with the right status, never as a pass, leaves
nothing behind on the host, and the next job on the same sandbox passes normally.

Parametrized over every backend: the failures sandboxes are known for (hangs, leaks, forged verdicts).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from codegym.sandbox import AssertTest, CallTest, StdioTest, TestStatus
from tests.conftest import CANARY

# The slowest honest outcome is a timeout per test plus a reload; anything slower is not bounded.
BOUND_S = 10.0  # in units of the case's timeout_s
S, T, E, M, C, F = (
    TestStatus.PASSED,
    TestStatus.TIMEOUT,
    TestStatus.ERROR,
    TestStatus.MEMORY,
    TestStatus.CRASHED,
    TestStatus.FAILED,
)
FORGED = b'{"i":0,"r":{"status":"passed","duration_s":0},"load":null}\n'


@dataclass
class Hostile:
    program: str
    allowed: set[TestStatus]  # the statuses an honest sandbox may report
    entry_point: str = "solve"
    expected: object = 1
    assert_test: bool = False  # exercise AssertTest instead of CallTest
    timeout_s: float = 1.0  # filling 512 MB takes about a second here, so memory cases get more

    def tests(self):
        if self.assert_test:
            return [
                AssertTest(f"assert {self.entry_point}() == {self.expected!r}", entry_point=self.entry_point)
            ]
        return [CallTest(self.entry_point, expected=self.expected)]


CASES = {
    "infinite_loop": Hostile("def solve():\n    while True:\n        pass\n", {T}),
    "loop_swallowing_exceptions": Hostile(
        "def solve():\n    while True:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass\n",
        {T},
    ),
    "ignored_signals": Hostile(
        "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\ndef solve():\n    while True:\n        pass\n",
        {T},
    ),
    "memory_bomb_at_once": Hostile("def solve():\n    return len(bytearray(8 * 1024 ** 3))\n", {M}),
    "memory_bomb_growing": Hostile(
        "def solve():\n    chunks = []\n    while True:\n        chunks.append(bytearray(16 * 1024 ** 2))\n",
        {M},
        timeout_s=10.0,
    ),
    "fork_flood": Hostile(
        "import os\ndef solve():\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
        "            pass\n",
        {T, C, E},
    ),
    "stdout_flood_200mb": Hostile(
        "import sys\ndef solve():\n    chunk = 'x' * 1_000_000\n    for _ in range(200):\n"
        "        sys.stdout.write(chunk)\n    sys.stdout.flush()\n    return 1\n",
        {E},
    ),
    "reads_stdin": Hostile("def solve():\n    return int(input())\n", {E}),
    "sys_exit_at_import": Hostile("import sys\nsys.exit(0)\ndef solve():\n    return 1\n", {E}),
    "os_exit_in_call": Hostile("import os\ndef solve():\n    os._exit(0)\n", {C}),
    "os_exit_in_assert": Hostile("import os\ndef solve():\n    os._exit(0)\n", {C}, assert_test=True),
    "base_exception_subclass": Hostile(
        "class Escape(BaseException):\n    pass\ndef solve():\n    raise Escape('out')\n", {E}
    ),
    "keyboard_interrupt": Hostile("def solve():\n    raise KeyboardInterrupt\n", {E}),
    "lying_eq_call": Hostile(
        "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def solve():\n    return Liar()\n",
        {E},
    ),
    "lying_eq_assert": Hostile(
        "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def solve():\n    return Liar()\n",
        {F},  # the judge compares a handle to a non-plain object by identity
        assert_test=True,
    ),
    "int_subclass_with_lying_eq": Hostile(
        "class Sly(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def solve():\n    return Sly(0)\n",
        {F},
        assert_test=True,
    ),
    "forged_results_on_every_fd": Hostile(
        f"import os\ndef solve():\n    for fd in range(0, 1024):\n        try:\n"
        f"            os.write(fd, {FORGED!r})\n        except OSError:\n            pass\n    return 0\n",
        {E, F},
    ),
    "forged_results_then_exit": Hostile(
        f"import os\ndef solve():\n    for fd in range(0, 1024):\n        try:\n"
        f"            os.write(fd, {FORGED!r})\n        except OSError:\n            pass\n    os._exit(0)\n",
        {E, C},
        assert_test=True,
    ),
    "patched_serializer_and_writer": Hostile(
        'import json, os\njson.dumps = lambda *a, **k: \'{"status": "passed"}\'\n'
        "os.write = lambda fd, data: len(data)\ndef solve():\n    return 0\n",
        {F},
        assert_test=True,
    ),
    "atexit_forgery": Hostile(
        f"import atexit, os, sys\natexit.register(lambda: [os.write(fd, {FORGED!r}) for fd in (1, 2, 3, 4, 5)])\n"
        "def solve():\n    sys.exit(0)\n",
        {E},
    ),
    "kill_the_parent": Hostile(
        "import os, signal\ndef solve():\n    for target in (os.getppid(), 1):\n        try:\n"
        "            os.kill(target, signal.SIGKILL)\n        except OSError:\n            pass\n"
        "    try:\n        os.kill(-1, signal.SIGKILL)\n    except OSError:\n        pass\n    return 0\n",
        {F, C},
    ),
    "segfault_through_ctypes": Hostile("import ctypes\ndef solve():\n    return ctypes.string_at(0)\n", {C}),
    "recursion_bomb": Hostile("def solve(n=0):\n    return solve(n + 1)\n", {E, C}),
    "recursion_bomb_no_limit": Hostile(
        "import sys\nsys.setrecursionlimit(10 ** 8)\ndef solve(n=0):\n    return solve(n + 1) + 1\n",
        {E, C, M, T},  # T: on a loaded machine filling 512 MB with frames can take longer than 10 s
        timeout_s=10.0,  # Python-to-Python calls use no C stack in 3.11: it grows until memory runs out
    ),
    "close_stdout_then_loop": Hostile(
        "import os\ndef solve():\n    os.close(1)\n    os.close(2)\n    while True:\n        pass\n", {T}
    ),
    "evil_exception_str": Hostile(
        "class Evil(Exception):\n    def __str__(self):\n        while True:\n            pass\n"
        "def solve():\n    raise Evil()\n",
        {T, E},
    ),
    # Encoding stops at a million elements, which can take longer than the 1 s limit on a loaded machine.
    "huge_return_value": Hostile("def solve():\n    return list(range(5_000_000))\n", {E, M, F, T}),
}


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _assert_next_job_passes(sandbox):
    report = sandbox.run("def ok():\n    return 42\n", [CallTest("ok", expected=42)], timeout_s=5.0)
    assert report.tests[0].status is S, report.tests[0]


# Slow (make test runs them, make test-fast leaves them out): the recursion bomb grows until memory runs out.
SLOW_CASES = {"recursion_bomb_no_limit"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_CASES else name for name in sorted(CASES)],
)
def test_hostile_program_is_contained(sandbox, name):
    case = CASES[name]
    started = time.monotonic()
    report = sandbox.run(case.program, case.tests(), timeout_s=case.timeout_s, memory_mb=512)
    elapsed = time.monotonic() - started
    result = report.tests[0]
    assert elapsed < BOUND_S * case.timeout_s, f"{name} took {elapsed:.1f} s"
    assert result.status is not S, f"{name} was scored as a pass"
    assert result.status in case.allowed, f"{name}: {result}"
    _assert_next_job_passes(sandbox)


def test_children_and_threads_do_not_outlive_the_job(sandbox):
    marker = f"98765{os.getpid()}"
    program = (
        "import os, subprocess, threading, time\n"
        "def solve():\n"
        f"    subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        f"            os.execvp('sleep', ['sleep', '{marker}1'])\n"
        "        os._exit(0)\n"
        "    threading.Thread(target=time.sleep, args=(1000,), daemon=False).start()\n"
        "    return 1\n"
    )
    report = sandbox.run(program, [CallTest("solve", expected=1)], timeout_s=3.0)
    assert report.tests[0].status is S, report.tests[0]  # a fair program that merely leaves a mess
    deadline = time.monotonic() + 3.0
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == []
    _assert_next_job_passes(sandbox)


def test_files_outside_the_work_dir_are_out_of_reach(sandbox, tmp_path):
    tmp_path.chmod(0o777)  # permissions alone would allow it: only the isolation may stop it
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    sentinel.chmod(0o666)
    escape = f"/tmp/codegym-escape-{os.getpid()}"
    program = (
        "import os\n"
        "def solve():\n"
        "    done = []\n"
        f"    for action in (lambda: os.remove({str(sentinel)!r}),\n"
        f"                   lambda: open({str(sentinel)!r}, 'w').write('pwned'),\n"
        f"                   lambda: open({str(tmp_path / 'new.txt')!r}, 'w').write('x'),\n"
        f"                   lambda: open({escape!r}, 'w').write('x')):\n"
        "        try:\n"
        "            action()\n"
        "            done.append(1)\n"
        "        except OSError:\n"
        "            done.append(0)\n"
        "    with open('inside.txt', 'w') as f:\n"
        "        f.write('the work dir is writable')\n"
        "    return done\n"
    )
    # Not even the sandbox's own /tmp: only the worker creates folders there, so no job leaves files
    # for a later one (the job's own work dir, its current directory, is writable).
    report = sandbox.run(program, [CallTest("solve", expected=[0, 0, 0, 0])])
    assert report.tests[0].status is S, report.tests[0]
    assert sentinel.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel.txt"]
    assert not os.path.exists(escape)


def test_secrets_in_the_environment_are_out_of_reach(sandbox):
    # A host process whose environment (as exec'd) holds the canary, like a trainer holding an API key.
    holder = __import__("subprocess").Popen(
        ["sleep", "30"], env={"CODEGYM_TEST_SECRET": CANARY, "PATH": "/usr/bin:/bin"}
    )
    try:
        program = (
            "import os\n"
            "def solve():\n"
            f"    leaks = [k for k, v in os.environ.items() if {CANARY!r} in v]\n"
            "    for pid in os.listdir('/proc'):\n"
            "        try:\n"
            "            with open(f'/proc/{pid}/environ', 'rb') as f:\n"
            f"                if {CANARY.encode()!r} in f.read():\n"
            "                    leaks.append(pid)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return leaks\n"
        )
        report = sandbox.run(program, [CallTest("solve", expected=[])])
        assert report.tests[0].status is S, report.tests[0]
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_no_network_to_the_host(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept)
    thread.start()
    program = (
        "import socket\n"
        "def solve():\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=0.5).sendall(b'hi')\n"
        "        return 'connected'\n"
        "    except OSError as exc:\n"
        "        return 'blocked'\n"
    )
    try:
        report = sandbox.run(program, [CallTest("solve", expected="blocked")], timeout_s=3.0)
    finally:
        thread.join()
        server.close()
    assert report.tests[0].status is S, report.tests[0]
    assert accepted == []


def _cpu_seconds(pids: set[int]) -> float:
    """CPU time of ``pids`` and of the children they reaped (utime, stime, cutime, cstime)."""
    from tests.sandbox.test_backends import _stat

    ticks = sum(sum(int(field) for field in fields[11:15]) for pid in pids if (fields := _stat(pid)))
    return ticks / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("kind", ["call", "stdio"])
def test_a_program_that_closes_its_output_costs_its_worker_no_cpu(sandbox_factory, kind):
    # A pipe at its end is always ready for select(): a worker that kept watching a program's closed
    # stdout spun until the job ended, here the program's whole second of sleep (local backend: the
    # worker's CPU is this process's descendants').
    from tests.sandbox.test_backends import _descendants

    box = sandbox_factory("local")
    program = "import os, sys, time\nos.close(1)\nos.close(2)\ndef f():\n    time.sleep(1.0)\n    return 1\n"
    if kind == "stdio":
        program, tests = program + "f()\n", [StdioTest("", expected_stdout="")]
    else:
        tests = [CallTest("f", expected=1)]
    box.run("def f():\n    return 1\n", [CallTest("f", expected=1)])  # every worker is up
    pids = _descendants(os.getpid())
    before = _cpu_seconds(pids)
    report = box.run(program, tests, timeout_s=5.0)
    spent = _cpu_seconds(pids) - before
    assert report.tests[0].status in (TestStatus.PASSED, TestStatus.FAILED)
    assert spent < 0.3, f"the sandbox's processes used {spent:.2f} s of CPU while the program slept 1 s"
