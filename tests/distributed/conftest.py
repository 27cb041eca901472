"""One simulated Ray cluster (a head and two nodes, one CPU each) for the tests in this folder.

Ray costs several seconds to start, so the cluster starts once, on first use, and stops as soon as the
last test of this folder is done (not at the end of the session): the tests after these do not share the
machine with Ray's processes. Every ``make_sandbox("ray")`` here joins it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.processes import alive, descendants

NODES = 3  # the head and two more
HERE = Path(__file__).parent

# While the cluster runs: the cluster and the session-wide sandboxes to close before it stops.
_running: dict[str, Any] = {}


def _stop_cluster() -> None:
    """Close the session sandboxes, shut the cluster down, and check that it left no process behind."""
    if not _running:
        return
    import ray

    cluster, boxes = _running.pop("cluster"), _running.pop("boxes")
    for box in boxes:
        box.close()
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


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or HERE not in Path(nextitem.path).parents:
        _stop_cluster()


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
    _running.update(cluster=cluster, boxes=[])
    yield cluster
    _stop_cluster()


@pytest.fixture(scope="session")
def ray_box(ray_cluster):
    """A ray sandbox over the cluster with local sandboxes: one actor per node, one worker each."""
    from codegym.sandbox import make_sandbox

    box = make_sandbox("ray", backend="local", chunk_size=4)
    _running["boxes"].append(box)
    yield box
    box.close()
