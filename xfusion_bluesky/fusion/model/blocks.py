"""Residual block and small shared helpers of EDVR / EDVR-STF.

Conventions: docs/spec/edvr_stf.md §3.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Slope of every LeakyReLU in EDVR-STF (docs/spec/edvr_stf.md §3 conventions).
LRELU_SLOPE = 0.1


def conv3(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Conv2d:
    """Return a 3×3 convolution with bias and "same" padding (stride 1) or halving."""
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1)


def conv1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """Return a 1×1 convolution with bias."""
    return nn.Conv2d(in_channels, out_channels, 1)


def zero_bias(conv: nn.Conv2d) -> None:
    """Set a convolution's bias (if it has one) to zero, in place."""
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU with the network's slope of 0.1, in place.

    Every call site passes a tensor it has just made (a conv, pixel-shuffle or DCN
    output) and does not use again, so overwriting it saves one full-size copy per
    activation — about 0.4 GB each at the HR stage of a 250×400 LR frame.
    """
    return F.leaky_relu(x, LRELU_SLOPE, inplace=True)


def up2(x: torch.Tensor) -> torch.Tensor:
    """Upsample ×2, bilinear, ``align_corners=False`` (pyramid and TSA upsampler)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ResidualBlockNoBN(nn.Module):
    """``x + conv3(ReLU(conv3(x)))``: the residual block of EDVR, without batch norm.

    The inner activation is a plain ReLU (not the LeakyReLU used everywhere else) and
    the residual scale is 1, as in the authors' implementation (docs/spec/edvr_stf.md
    §3).

    Parameters
    ----------
    num_feat : int
        Channels in and out.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = conv3(num_feat, num_feat)
        self.conv2 = conv3(num_feat, num_feat)
        # Small initial residuals keep a deep stack close to identity
        # (docs/spec/edvr_stf.md §3.5).
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            zero_bias(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` of shape (b, c, h, w)."""
        return x + self.conv2(F.relu(self.conv1(x)))


def residual_stack(num_blocks: int, num_feat: int) -> nn.Sequential:
    """Return ``num_blocks`` residual blocks in a row (keys ``N.conv1`` …)."""
    return nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_blocks)))
