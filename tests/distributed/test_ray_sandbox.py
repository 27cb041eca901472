"""The ray sandbox on a simulated three-node cluster: same verdicts as local, deaths change nothing."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from codegym.sandbox import AssertTest, CallTest, SandboxError, TestStatus, make_sandbox
from tests.distributed.processes import alive, all_pids, children, descendants, parent, process_name

pytestmark = pytest.mark.slow


def _verdicts(reports):
    return [
        (report.compiled, tuple((r.status, r.error_type, repr(r.returned)) for r in report.tests))
        for report in reports
    ]


def test_one_actor_per_node_with_the_nodes_cpus(ray_box, ray_cluster):
    import ray

    infos = ray_box.actor_infos()
    alive_nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(infos) == 3 and {info.node_id for info in infos} == alive_nodes
    assert [info.workers for info in infos] == [1, 1, 1] and ray_box.workers == 3
    assert {info.backend for info in infos} == {"local"}
    report = ray_box.run("def neg(x):\n    return -x", [CallTest("neg", (3,), expected=-3)])
    assert report.passed == 1 and report.backend == "ray"


def test_the_env_runs_on_a_ray_sandbox_given_by_name(ray_cluster, double_task):
    import gymnasium as gym

    import codegym  # noqa: F401  (registers CodeReason-v0)

    env = gym.make("CodeReason-v0", tasks=[double_task], sandbox="ray", reward="terminal")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("```python\ndef double(x):\n    return 2 * x\n```")
    assert terminated and reward == 1.0 and info["hidden_all_passed"]
    assert info["test_report"].backend == "ray"
    box = env.unwrapped.sandbox
    assert box.workers == 2 * 3  # the env's two sandbox workers, in each of the three actors
    env.close()  # the env started the sandbox by name, so it closes it
    with pytest.raises(SandboxError, match="closed"):
        box.run("x = 1", [AssertTest("assert x == 1")])


def test_humaneval_verdicts_equal_the_local_sandbox(ray_box, sandbox_factory):
    from codegym.tasks.humaneval import broken_program, load_humaneval

    tasks = load_humaneval()
    jobs = [(t.reference_solution, t.hidden_tests) for t in tasks]
    jobs += [(broken_program(t), t.hidden_tests) for t in tasks]
    remote = ray_box.run_batch(jobs)
    local = sandbox_factory("local").run_batch(jobs)
    assert _verdicts(remote) == _verdicts(local)
    assert sum(report.all_passed for report in remote[:164]) == 164  # every canonical solution passes
    assert not any(report.all_passed for report in remote[164:])  # no broken one does


def test_sigkill_of_an_actor_mid_batch_changes_no_result(ray_box):
    jobs = [
        (f"import time\ndef f():\n    time.sleep(0.05)\n    return {i}", [CallTest("f", (), expected=i % 3)])
        for i in range(90)
    ]
    restarts = ray_box.restarts
    victim = ray_box.actor_infos()[1].pid
    killer = threading.Timer(0.6, os.kill, (victim, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    reports = ray_box.run_batch(jobs)
    killer.join()
    assert time.monotonic() - started > 0.6  # the kill landed inside the batch
    assert [report.passed for report in reports] == [int(i % 3 == i) for i in range(90)]
    assert {report.tests[0].status for report in reports} == {TestStatus.PASSED, TestStatus.FAILED}
    assert ray_box.restarts == restarts + 1
    infos = ray_box.actor_infos()
    assert victim not in {info.pid for info in infos} and len(infos) == 3
    assert len({info.node_id for info in infos}) == 3  # the replacement went back to the victim's node


def test_a_job_that_keeps_killing_its_actor_is_reported_not_retried_forever(ray_box):
    # The program names its process; a watcher kills the actor above any process of that name, each time.
    marker = "cg-kills-actor"
    culprit = (
        f"import ctypes, time\nctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\ntime.sleep(20)\n"
    )
    jobs = (
        [("x = 1", [AssertTest("assert x == 1")])] * 5
        + [(culprit, [AssertTest("True")])]
        + [("x = 2", [AssertTest("assert x == 1")])] * 5
    )
    stop = threading.Event()
    kills = []

    def watch() -> None:
        while not stop.is_set():
            actors = {info.pid for info in ray_box.actor_infos()}
            for pid in all_pids():
                if process_name(pid) == marker:
                    ancestor = parent(pid)
                    while ancestor and ancestor not in actors and ancestor > 1:
                        ancestor = parent(ancestor)
                    if ancestor in actors and ancestor not in kills:
                        kills.append(ancestor)
                        os.kill(ancestor, signal.SIGKILL)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    restarts = ray_box.restarts
    watcher.start()
    try:
        reports = ray_box.run_batch(jobs, timeout_s=30.0)
    finally:
        stop.set()
        watcher.join()
    assert len(kills) == ray_box.max_job_attempts == 3
    assert ray_box.restarts == restarts + 3
    assert len({info.node_id for info in ray_box.actor_infos()}) == 3  # still one actor per node
    [verdict] = reports[5].tests
    assert verdict.status is TestStatus.CRASHED and verdict.error_type == "SandboxActorDied"
    assert "died 3 times" in verdict.message
    assert [report.passed for report in reports[:5] + reports[6:]] == [1] * 5 + [0] * 5


def test_no_sandbox_process_is_left_after_close(ray_cluster):
    box = make_sandbox("ray", backend="local", workers=2)
    actors = [info.pid for info in box.actor_infos()]
    workers = [pid for actor in actors for pid in children(actor)]
    assert len(workers) >= 2 * len(actors)  # each actor runs its two sandbox workers
    assert box.run("print(1)", [AssertTest("True")]).passed == 1
    box.close()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in actors + workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in actors + workers if alive(pid)]
    with pytest.raises(SandboxError, match="closed"):
        box.run("print(1)", [AssertTest("True")])
    box.close()  # twice is fine


def test_bad_options_name_the_fix(ray_cluster):
    with pytest.raises(ValueError, match="backend must be one of local, docker, auto"):
        make_sandbox("ray", backend="ray")
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1"):
        make_sandbox("ray", chunk_size=0)


@pytest.mark.docker
def test_actors_owning_docker_sandboxes_give_the_local_verdicts(ray_cluster, sandbox_factory):
    from codegym.tasks.humaneval import broken_program, load_humaneval

    sandbox_factory("docker")  # skips (or fails under CODEGYM_REQUIRE_DOCKER=1) without Docker
    tasks = list(load_humaneval())[:40]
    jobs = [(t.reference_solution, t.hidden_tests) for t in tasks] + [
        (broken_program(t), t.hidden_tests) for t in tasks
    ]
    with make_sandbox("ray", backend="docker") as box:
        assert {info.backend for info in box.actor_infos()} == {"docker"} and len(box.actor_infos()) == 3
        remote = box.run_batch(jobs)
    assert _verdicts(remote) == _verdicts(sandbox_factory("local").run_batch(jobs))
    assert [report.all_passed for report in remote] == [True] * 40 + [False] * 40


def test_a_node_dying_mid_batch_changes_no_result(ray_cluster):
    # Last in this folder's last file: the node it removes is added back, but the cluster is new there.
    victim = ray_cluster.list_all_nodes()[1]
    box = make_sandbox("ray", backend="local", workers=1, chunk_size=4)
    try:
        victim_actor = next(info.pid for info in box.actor_infos() if info.node_id == victim.node_id)
        below = [victim_actor, *descendants(victim_actor)]  # the actor and its sandbox workers
        jobs = [
            (
                f"import time\ndef f():\n    time.sleep(0.05)\n    return {i}",
                [CallTest("f", (), expected=i % 3)],
            )
            for i in range(90)
        ]
        remover = threading.Timer(0.6, ray_cluster.remove_node, (victim,))
        remover.start()
        reports = box.run_batch(jobs)
        remover.join()
        assert [report.passed for report in reports] == [int(i % 3 == i) for i in range(90)]
        infos = box.actor_infos()
        assert box.restarts == 1 and len(infos) == 3
        assert victim.node_id not in {info.node_id for info in infos}  # the replacement went elsewhere
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in below) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in below if alive(pid)]  # nothing of the dead node's sandbox is left
    finally:
        box.close()
        ray_cluster.add_node(num_cpus=1)
        ray_cluster.wait_for_nodes()


def test_the_sandbox_attacks_get_honest_verdicts_through_ray(ray_box):
    # The verdict attacks of tests/sandbox/test_attacks.py, in one batch over the cluster's actors: a
    # verdict crosses Ray as plain data and is judged on the driver, so it must be the same one.
    from tests.sandbox.test_attacks import ATTACKS, FAKE_SETUP_ERROR

    names = sorted(ATTACKS)
    honest = ("def f(x):\n    return 2 * x\n", [AssertTest("assert f(1) == 2", entry_point="f")])
    jobs = [ATTACKS[name][:2] for name in names] + [honest, (FAKE_SETUP_ERROR, honest[1]), honest]
    reports = ray_box.run_batch(jobs, timeout_s=3.0)
    for name, report in zip(names, reports, strict=False):
        assert report.tests[0].status in ATTACKS[name][2], (name, report.tests[0])
        assert report.tests[0].error_type not in ("SandboxFault", "WorkerDied"), (name, report.tests[0])
    assert [r.all_passed for r in reports[-3:]] == [True, False, True]
