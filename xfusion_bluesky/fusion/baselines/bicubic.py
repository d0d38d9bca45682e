"""Bicubic upsampling of the reference LR frame.

PyTorch's bicubic (``align_corners=False``, no antialias) uses OpenCV INTER_CUBIC's
kernel (a = −0.75), half-pixel mapping and replicated borders, so it reproduces the
paper's ``cv2.resize`` baseline to ~2e-7 (``docs/spec/baselines_and_metrics.md`` §4).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.nn import functional as F

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.protocols import FusedBatch

__all__ = ["BicubicFuser", "bicubic_upsample"]

logger = logging.getLogger(__name__)


def bicubic_upsample(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Upsample ``frames`` bicubically to ``size`` and clip to [0, 1].

    Parameters
    ----------
    frames : Tensor, (n, c, h, w) float in [0, 1]
        Frames in normalised space.
    size : (int, int)
        Output (H, W), e.g. the HR frame size.

    Returns
    -------
    Tensor, (n, c, H, W)
        Clipped to [0, 1]: bicubic overshoots at edges (−0.2 … 1.24 on noise).
    """
    upsampled = F.interpolate(
        frames, size=size, mode="bicubic", align_corners=False, antialias=False
    )
    return upsampled.clamp_(0.0, 1.0)


class BicubicFuser:
    """Bicubic baseline as a :class:`~xfusion_bluesky.fusion.protocols.Fuser`.

    Uses only the reference LR frame; attention scores are NaN. Always computes in
    float32 whatever ``dtype`` the engine asks for (the baseline costs nothing).
    """

    name = "bicubic"
    model_id: str | None = None
    size_multiple = 1

    def __init__(self) -> None:
        self.config: dict[str, Any] = {
            "mode": "bicubic",
            "align_corners": False,
            "antialias": False,
            "clip": [0.0, 1.0],
        }

    @classmethod
    def create(
        cls,
        model: Any,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> BicubicFuser:
        """Build the fuser for the engine; bicubic takes no model."""
        if model is not None:
            raise InvalidInputError(
                f"method 'bicubic' takes no model; got model={model!r}: pass model=None"
            )
        if dtype not in (None, torch.float32):
            logger.debug("bicubic ignores dtype=%s and computes in float32", dtype)
        return cls()

    def fuse_batch(self, lr: torch.Tensor, hr: torch.Tensor) -> FusedBatch:
        """Upsample the reference LR frame ``lr[:, 1]`` to the HR size of ``hr``."""
        reference = lr[:, lr.shape[1] // 2].float()  # (b, 1, h, w)
        fused = bicubic_upsample(reference, (hr.shape[-2], hr.shape[-1]))
        nan = torch.full((lr.shape[0],), float("nan"), device=lr.device)
        return FusedBatch(fused, nan, nan.clone())
