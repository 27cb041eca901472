"""The loop's search and eval stages on Ray workers: the same metrics and data as in one process."""

from __future__ import annotations

import copy
import json

import pytest

from codegym.loop import run_loop
from codegym.loop.config import from_dict

pytestmark = pytest.mark.slow

TINY = {
    "sandbox": "local",
    "max_steps": 3,
    "tasks": {"train_tasks": 6, "min_ops": 1, "max_ops": 1, "eval_tasks": 4, "eval_ops": 1},
    "search": {"simulations": 2, "batch_size": 2},
    "eval": {"best_of_n": 2, "mcts_simulations": 1, "batch_size": 2},
}


def _measured(metrics: dict) -> dict:
    """The metrics without the wall-clock ones."""
    metrics = copy.deepcopy(metrics)
    metrics.pop("seconds")
    metrics.get("spend", {}).pop("wall_s", None)
    return metrics


def test_search_and_eval_stages_on_ray_equal_the_single_process_ones(ray_cluster, tmp_path):
    one = run_loop(from_dict(TINY), tmp_path / "one", progress=False, until=(1, "search"))
    remote_config = from_dict({**TINY, "ray_address": ray_cluster.address})
    remote = run_loop(remote_config, tmp_path / "ray", progress=False, until=(1, "search"))
    assert one.ran == remote.ran == ("iter-0/6-eval", "iter-1/1-tcg", "iter-1/2-search")
    for stage in one.ran:
        single = json.loads((tmp_path / "one" / stage / "metrics.json").read_text())
        distributed = json.loads((tmp_path / "ray" / stage / "metrics.json").read_text())
        assert _measured(distributed) == _measured(single), stage
    paths = [(tmp_path / run / "iter-1/2-search/solved_paths.jsonl").read_text() for run in ("one", "ray")]
    assert paths[0] == paths[1]
    assert json.loads((tmp_path / "one/iter-1/2-search/metrics.json").read_text())["tasks"] == 6
    # The run directory is the source of truth: the Ray run resumes in one process (and back) as it is.
    resumed = run_loop(from_dict(TINY), tmp_path / "ray", progress=False, until=(1, "search"))
    assert resumed.ran == () and resumed.skipped == one.ran


def test_ray_address_needs_batch_sizes():
    with pytest.raises(ValueError, match=r"set search.batch_size and eval.batch_size"):
        from_dict({"ray_address": "auto"})
