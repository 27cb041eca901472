"""How well a process reward model ranks steps: step-level ROC AUC, per step kind, and on sibling pairs.

:func:`evaluate_prm` scores every labelled step of a step-label dataset
(:data:`~codegym.models.prm_data.STEP_LABEL_FEATURES`) with any
:class:`~codegym.rewards.ProcessRewardModel` and measures the ranking against the hard labels; training
(:mod:`codegym.training.prm`) reports it on held-out tasks, and ``benchmarks/studies/prm_auc.py`` compares
heads and objectives with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from codegym.errors import UserError
from codegym.steps import classify_step

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass(frozen=True)
class PRMEvaluation:
    """How well a PRM tells good steps from bad ones on a labelled set.

    Attributes:
        auc: the step-level ROC AUC of the scores against the hard labels (0.5 is chance).
        auc_by_kind: the same within each step kind ("outline", "refine", "code"); NaN where a kind has
            only good or only bad steps.
        pair_accuracy: among sibling pairs with different hard labels, how often the good step scores higher
            (ties count half); NaN without pairs.
        mean_score_good: the mean score of the good steps.
        mean_score_bad: the mean score of the bad steps.
        steps: how many labelled steps were scored.
        good_fraction: the share of good steps.
    """

    auc: float
    auc_by_kind: dict[str, float]
    pair_accuracy: float
    mean_score_good: float
    mean_score_bad: float
    steps: int
    good_fraction: float


def merge_paths(dataset: Dataset) -> list[tuple[str, tuple[str, ...], dict[int, list[int]]]]:
    """Group rows whose paths (prefix + step) extend one another: (problem, longest path, {step: rows})."""
    problems, prefixes, steps = dataset["problem"], dataset["prefix"], dataset["step"]
    merged: list[tuple[str, tuple[str, ...], dict[int, list[int]]]] = []
    owner: dict[tuple[str, tuple[str, ...]], int] = {}  # (problem, path) -> index into merged
    # Longest paths first, so that each shorter path finds the longer one it starts.
    for index in sorted(range(len(dataset)), key=lambda index: -len(prefixes[index])):
        path = (*prefixes[index], steps[index])
        key = (problems[index], path)
        if key not in owner:
            merged.append((problems[index], path, {}))
            for length in range(1, len(path) + 1):
                owner.setdefault((problems[index], path[:length]), len(merged) - 1)
        merged[owner[key]][2].setdefault(len(path) - 1, []).append(index)
    return merged


def roc_auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """The ROC AUC of ``scores`` for binary ``labels`` (> 0.5 is positive), ties counted half.

    Example:
        >>> roc_auc([0.9, 0.2, 0.6, 0.6], [1, 0, 1, 0])
        0.875
    """
    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels, dtype=np.float64) > 0.5
    if values.shape != positive.shape:
        raise UserError(f"scores and labels differ in length ({values.size} vs {positive.size})")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise UserError("ROC AUC needs both positive and negative labels")
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based ranks, ties averaged
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate_prm(prm: Any, dataset: Dataset) -> PRMEvaluation:
    """Score every labelled step of ``dataset`` with ``prm`` and measure how well it ranks them.

    ``prm`` is any :class:`~codegym.rewards.ProcessRewardModel`; one with ``score_batch`` (an
    :class:`~codegym.models.hf_prm.HFProcessRewardModel`) scores the paths in batches.
    """
    merged = merge_paths(dataset)
    paths = [(problem, list(path)) for problem, path, _ in merged]
    if hasattr(prm, "score_batch"):
        path_scores = prm.score_batch(paths)
    else:
        path_scores = [prm.score(problem, path) for problem, path in paths]
    scores = np.zeros(len(dataset))
    for (_, _, labelled), step_scores in zip(merged, path_scores, strict=True):
        for step, rows in labelled.items():
            scores[rows] = step_scores[step]
    hard = np.asarray(dataset["hard_label"], dtype=np.float64)
    kinds = [classify_step(step).value for step in dataset["step"]]
    by_kind = {}
    for kind in sorted(set(kinds)):
        inside = np.asarray(kinds) == kind
        has_both = 0 < hard[inside].sum() < inside.sum()
        by_kind[kind] = roc_auc(scores[inside], hard[inside]) if has_both else math.nan
    return PRMEvaluation(
        auc=roc_auc(scores, hard),
        auc_by_kind=by_kind,
        pair_accuracy=_pair_accuracy(dataset, scores),
        mean_score_good=float(scores[hard == 1].mean()),
        mean_score_bad=float(scores[hard == 0].mean()),
        steps=len(dataset),
        good_fraction=float(hard.mean()),
    )


def _pair_accuracy(dataset: Dataset, scores: np.ndarray) -> float:
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for index, (problem, prefix) in enumerate(zip(dataset["problem"], dataset["prefix"], strict=True)):
        groups.setdefault((problem, tuple(prefix)), []).append(index)
    hard = dataset["hard_label"]
    wins = []
    for members in groups.values():
        good = [i for i in members if hard[i] == 1]
        bad = [i for i in members if hard[i] == 0]
        wins += [
            1.0 if scores[g] > scores[b] else 0.5 if scores[g] == scores[b] else 0.0
            for g in good
            for b in bad
        ]
    return float(np.mean(wins)) if wins else math.nan


__all__ = ["PRMEvaluation", "evaluate_prm", "merge_paths", "roc_auc"]
