"""Modulated deformable conv: pure PyTorch; torchvision when it imports.

The pure-PyTorch path follows ``torchvision.ops.deform_conv2d`` exactly
(docs/spec/edvr_stf.md §3.2):
offset channel ``n`` belongs to deformable group ``n // (2K)`` and kernel tap
``(n % 2K) // 2`` and holds dy when ``n`` is even, dx when odd; taps are numbered
row-major; a sample is bilinear, zero outside ``(-1, size)`` and each corner that
falls outside the image counts as zero. In float64 it reproduces torchvision to
rounding, which is what lets checkpoints trained with torchvision load unchanged.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from xfusion_bluesky.fusion.model.blocks import zero_bias

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "torchvision"]


def _import_torchvision_op() -> Callable[..., torch.Tensor] | None:
    """Return torchvision's compiled op, or None where it is absent or broken."""
    try:
        from torchvision.ops import deform_conv2d
    except (
        Exception
    ):  # a build mismatched with torch raises RuntimeError, not ImportError
        return None
    return deform_conv2d


_torchvision_op = _import_torchvision_op()

#: The fallback is said once per process, however many fusions (and threads) use it.
_fallback_said = threading.Event()
_fallback_lock = threading.Lock()


def _say_fallback() -> None:
    with _fallback_lock:
        if _fallback_said.is_set():
            return
        _fallback_said.set()
    logger.warning(
        "torchvision.ops.deform_conv2d is unavailable: using the pure-PyTorch "
        "deformable convolution (same results, slower; said once per process)"
    )


def torchvision_available() -> bool:
    """Return True when ``torchvision.ops.deform_conv2d`` imported."""
    return _torchvision_op is not None


def _sample_corners(
    x: torch.Tensor, pos_y: torch.Tensor, pos_x: torch.Tensor
) -> torch.Tensor:
    """Bilinearly sample ``x`` at fractional positions with torchvision's border rule.

    Parameters
    ----------
    x : Tensor, (b, g, cg, h, w)
        Input split into ``g`` deformable groups of ``cg`` channels.
    pos_y, pos_x : Tensor, (b, g, p)
        Sampling positions in pixels, one per (group, tap × output pixel).

    Returns
    -------
    Tensor, (b, g, cg, p)
    """
    b, g, cg, h, w = x.shape
    flat = x.reshape(b, g, cg, h * w)
    y0 = torch.floor(pos_y)
    x0 = torch.floor(pos_x)
    ly, lx = pos_y - y0, pos_x - x0
    hy, hx = 1 - ly, 1 - lx
    y0i, x0i = y0.long(), x0.long()
    # A sample whose position lies on or beyond one pixel outside the image is zero.
    inside = (pos_y > -1) & (pos_y < h) & (pos_x > -1) & (pos_x < w)
    value = torch.zeros((b, g, cg, pos_y.shape[-1]), dtype=x.dtype, device=x.device)
    corners = (
        (y0i, x0i, hy * hx),
        (y0i, x0i + 1, hy * lx),
        (y0i + 1, x0i, ly * hx),
        (y0i + 1, x0i + 1, ly * lx),
    )
    for cy, cx, weight in corners:
        valid = inside & (cy >= 0) & (cy <= h - 1) & (cx >= 0) & (cx <= w - 1)
        index = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).unsqueeze(2)
        corner = flat.gather(3, index.expand(b, g, cg, index.shape[-1]))
        corner = corner * valid.unsqueeze(2).to(x.dtype)
        value = value + weight.unsqueeze(2) * corner
    return value


def deform_conv2d_torch(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Modulated deformable 2-D convolution in plain PyTorch (torchvision semantics).

    Parameters
    ----------
    x : Tensor, (b, c_in, h, w)
    offset : Tensor, (b, 2·g·kh·kw, h_out, w_out)
        Interleaved (dy, dx) per deformable group ``g`` and kernel tap.
    weight : Tensor, (c_out, c_in, kh, kw)
    bias : Tensor, (c_out,), optional
    stride, padding, dilation : int
        As for ``torch.nn.Conv2d`` (same value on both axes).
    mask : Tensor, (b, g·kh·kw, h_out, w_out), optional
        Modulation scalars (already through a sigmoid); None means all ones.

    Returns
    -------
    Tensor, (b, c_out, h_out, w_out)
    """
    b, c_in, h, w = x.shape
    c_out, c_w, kh, kw = weight.shape
    if c_w != c_in:
        raise ValueError(f"weight expects {c_w} input channels; x has {c_in}")
    taps = kh * kw
    h_out, w_out = offset.shape[-2:]
    groups = offset.shape[1] // (2 * taps)
    if groups * 2 * taps != offset.shape[1] or c_in % groups:
        raise ValueError(
            f"offset has {offset.shape[1]} channels: expected 2·groups·{taps} with "
            f"groups dividing the {c_in} input channels"
        )
    # Regular grid of each tap, (taps, h_out, w_out), then add the learned offsets.
    ki = torch.arange(kh, device=x.device, dtype=x.dtype).repeat_interleave(kw)
    kj = torch.arange(kw, device=x.device, dtype=x.dtype).repeat(kh)
    oy = torch.arange(h_out, device=x.device, dtype=x.dtype) * stride - padding
    ox = torch.arange(w_out, device=x.device, dtype=x.dtype) * stride - padding
    base_y = oy.view(1, -1, 1) + dilation * ki.view(-1, 1, 1)
    base_x = ox.view(1, 1, -1) + dilation * kj.view(-1, 1, 1)
    offset = offset.view(b, groups, taps, 2, h_out, w_out)
    pos_y = (base_y + offset[:, :, :, 0]).reshape(b, groups, -1)
    pos_x = (base_x + offset[:, :, :, 1]).reshape(b, groups, -1)
    cols = _sample_corners(x.view(b, groups, c_in // groups, h, w), pos_y, pos_x)
    cols = cols.view(b, c_in, taps, h_out * w_out)  # (b, c_in, taps, p)
    if mask is not None:
        mask = mask.reshape(b, groups, 1, taps, h_out * w_out)
        cols = (cols.view(b, groups, c_in // groups, taps, -1) * mask).view_as(cols)
    out = weight.reshape(c_out, c_in * taps) @ cols.reshape(b, c_in * taps, -1)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(b, c_out, h_out, w_out)


def deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    mask: torch.Tensor | None = None,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Modulated deformable conv: torchvision's op when it imports, else pure PyTorch.

    Same arguments as :func:`deform_conv2d_torch`; ``backend`` forces one path.
    """
    use_tv = backend == "torchvision" or (backend == "auto" and torchvision_available())
    if use_tv:
        if _torchvision_op is None:
            raise RuntimeError(
                "backend='torchvision' asked for, but torchvision.ops does not import "
                "beside this torch build; use backend='auto' or 'torch'"
            )
        return _torchvision_op(
            x,
            offset,
            weight,
            bias,
            stride=(stride, stride),
            padding=(padding, padding),
            dilation=(dilation, dilation),
            mask=mask,
        )
    if backend == "auto" and not _fallback_said.is_set():
        _say_fallback()
    return deform_conv2d_torch(
        x,
        offset,
        weight,
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        mask=mask,
    )


class DCNv2Pack(nn.Module):
    """Modulated deformable 3×3 conv whose offsets come from a separate feature.

    ``conv_offset`` maps the offset feature to ``27·g`` channels, split in three equal
    parts ``o1 | o2 | m``; ``offset = cat(o1, o2)`` (torchvision's interleaved dy, dx
    layout) and ``mask = sigmoid(m)`` (docs/spec/edvr_stf.md §3.2, EDVR paper Fig. 3).

    Parameters
    ----------
    num_feat : int
        Channels in and out of the deformable conv and of the offset feature.
    deformable_groups : int
        Number of deformable groups; must divide ``num_feat``.
    """

    def __init__(self, num_feat: int, deformable_groups: int) -> None:
        super().__init__()
        if num_feat % deformable_groups:
            raise ValueError(
                f"deformable_groups={deformable_groups} must divide num_feat={num_feat}"
            )
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(torch.empty(num_feat, num_feat, 3, 3))
        self.bias = nn.Parameter(torch.zeros(num_feat))
        self.conv_offset = nn.Conv2d(num_feat, 3 * 9 * deformable_groups, 3, 1, 1)
        bound = 1 / math.sqrt(9 * num_feat)
        nn.init.uniform_(self.weight, -bound, bound)
        # Zero offsets and a 0.5 mask at start: the conv begins as a plain conv.
        nn.init.zeros_(self.conv_offset.weight)
        zero_bias(self.conv_offset)

    def forward(self, x: torch.Tensor, offset_feat: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` (b, c, h, w) at offsets predicted from ``offset_feat``."""
        o1, o2, m = torch.chunk(self.conv_offset(offset_feat), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        mean_offset = float(offset.detach().abs().mean())
        if mean_offset > 50:  # far beyond any real motion: alignment is diverging
            logger.warning("deformable offsets average %.1f px (> 50)", mean_offset)
        return deform_conv2d(
            x, offset, self.weight, self.bias, padding=1, mask=torch.sigmoid(m)
        )
