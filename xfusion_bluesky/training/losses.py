"""Training losses: Charbonnier (from fusion.losses) and the attention term."""

from __future__ import annotations

import torch

from xfusion_bluesky.fusion.losses import charbonnier_loss

# charbonnier_loss lives in fusion.losses (per-run adaptation uses it too); it is
# re-exported here for the training code and its callers.
__all__ = ["attention_loss", "charbonnier_loss", "hr_share"]


def hr_share(hr: torch.Tensor, target: torch.Tensor, *, pool: int = 4) -> torch.Tensor:
    """Return each HR frame's share of the likeness to the reference instant.

    Each HR frame's distance from the truth at the reference time is the mean
    squared difference after ``pool``-fold average pooling (the LR grid, where the
    attention scores live). The HR frame before gets the share
    ``d_after / (d_before + d_after)`` and the one after the rest: 1 and 0 when the
    HR frame before was taken at the reference time, ½ when both are equally far
    (or both equal the truth), small for a foreign or distant frame. Being a
    ratio, it spans [0, 1] whatever the scene's contrast and however much of it
    stands still, which an absolute similarity does not.

    Parameters
    ----------
    hr : Tensor, (b, 2, 1, H, W)
        HR frames before and after.
    target : Tensor, (b, 1, H, W)
        Truth at the reference time.

    Returns
    -------
    Tensor, (b, 2)
        Shares of the HR frames before and after; each row sums to 1.
    """
    coarse_hr = torch.nn.functional.avg_pool2d(hr[:, :, 0], pool)
    coarse_target = torch.nn.functional.avg_pool2d(target, pool)
    distance = ((coarse_hr - coarse_target) ** 2).mean(dim=(2, 3))  # (b, 2)
    # A tiny floor turns 0/0 (both HR frames equal the truth) into ½ each.
    distance = distance + 1e-12
    return distance.flip(1) / distance.sum(dim=1, keepdim=True)


def attention_loss(
    attention: torch.Tensor,
    hr: torch.Tensor,
    target: torch.Tensor,
    *,
    level: float = 1.0,
) -> torch.Tensor:
    """Return ``Σ (score − level · share)²`` over both HR frames of every window.

    Charbonnier alone leaves the attention scores free: the fusion layer after the
    sigmoid gate absorbs their level, and a small network learns to fuse without
    its scores saying which HR frame it used. This term asks the raw backward and
    forward scores (spec §5) to equal ``level`` times :func:`hr_share`, so that a
    score tells how much its HR frame, rather than the other, shows the reference
    instant: the HR frame taken at the reference time scores ``level``, a foreign
    or distant one about 0. A score sees only its own HR frame and the reference,
    so it can learn the share only as far as that pair predicts it.

    Parameters
    ----------
    attention : Tensor, (b, 5)
        Raw scores of [LR t−s, LR t, LR t+s, HR before, HR after].
    hr, target : Tensor
        As for :func:`hr_share`.
    level : float
        Score of an HR frame that shows exactly the reference instant.
    """
    share = hr_share(hr, target)
    return ((attention[:, 3:5] - level * share) ** 2).sum()
