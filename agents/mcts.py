"""Monte Carlo tree search over reasoning steps, after O1-Coder and rStar.

A node is a path of steps (an env snapshot from ``step_batch``; nothing is deep-copied). One simulation:

1. **Select**: from the root, follow the best child by UCT, ``W/N + c*sqrt(ln N_parent / N)`` (O1-Coder's
   code, c = 2.0), or PUCT, ``Q + c(N_parent) * P * sqrt(N_parent) / (1 + N)`` with
   ``c(N) = log((1 + N + c_base) / c_base) + c_init`` and priors P = softmax of the children's mean
   log-prob per token (OpenR), until a node that is not expanded or is terminal.
2. **Expand**: a non-terminal leaf gets up to ``expansions`` distinct child steps from one policy call
   (all trees' leaves share the call); the children are played, their code run in one sandbox batch.
3. **Evaluate** every new child: a terminal child (code, or ``max_steps`` without it) is worth
   ``alpha*compiled + (1-alpha)*pass_rate`` on the tests that pay (0 without code); a non-terminal child
   by ``evaluation``: ``"prm"`` (the PRM's score of its last step), ``"rollout"`` (play the policy from it
   to code, batched by depth, and take that code's value) or ``"mix"`` (``mix*prm + (1-mix)*rollout``).
4. **Back up** (mean): each new child starts with N = 1 and W = its value, and every ancestor gets
   N += 1 and W += that value per child. Selecting a terminal leaf again backs up its value once more.

A search stops after ``simulations`` simulations, when the budget runs out, or (``stop_on_solve``) as
soon as a code path, in the tree or in a rollout, passes every test that pays. The answer is the first
such path, else the code path with the highest value (ties: the earliest found); without any code the
episode ends with ``end="budget"``.

The :class:`SearchTree` keeps every node's statistics; :mod:`codegym.agents.trees` turns trees into a
``datasets.Dataset`` of step values, JSON and HTML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from codegym.agents.base import Agent, Episode, Path, Runner, code_value
from codegym.errors import UserError

if TYPE_CHECKING:
    from codegym.env import EpisodeState
    from codegym.models.policy import Policy
    from codegym.rewards import ProcessRewardModel

SELECTIONS = ("uct", "puct")
EVALUATIONS = ("prm", "rollout", "mix")
PUCT_C_BASE = 19652.0  # OpenR's constants (from AlphaZero)


@dataclass(eq=False)
class Node:
    """One node of a search tree: the path to it, its statistics, and what evaluating it found.

    Attributes:
        id: the node's number in its tree (the root is 0; children are numbered as they are made).
        path: the path (env snapshot) this node stands for.
        parent: the parent node (None for the root).
        children: the children in the order they were made.
        prior: P in PUCT: the softmax of the siblings' mean log-prob per token.
        mean_logprob: this node's step's mean log-prob per token under the policy (what the prior is from).
        visits: N, how many backed-up values passed through this node.
        value_sum: W, the sum of those values.
        evaluation: the value this node was first given (None for the root).
        prm_score: the PRM's score of this node's step, when the evaluation asked for it.
        rollout: the finished path a rollout from this node reached, when the evaluation made one.
        expanded: whether this node has been expanded (a leaf whose steps were all empty stays childless).
    """

    id: int
    path: Path
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    prior: float = 1.0
    mean_logprob: float = 0.0
    visits: int = 0
    value_sum: float = 0.0
    evaluation: float | None = None
    prm_score: float | None = None
    rollout: Path | None = None
    expanded: bool = False

    @property
    def value(self) -> float:
        """Q, the mean backed-up value (0.0 before any visit)."""
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def terminal(self) -> bool:
        return self.path.finished

    @property
    def depth(self) -> int:
        return len(self.path.steps)

    @property
    def step(self) -> str | None:
        return self.path.steps[-1] if self.path.steps else None


@dataclass(eq=False)
class SearchTree:
    """The tree one MCTS search built for one problem, with the path it answered with."""

    root: Node
    nodes: list[Node]
    simulations: int = 0
    solved_by: str | None = None  # "tree" or "rollout" when a path passed every paying test
    answer: Path | None = None

    @property
    def task(self):
        return self.root.path.state.task


class MCTSAgent(Agent):
    """Monte Carlo tree search over steps (see the module docstring for one simulation).

    Args:
        policy: writes the steps.
        prm: the process reward model, for ``evaluation="prm"`` or ``"mix"``.
        simulations: simulations per problem.
        expansions: K, candidate steps sampled per expansion (O1-Coder: 3).
        selection: ``"uct"`` or ``"puct"``.
        c: the exploration constant: UCT's c (O1-Coder: 2.0) or PUCT's c_init (OpenR: 1.25).
        evaluation: ``"prm"``, ``"rollout"`` or ``"mix"``.
        mix: the PRM's weight in ``"mix"``.
        alpha: the weight of "compiled" in a code path's value, ``alpha*compiled + (1-alpha)*pass_rate``.
        temperature: sampling temperature of the expansions (> 0).
        rollout_temperature: temperature of rollouts (0 is greedy).
        stop_on_solve: stop a problem's search once a path passes every test that pays.
        **options: ``seed``, ``max_new_tokens`` (see :class:`~codegym.agents.Agent`).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        prm: ProcessRewardModel | None = None,
        simulations: int = 8,
        expansions: int = 3,
        selection: str = "uct",
        c: float | None = None,
        evaluation: str = "rollout",
        mix: float = 0.5,
        alpha: float = 0.5,
        temperature: float = 1.0,
        rollout_temperature: float = 0.0,
        stop_on_solve: bool = True,
        **options,
    ) -> None:
        super().__init__(policy, prm=prm, **options)
        for name, value in (("simulations", simulations), ("expansions", expansions)):
            if not (isinstance(value, int) and value >= 1):
                raise UserError(f"{name} must be an int >= 1, got {value!r}")
        if selection not in SELECTIONS:
            raise UserError(f"unknown selection {selection!r}: choose 'uct' or 'puct'")
        if evaluation not in EVALUATIONS:
            raise UserError(f"unknown evaluation {evaluation!r}: choose one of {', '.join(EVALUATIONS)}")
        if evaluation in ("prm", "mix") and prm is None:
            raise UserError(
                f"evaluation={evaluation!r} needs a process reward model: pass prm= (e.g. load_prm('tiny'))"
            )
        for name, value in (("mix", mix), ("alpha", alpha)):
            if not (isinstance(value, int | float) and 0 <= value <= 1):
                raise UserError(f"{name} must be in [0, 1], got {value!r}")
        if not (isinstance(temperature, int | float) and temperature > 0):
            raise UserError(f"MCTS samples its expansions: temperature must be > 0, got {temperature!r}")
        self.simulations, self.expansions = simulations, expansions
        self.selection, self.evaluation = selection, evaluation
        self.c = float(c if c is not None else (2.0 if selection == "uct" else 1.25))
        if self.c < 0:
            raise UserError(f"c must be >= 0, got {c!r}")
        self.mix, self.alpha = float(mix), float(alpha)
        self.temperature, self.rollout_temperature = float(temperature), float(rollout_temperature)
        self.stop_on_solve = stop_on_solve
        self.name = f"mcts({selection},{evaluation},{simulations}x{expansions})"

    # -- the search ----------------------------------------------------------------------------------

    def search(self, runner: Runner) -> tuple[list[Episode], list[EpisodeState]]:
        trees = [self._new_tree(Path(problem=i, state=state)) for i, state in enumerate(runner.roots)]
        for _ in range(self.simulations):
            active = [t for t in trees if t.solved_by is None and runner.allows(t.root.path.problem)]
            if not active:
                break
            leaves = [self._select(tree.root) for tree in active]
            for tree in active:
                tree.simulations += 1
            for leaf in leaves:
                if leaf.terminal or leaf.expanded:  # a terminal leaf, or a dead end: back up again
                    self._backup(leaf, leaf.evaluation if leaf.evaluation is not None else 0.0)
            to_expand = [
                (t, leaf)
                for t, leaf in zip(active, leaves, strict=True)
                if not (leaf.terminal or leaf.expanded)
            ]
            self._expand(runner, to_expand)
        episodes, states = [], []
        for tree in trees:
            answer = tree.answer or self._best_code(tree)
            if answer is None:
                answer = tree.root.path
                answer.end = answer.end or "budget"
            tree.answer = answer
            episodes.append(runner.episode(answer, self.name, tree=tree))
            states.append(answer.state)
        return episodes, states

    def _new_tree(self, root_path: Path) -> SearchTree:
        root = Node(id=0, path=root_path)
        return SearchTree(root=root, nodes=[root])

    def _select(self, node: Node) -> Node:
        while node.expanded and node.children and not node.terminal:
            node = max(node.children, key=lambda child, parent=node: self._score(parent, child))
        return node

    def _score(self, parent: Node, child: Node) -> float:
        if child.visits == 0:
            return math.inf
        if self.selection == "uct":
            # O1-Coder's code uses the summed value W over N (that is, Q) plus the UCT bonus.
            return child.value + self.c * math.sqrt(math.log(parent.visits) / child.visits)
        c = math.log((1 + parent.visits + PUCT_C_BASE) / PUCT_C_BASE) + self.c
        return child.value + c * child.prior * math.sqrt(parent.visits) / (1 + child.visits)

    def _expand(self, runner: Runner, work: list[tuple[SearchTree, Node]]) -> None:
        if not work:
            return
        groups = runner.extend(
            [leaf.path for _, leaf in work], self.expansions, self.temperature, unique=True
        )
        new: list[tuple[SearchTree, Node]] = []
        for (tree, leaf), children in zip(work, groups, strict=True):
            if not children and not runner.allows(leaf.path.problem, steps=self.expansions):
                continue  # the budget stopped this expansion: the leaf stays unexpanded
            leaf.expanded = True
            if not children:  # every step was empty: a dead end worth 0
                leaf.evaluation = 0.0
                self._backup(leaf, 0.0)
                continue
            # The step's own mean log-prob per token (paths carry sums from the root).
            # Without log-probs (a server that returns none) the priors are uniform.
            means = np.array(
                [
                    0.0
                    if c.logprob is None or leaf.path.logprob is None
                    else (c.logprob - leaf.path.logprob) / max(1, c.tokens - leaf.path.tokens)
                    for c in children
                ]
            )
            priors = np.exp(means - means.max())
            priors /= priors.sum()
            for child_path, prior, mean in zip(children, priors, means, strict=True):
                node = Node(
                    id=len(tree.nodes),
                    path=child_path,
                    parent=leaf,
                    prior=float(prior),
                    mean_logprob=float(mean),
                )
                tree.nodes.append(node)
                leaf.children.append(node)
                new.append((tree, node))
        self._evaluate(runner, new)
        for tree, node in new:
            self._backup(node, node.evaluation)
            if self.stop_on_solve and tree.solved_by is None:
                self._check_solved(tree, node)

    def _evaluate(self, runner: Runner, new: list[tuple[SearchTree, Node]]) -> None:
        open_nodes = [node for _, node in new if not node.terminal]
        for _, node in new:
            if node.terminal:
                node.evaluation = code_value(node.path, self.alpha)
        if not open_nodes:
            return
        prm_values = rollout_values = None
        if self.evaluation in ("prm", "mix"):
            scores = runner.score([node.path for node in open_nodes])
            prm_values = [s[-1] for s in scores]
            for node, value in zip(open_nodes, prm_values, strict=True):
                node.prm_score = value
        if self.evaluation in ("rollout", "mix"):
            starts = [
                Path(
                    problem=n.path.problem,
                    state=n.path.state,
                    transition=n.path.transition,
                    tokens=n.path.tokens,
                    logprob=n.path.logprob,
                )
                for n in open_nodes
            ]
            ends = runner.complete(starts, self.rollout_temperature)
            rollout_values = []
            for node, end in zip(open_nodes, ends, strict=True):
                node.rollout = end
                rollout_values.append(code_value(end, self.alpha))
        for i, node in enumerate(open_nodes):
            if self.evaluation == "prm":
                node.evaluation = prm_values[i]
            elif self.evaluation == "rollout":
                node.evaluation = rollout_values[i]
            else:
                node.evaluation = self.mix * prm_values[i] + (1 - self.mix) * rollout_values[i]

    def _backup(self, node: Node | None, value: float) -> None:
        while node is not None:
            node.visits += 1
            node.value_sum += value
            node = node.parent

    def _check_solved(self, tree: SearchTree, node: Node) -> None:
        for source, path in (("tree", node.path), ("rollout", node.rollout)):
            report = path.report if path is not None else None
            if report is not None and report.all_passed:
                tree.solved_by, tree.answer = source, path
                return

    def _best_code(self, tree: SearchTree) -> Path | None:
        best, best_value = None, -math.inf
        for node in tree.nodes:
            for path in (node.path, node.rollout):
                if path is not None and path.report is not None:
                    value = code_value(path, self.alpha)
                    if value > best_value:
                        best, best_value = path, value
        return best
