"""Calibration of a process reward model: Platt scaling of its raw step values against step labels.

A PRM's step score is ``sigmoid(scale * raw + bias)`` (:class:`~codegym.models.prm_format.PRMFormat`).
For the likelihood head, ``raw`` (a mean log-probability) has no natural zero, so before training
:func:`calibrate` fits ``scale`` and ``bias`` to the labels by cross-entropy; training then moves them
with the model. Scoring (:mod:`codegym.models.hf_prm`) only reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from codegym.errors import UserError
from codegym.models.prm_format import ScoringWindow

if TYPE_CHECKING:
    import torch

    from codegym.models.hf_prm import HFProcessRewardModel

MIN_SCALE = 1e-3  # the calibration's smallest scale: it may flatten a raw score, never turn it around


def platt_scaling(
    raw: torch.Tensor, labels: torch.Tensor, *, steps: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, bias)`` minimising the cross-entropy of ``sigmoid(scale * raw + bias)`` against ``labels``
    (each in [0, 1]), by L-BFGS on standardized values (one learning rate suits any raw scale).

    The scale stays at least :data:`MIN_SCALE`: calibration maps the raw score to a probability and must
    not turn it around. Fitted freely on a few labels that happen to favour unlikely steps, it went
    negative (-1.73 on the 11 tree rows of a small loop run) and the PRM then ranked held-out steps
    backwards (AUC 0.10 where its raw score gave 0.90)."""
    import torch
    import torch.nn.functional as F

    raw = raw.detach().float().clone()
    center, spread = raw.mean(), raw.std().clamp_min(1e-6)
    # The standardized scale is softplus(w0) + the floor: positive whatever the labels say.
    floor = MIN_SCALE * spread
    weights = torch.tensor([0.5413, 0.0], device=raw.device, requires_grad=True)  # softplus(0.5413) = 1

    def standardized_scale() -> torch.Tensor:
        return F.softplus(weights[0]) + floor

    optimizer = torch.optim.LBFGS([weights], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = standardized_scale() * (raw - center) / spread + weights[1]
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    scale = standardized_scale().detach() / spread
    bias = weights[1].detach() - scale * center
    return scale, bias


def calibrate(
    prm: HFProcessRewardModel, windows: Sequence[ScoringWindow], targets: Sequence[float], steps: int = 200
) -> None:
    """Fit ``prm``'s ``scale`` and ``bias`` so that ``sigmoid(scale * raw + bias)`` matches ``targets``
    (Platt scaling, cross-entropy); ``targets`` holds one value in [0, 1] per read span of ``windows``.

    Raises:
        UserError: not one target per read span.
    """
    import torch

    with torch.inference_mode():
        raw = torch.cat(
            [
                prm.step_logits(windows[start : start + prm.batch_size], calibrated=False)
                for start in range(0, len(windows), prm.batch_size)
            ]
        ).float()
    labels = torch.tensor(list(targets), dtype=torch.float32, device=prm.device)
    if raw.shape != labels.shape:
        raise UserError(
            f"calibrate needs one target per read span: {raw.numel()} spans, {labels.numel()} targets"
        )
    scale, bias = platt_scaling(raw, labels, steps=steps)
    prm.calibration.data = torch.stack([scale, bias]).float()


__all__ = ["MIN_SCALE", "calibrate", "platt_scaling"]
