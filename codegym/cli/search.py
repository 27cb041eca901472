"""``codegym search``: MCTS over a task set, written out as reasoning data.

``--out DIR`` gets

- ``DIR/trees``: every node of every tree as a ``datasets.Dataset`` (``save_to_disk``): the PRM's
  step-label schema (``hard_label``, ``soft_label`` from the node's value) plus the node's statistics;
  ``codegym train prm --data DIR/trees`` reads it;
- ``DIR/trees.json``: the trees as nested JSON;
- ``DIR/html/<task>.html``: one foldable page per tree, coloured by node value;
- ``DIR/solved_paths.jsonl``: each distinct path whose code passed every visible test
  (``task_id``, ``problem``, ``steps``), the rows policy SFT reads;
- ``DIR/episodes.jsonl``: the answer per task, as ``codegym solve --out`` writes it.

Only MCTS builds a tree (``BeamSearchAgent`` keeps its paths, not a tree), so ``--agent`` is ``mcts``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codegym.cli import command, print_table
from codegym.cli.common import safe_filename, write_jsonl
from codegym.cli.solve import add_solve_options, episode_record, print_episodes, run_agent, summary_rows


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "search",
        help="run MCTS on tasks and write the reasoning data: trees, step values, solved paths, HTML",
        description="Run MCTS (O1-Coder's reasoning-data search) on a task set and write what it found: "
        "the trees as a datasets.Dataset of step values (DIR/trees, readable by codegym train prm "
        "--data), as JSON (DIR/trees.json) and as HTML pages (DIR/html/), the paths that passed every "
        "visible test (DIR/solved_paths.jsonl) and the answers (DIR/episodes.jsonl). Only MCTS builds "
        "a search tree, so it is the one agent here. Example: codegym search --simulations 16 "
        "--n-tasks 50 --visible-tests tcg --out runs/search",
        populate=_search_options,
    )
    command(parser, _search)


def _search_options(parser: argparse.ArgumentParser) -> None:
    """Built on first use: the agent options' defaults come from the agents' signatures."""
    add_solve_options(parser, ("mcts",), default_agent="mcts", endless_default=10)
    parser.add_argument(
        "--out", default="runs/search", metavar="DIR", help="where the data is written (default: %(default)s)"
    )


def _search(args: argparse.Namespace) -> int:
    from codegym.agents import solved_paths, trees_dataset, write_html, write_json

    agent, episodes, seconds = run_agent(args, progress_label="searching")
    out = Path(args.out)
    trees = [e.tree for e in episodes]
    rows_with_nodes = [t for t in trees if len(t.nodes) > 1]
    label_rows = solved_rows = 0
    if rows_with_nodes:
        dataset = trees_dataset(rows_with_nodes)
        dataset.save_to_disk(str(out / "trees"))
        label_rows = len(dataset)
        solved_rows = int(sum(label == 1.0 for label in dataset["hard_label"]))
    write_json(trees, out / "trees.json")
    for tree in trees:
        write_html(tree, out / "html" / f"{safe_filename(tree.task.task_id)}.html")
    paths = [
        {"task_id": tree.task.task_id, "problem": problem, "steps": list(steps)}
        for tree in trees
        for problem, steps in solved_paths([tree])
    ]
    write_jsonl(out / "solved_paths.jsonl", paths)
    write_jsonl(out / "episodes.jsonl", (episode_record(e) for e in episodes))

    print_episodes(episodes, nodes=True)
    print()
    rows = summary_rows(agent, episodes, seconds)
    rows += [
        ("nodes", str(sum(len(t.nodes) for t in trees))),
        ("step rows (DIR/trees)", str(label_rows) if rows_with_nodes else "0 (no tree grew past its root)"),
        ("rows with hard_label 1", str(solved_rows)),
        ("solved paths (visible tests)", str(len(paths))),
        ("written to", str(out)),
    ]
    print_table(rows)
    return 0
