"""Training on what the env produces: policy SFT, the PRM, the TCG, policy gradient, rejection-sampling
fine-tuning and PPO.

Every trainer writes one run folder (:mod:`codegym.training.run`): the model, its tokenizer and prompt
protocol, and a ``metrics.json`` (``tcg_metrics.json`` for the TCG) with the run's settings and figures,
written whole or not at all. Policy gradient, rejection-sampling fine-tuning and PPO resume from their
own checkpoints in that folder.
Everything here loads torch, transformers, TRL or stable-baselines3, so each name loads on first use.

Example:
    >>> from codegym.training import train_policy_gradient  # doctest: +SKIP
    >>> result = train_policy_gradient("tiny", "runs/pg", iterations=2)  # doctest: +SKIP
"""

from __future__ import annotations

from codegym.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    "codegym.training",
    {
        "train_policy": "codegym.training.policy_sft",
        "synthetic_episodes": "codegym.training.policy_sft",
        "PolicyTrainingResult": "codegym.training.policy_sft",
        "train_prm": "codegym.training.prm",
        "PRMTrainingResult": "codegym.training.prm",
        "train_tcg": "codegym.training.tcg",
        "TCGTrainResult": "codegym.training.tcg",
        "train_policy_gradient": "codegym.training.policy_gradient",
        "PolicyGradientResult": "codegym.training.policy_gradient",
        "train_rejection_sampling": "codegym.training.rejection_sampling",
        "RejectionSamplingResult": "codegym.training.rejection_sampling",
        "train_ppo": "codegym.training.ppo",
        "PPORun": "codegym.training.ppo",
    },
)

__all__ = [
    "PPORun",
    "PRMTrainingResult",
    "PolicyGradientResult",
    "PolicyTrainingResult",
    "RejectionSamplingResult",
    "TCGTrainResult",
    "synthetic_episodes",
    "train_policy",
    "train_policy_gradient",
    "train_ppo",
    "train_prm",
    "train_rejection_sampling",
    "train_tcg",
]
