"""``codegym serve`` on loopback, played through CodeReasonClient, OpenEnv's own client and raw requests."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("openenv", reason="codegym serve needs openenv-core: pip install 'codegym[serve]'")

import httpx
from websockets.sync.client import connect

from codegym.integrations.openenv import CodeReasonClient, RemoteEnvError
from tests.integrations.conftest import TOKEN

# Slow: each module fixture starts a server (uvicorn, openenv) and the episodes run over it (~100 s).
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def ws_url(server) -> str:
    return server.url.replace("http", "ws", 1) + "/ws"


def ask(connection, message) -> dict:
    connection.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(connection.recv(timeout=30))


def test_client_plays_an_episode_like_the_local_env(server, synthetic_tasks):
    import gymnasium as gym

    import codegym  # noqa: F401 (registers CodeReason-v0)

    task = synthetic_tasks[0]
    local = gym.make("CodeReason-v0", sandbox="local").unwrapped
    remote = CodeReasonClient(server.url)
    try:
        local_obs, _ = local.reset(options={"task_id": task.task_id})
        remote_obs, info = remote.reset(options={"task_id": task.task_id})
        assert remote_obs == local_obs and info["task_id"] == task.task_id
        for step in task.reference_steps:
            local_out = local.step(step)
            remote_out = remote.step(step)
            assert remote_out[:4] == local_out[:4]
        info = remote_out[4]
        assert remote_out[1] == 1.0 and remote_out[2] is True
        assert info["test_report"].pass_rate == 1.0 and info["test_report"].all_passed
        assert info["hidden_all_passed"] is True and info["code"] == local_out[4]["code"]
        with pytest.raises(RemoteEnvError, match="episode has ended"):
            remote.step("Outline: one more")
    finally:
        local.close()
        remote.close()


def test_openenv_own_client_plays_an_episode(server, synthetic_tasks):
    from openenv.core.generic_client import GenericEnvClient

    task = synthetic_tasks[1]
    with GenericEnvClient(base_url=server.url).sync() as client:
        result = client.reset(task_id=task.task_id)
        assert result.observation["state"].startswith("### Problem") and result.done is False
        for step in task.reference_steps:
            result = client.step({"step": step})
        assert result.done is True and result.reward == 1.0
        info = result.observation["info"]
        assert info["test_report"]["pass_rate"] == 1.0 and info["hidden_all_passed"] is True
        assert info["test_report"]["tests"][0]["status"] == "passed"
        state = client.state()
        assert state["task_id"] == task.task_id and state["step_count"] == len(task.reference_steps)


def test_agents_play_the_remote_env_unchanged(server):
    import gymnasium as gym

    from codegym.agents import GreedyAgent, MCTSAgent
    from codegym.models import load_policy
    from codegym.tasks.synthetic import SyntheticTasks

    policy = load_policy("tiny")
    task_ids = [t.task_id for t in SyntheticTasks("train", min_ops=1, max_ops=1).tasks(2, seed=3)]
    local = gym.make("CodeReason-v0", sandbox="local")
    remote = CodeReasonClient(server.url)
    try:
        for agent in (GreedyAgent(policy), MCTSAgent(policy, simulations=3, seed=0)):
            local_eps = agent.solve_many(local, task_ids)
            remote_eps = agent.solve_many(remote, task_ids)
            for here, there in zip(local_eps, remote_eps, strict=True):
                assert (there.steps, there.rewards, there.end) == (here.steps, here.rewards, here.end)
                assert there.hidden_all_passed == here.hidden_all_passed
        assert remote.get_state().task.task_id == task_ids[-1]
    finally:
        local.close()
        remote.close()


def test_eight_concurrent_sessions_each_get_their_own_episode(server, synthetic_tasks):
    results: dict[int, object] = {}

    def play(index: int) -> None:
        task = synthetic_tasks[index % len(synthetic_tasks)]
        client = CodeReasonClient(server.url)
        try:
            obs, _ = client.reset(options={"task_id": task.task_id})
            assert task.problem.strip() in obs
            for step in task.reference_steps:
                time.sleep(0.01)  # interleave the sessions' steps
                out = client.step(step)
            results[index] = (out[1], out[4]["task_id"] == task.task_id)
        except Exception as exc:  # reported below
            results[index] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=play, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == {i: (1.0, True) for i in range(8)}


def test_bad_websocket_messages_get_errors_and_the_session_lives_on(server, synthetic_tasks):
    task = synthetic_tasks[2]
    with connect(ws_url(server)) as connection:
        reply = ask(connection, "{not json")
        assert reply["type"] == "error" and reply["data"]["code"] == "INVALID_JSON"
        reply = ask(connection, {"type": "step", "data": {"step": "Outline: x"}})
        assert reply["data"]["message"].startswith("STEP_BEFORE_RESET: call reset before step")
        reply = ask(connection, {"type": "reset", "data": {"task_id": "synthetic/train/nope/1"}})
        assert reply["type"] == "error" and "nope" in reply["data"]["message"]
        reply = ask(connection, {"type": "reset", "data": {"task_id": task.task_id}})
        assert reply["type"] == "observation"
        reply = ask(connection, {"type": "step", "data": {"step": "Outline", "colour": "red"}})
        assert reply["data"]["code"] == "VALIDATION_ERROR" and "colour" in json.dumps(reply["data"]["errors"])
        reply = ask(connection, {"type": "step", "data": {"step": "x" * 4001}})
        assert "max_step_chars=4000" in reply["data"]["message"]
        reply = ask(connection, {"type": "step", "data": {"step": "Outline", "restore": 999}})
        assert reply["data"]["message"].startswith("UNKNOWN_SNAPSHOT")
        reply = ask(connection, {"type": "dance"})
        assert reply["data"]["code"] == "UNKNOWN_TYPE"
        for step in task.reference_steps:  # the same session still plays
            reply = ask(connection, {"type": "step", "data": {"step": step}})
        assert reply["type"] == "observation" and reply["data"]["reward"] == 1.0


def test_bad_http_requests_get_clear_errors(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "healthy"}
        schema = http.get("/schema").json()
        assert schema["action"]["required"] == ["step"] and "restore" in schema["action"]["properties"]
        assert {"state", "info", "snapshot", "terminated"} <= set(schema["observation"]["properties"])
        assert http.get("/state").json()["step_count"] == 0
        reply = http.post("/step", content=b"{oops", headers={"content-type": "application/json"})
        assert reply.status_code == 422 and reply.json()["detail"][0]["type"] == "json_invalid"
        reply = http.post("/step", json={"action": {"step": "x", "bogus": 1}})
        assert reply.status_code == 422 and reply.json()["detail"][0]["type"] == "extra_forbidden"
        reply = http.post("/step", json={"action": {"step": "x"}, "colour": "red"})
        assert (
            reply.status_code == 400 and reply.json()["code"] == "UNKNOWN_FIELDS" and "colour" in reply.text
        )
        reply = http.post("/step", json={"action": {"step": "Outline: x"}})
        assert reply.status_code == 409 and reply.json()["code"] == "STEP_BEFORE_RESET"
        assert "/ws" in reply.json()["error"]
        reply = http.post("/reset", json={"task_idd": "x"})
        assert reply.status_code == 400 and "task_idd" in reply.json()["error"]
        reply = http.post("/reset", json={"seed": 5})
        assert reply.status_code == 200 and reply.json()["observation"]["state"].startswith("### Problem")


def test_a_vanished_client_frees_its_session(server, synthetic_tasks):
    task = synthetic_tasks[3]
    for _ in range(12):  # more than --max-sessions: each vanished session must have been freed
        connection = connect(ws_url(server)).__enter__()
        assert ask(connection, {"type": "reset", "data": {"task_id": task.task_id}})["type"] == "observation"
        # Gone mid-episode without a close message, as when a client process dies: the kernel ends the TCP
        # connection and nothing else is said.
        connection.socket.shutdown(socket.SHUT_RDWR)
        connection.socket.close()
    time.sleep(0.5)
    client = CodeReasonClient(server.url)
    client.reset(options={"task_id": task.task_id})
    for step in task.reference_steps:
        out = client.step(step)
    client.close()
    assert out[1] == 1.0


def test_token_is_required(strict_server, synthetic_tasks):
    assert httpx.get(strict_server.url + "/health").status_code == 200  # open to health probes
    reply = httpx.post(strict_server.url + "/reset", json={})
    assert reply.status_code == 401 and "Authorization: Bearer" in reply.json()["error"]
    reply = httpx.post(strict_server.url + "/reset", json={}, headers={"Authorization": "Bearer wrong"})
    assert reply.status_code == 401
    with pytest.raises(RemoteEnvError, match=r"HTTP 403.*token"):
        CodeReasonClient(strict_server.url).reset()
    client = CodeReasonClient(strict_server.url, token=TOKEN)
    obs, _ = client.reset(options={"task_id": synthetic_tasks[0].task_id})
    client.close()
    assert obs.startswith("### Problem")


def test_body_limits(strict_server, synthetic_tasks):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    big = json.dumps({"action": {"step": "x" * 20_000}})
    reply = httpx.post(
        strict_server.url + "/step", content=big, headers={**headers, "content-type": "application/json"}
    )
    assert reply.status_code == 413 and "16384" in reply.json()["error"]
    with connect(ws_url(strict_server), additional_headers=headers) as connection:
        ask(connection, {"type": "reset", "data": {"task_id": synthetic_tasks[0].task_id}})
        reply = ask(connection, {"type": "step", "data": {"step": "x" * 20_000}})
        assert reply["type"] == "error" and "the server's limit is 16384" in reply["data"]["message"]
        reply = ask(connection, {"type": "step", "data": {"step": "Outline: still here"}})
        assert reply["type"] == "observation"
        # --process-reward tiny: the PRM's score of the step reaches the client
        info = reply["data"]["observation"]["info"]
        assert (
            0.0 <= info["process_reward"] <= 1.0
            and info["reward_terms"]["process_reward"] == info["process_reward"]
        )


def test_session_limit_and_idle_timeout(strict_server, synthetic_tasks):
    task = synthetic_tasks[0]
    first = CodeReasonClient(strict_server.url, token=TOKEN)
    second = CodeReasonClient(strict_server.url, token=TOKEN)
    third = CodeReasonClient(strict_server.url, token=TOKEN)
    try:
        first.reset(options={"task_id": task.task_id})
        second.reset(options={"task_id": task.task_id})
        with pytest.raises(RemoteEnvError, match=r"(?i)capacity|maximum"):
            third.reset(options={"task_id": task.task_id})
        time.sleep(
            8.5
        )  # past the 1 s idle timeout and the reaper's 5 s period, with slack for a busy machine
        with pytest.raises(RemoteEnvError, match="SESSION_CLOSED"):
            first.step("Outline: too late")
        third.reset(options={"task_id": task.task_id})  # the reaped sessions freed their slots
        first.reset(options={"task_id": task.task_id})  # and a closed session's client reconnects
        assert first.step(task.reference_steps[0])[2] is False
    finally:
        for client in (first, second, third):
            client.close()


def test_the_client_passes_gymnasiums_env_checker(server):
    from gymnasium.utils.env_checker import check_env

    client = CodeReasonClient(server.url)
    try:
        check_env(client, skip_render_check=True)  # seeded resets repeat, spaces hold what it returns
    finally:
        client.close()
