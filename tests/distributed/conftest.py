"""One simulated Ray cluster (a head and two nodes, one CPU each) for the whole test session.

Ray costs several seconds to start, so the cluster starts on first use and only the tests in this folder
pay for it; every ``make_sandbox("ray")`` here joins it.
"""

from __future__ import annotations

import time

import pytest

from tests.distributed.processes import alive, descendants

NODES = 3  # the head and two more


@pytest.fixture(scope="session")
def ray_cluster():
    """The running cluster, with this process connected to it as the driver."""
    ray = pytest.importorskip("ray", reason="the distributed tests need Ray: pip install -e '.[ray]'")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(NODES - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    started = [
        info.process.pid
        for node in cluster.list_all_nodes()
        for infos in node.all_processes.values()
        for info in infos
    ]
    started += [pid for root in started for pid in descendants(root)]  # Ray's workers, sandbox workers
    ray.shutdown()
    cluster.shutdown()
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in started if alive(pid)]
    assert not left, f"processes left after the cluster shut down: {left}"


@pytest.fixture(scope="session")
def ray_box(ray_cluster):
    """A ray sandbox over the cluster with local sandboxes: one actor per node, one worker each."""
    from codegym.sandbox import make_sandbox

    with make_sandbox("ray", backend="local", chunk_size=4) as box:
        yield box
