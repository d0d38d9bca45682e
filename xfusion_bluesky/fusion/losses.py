"""Charbonnier loss, as the authors trained EDVR-STF (spec §8); adaptation uses it."""

from __future__ import annotations

import torch

__all__ = ["charbonnier_loss"]


def charbonnier_loss(
    fused: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-12
) -> torch.Tensor:
    """Return ``Σ sqrt((fused − target)² + eps)``, summed over every pixel.

    A smooth L1: robust to the outliers that noisy LR frames produce while still
    differentiable at zero. The authors sum rather than average (their yml's
    ``reduction: sum``); with Adam the scale only shifts the effective epsilon.

    Parameters
    ----------
    fused, target : Tensor
        Same shape, e.g. (b, 1, H, W).
    eps : float
        Squared smoothing width.
    """
    if fused.shape != target.shape:
        raise ValueError(
            f"fused {tuple(fused.shape)} and target {tuple(target.shape)} differ"
        )
    return torch.sqrt((fused - target) ** 2 + eps).sum()
