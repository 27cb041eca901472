"""Search trees as data: rows of a ``datasets.Dataset``, JSON, and a self-contained HTML page.

:func:`tree_rows` writes one row per non-root node: the step-label schema that PRM training reads
(:data:`codegym.models.prm_data.STEP_LABEL_FEATURES`: ``task_id``, ``problem``, ``prefix``, ``step``,
``hard_label``, ``soft_label``, ``origin="mcts"``) plus the node's statistics (``depth``, ``visits``,
``value``, ``prior``, ``prm_score``, ``evaluation``) and, for a node or rollout that wrote code, the code
and its verdicts (``code``, ``visible_pass_rate``, ``hidden_pass_rate``, ``hidden_all_passed``).

Labels (O1-Coder's step values): ``soft_label`` is the node's mean backed-up value Q, clipped to [0, 1];
``hard_label`` is 1.0 when a code path through the node (in the tree or a rollout from it or below it)
passed every test that pays, the visible tests; the hidden verdict columns are for analysis only.

:func:`solved_paths` gives the paths whose code passed every paying test, as ``(problem, steps)`` pairs,
the rows policy SFT reads (:func:`codegym.training.policy_sft.episodes_dataset`).

Example:
    >>> from codegym.agents import trees_dataset  # doctest: +SKIP
    >>> dataset = trees_dataset([episode.tree for episode in episodes])  # doctest: +SKIP
    >>> write_html(episodes[0].tree, "tree.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path as FilePath
from typing import Any

from codegym.agents.mcts import Node, SearchTree
from codegym.errors import UserError


def _passed(path) -> bool:
    return path is not None and path.report is not None and path.report.all_passed


def _verdicts(node: Node) -> dict[str, Any]:
    """The code and verdicts of the node's own code step, else of its rollout, else None."""
    for path in (node.path, node.rollout):
        if path is not None and path.report is not None:
            info = path.transition.info
            return {
                "code": info.get("code"),
                "visible_pass_rate": float(path.report.pass_rate),
                "hidden_pass_rate": float(info.get("hidden_pass_rate", 0.0)),
                "hidden_all_passed": bool(info.get("hidden_all_passed", False)),
            }
    return {"code": None, "visible_pass_rate": None, "hidden_pass_rate": None, "hidden_all_passed": None}


def _solved_below(tree: SearchTree) -> set[int]:
    """Ids of the nodes with a path through them that passed every paying test."""
    solved: set[int] = set()
    for node in tree.nodes:
        if _passed(node.path) or _passed(node.rollout):
            walker: Node | None = node
            while walker is not None and walker.id not in solved:
                solved.add(walker.id)
                walker = walker.parent
    return solved


def tree_rows(tree: SearchTree) -> list[dict[str, Any]]:
    """One row per non-root node (see the module docstring for the columns), in creation order."""
    solved = _solved_below(tree)
    task = tree.task
    rows = []
    for node in tree.nodes[1:]:
        rows.append(
            {
                "task_id": task.task_id,
                "problem": task.problem,
                "prefix": list(node.path.steps[:-1]),
                "step": node.step,
                "hard_label": 1.0 if node.id in solved else 0.0,
                "soft_label": min(1.0, max(0.0, node.value)),
                "origin": "mcts",
                "node_id": node.id,
                "parent_id": node.parent.id,
                "depth": node.depth,
                "visits": node.visits,
                "value": node.value,
                "prior": node.prior,
                "prm_score": node.prm_score,
                "evaluation": node.evaluation,
                "terminal": node.terminal,
                **_verdicts(node),
            }
        )
    return rows


def trees_dataset(trees: Iterable[SearchTree]):
    """Every node of every tree as one ``datasets.Dataset`` (the PRM's step-label schema plus statistics)."""
    from datasets import Dataset

    rows = [row for tree in trees for row in tree_rows(tree)]
    if not rows:
        raise UserError("the trees have no nodes besides their roots: nothing to write")
    return Dataset.from_list(rows)


def solved_paths(trees: Iterable[SearchTree]) -> list[tuple[str, tuple[str, ...]]]:
    """``(problem, steps)`` of every distinct code path (tree or rollout) that passed every paying test."""
    seen, paths = set(), []
    for tree in trees:
        for node in tree.nodes:
            for path in (node.path, node.rollout):
                if _passed(path) and (tree.task.task_id, path.steps) not in seen:
                    seen.add((tree.task.task_id, path.steps))
                    paths.append((tree.task.problem, path.steps))
    return paths


def tree_to_dict(tree: SearchTree) -> dict[str, Any]:
    """The tree as nested plain data (JSON-ready): the task, the answer, and each node with its children."""
    solved = _solved_below(tree)

    def node_dict(node: Node) -> dict[str, Any]:
        return {
            "id": node.id,
            "step": node.step,
            "visits": node.visits,
            "value": node.value,
            "prior": node.prior,
            "prm_score": node.prm_score,
            "evaluation": node.evaluation,
            "terminal": node.terminal,
            "solved_below": node.id in solved,
            "rollout_steps": list(node.rollout.steps[node.depth :]) if node.rollout is not None else None,
            **_verdicts(node),
            "children": [node_dict(child) for child in node.children],
        }

    answer = tree.answer
    return {
        "task_id": tree.task.task_id,
        "problem": tree.task.problem,
        "simulations": tree.simulations,
        "solved_by": tree.solved_by,
        "answer_steps": list(answer.steps) if answer is not None else None,
        "root": node_dict(tree.root),
    }


def write_json(trees: SearchTree | Sequence[SearchTree], path: str | PathLike[str]) -> FilePath:
    """Write one tree or a list of trees as JSON; returns the path."""
    many = not isinstance(trees, SearchTree)
    data = [tree_to_dict(t) for t in trees] if many else tree_to_dict(trees)
    out = FilePath(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    return out


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; }
pre { white-space: pre-wrap; margin: 0.3em 0 0.3em 1.2em; font-size: 0.9em; }
details { margin-left: 1.2em; border-left: 3px solid var(--c); padding-left: 0.5em; }
summary { cursor: pointer; }
.stats { font-size: 0.8em; color: #555; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #b42318; }
.answer > summary { background: #fff3bf; }
"""


def _colour(value: float) -> str:
    value = min(1.0, max(0.0, value))
    return f"hsl({int(120 * value)}, 70%, 45%)"


def tree_to_html(tree: SearchTree) -> str:
    """A self-contained HTML page: every node as a foldable block, coloured by its value (red 0, green 1),
    with N, Q, prior, PRM score, rollouts and verdicts; the answer path is highlighted."""
    data = tree_to_dict(tree)
    on_answer = set()
    if tree.answer is not None:
        for node in tree.nodes:
            if tree.answer.steps[: node.depth] == node.path.steps:
                on_answer.add(node.id)

    def verdict(node: dict[str, Any]) -> str:
        if node["visible_pass_rate"] is None:
            return ""
        hidden = "pass" if node["hidden_all_passed"] else "fail"
        return f' · visible {node["visible_pass_rate"]:.2f} · hidden <span class="{hidden}">{hidden}ed</span>'

    def block(node: dict[str, Any]) -> str:
        stats = f"N={node['visits']} Q={node['value']:.3f} P={node['prior']:.2f}"
        if node["prm_score"] is not None:
            stats += f" PRM={node['prm_score']:.3f}"
        first_line = html.escape((node["step"] or "").strip().splitlines()[0][:90])
        parts = [
            f'<details style="--c:{_colour(node["value"])}" {"open" if node["id"] in on_answer else ""}'
            f' class="{"answer" if node["id"] in on_answer else ""}">',
            f'<summary>#{node["id"]} {first_line} <span class="stats">{stats}{verdict(node)}</span></summary>',
            f"<pre>{html.escape(node['step'] or '')}</pre>",
        ]
        if node["rollout_steps"]:
            rollout = html.escape("\n\n".join(node["rollout_steps"]))
            parts.append(f'<div class="stats">rollout from here:</div><pre>{rollout}</pre>')
        parts.extend(block(child) for child in node["children"])
        parts.append("</details>")
        return "\n".join(parts)

    solved = {"tree": "a tree path", "rollout": "a rollout"}.get(data["solved_by"] or "", "no path")
    children = "\n".join(block(child) for child in data["root"]["children"])
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>MCTS tree: {html.escape(data['task_id'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(data['task_id'])}</h1><pre>{html.escape(data['problem'])}</pre>"
        f"<p>{data['simulations']} simulations, {len(tree.nodes)} nodes, root N={data['root']['visits']} "
        f"Q={data['root']['value']:.3f}; solved by {solved} (every paying test passed). "
        "Colour: node value Q, red 0 to green 1; the highlighted path is the answer.</p>"
        f"{children}</body></html>\n"
    )


def write_html(tree: SearchTree, path: str | PathLike[str]) -> FilePath:
    """Write :func:`tree_to_html` to ``path``; returns the path."""
    out = FilePath(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(tree_to_html(tree))
    return out
