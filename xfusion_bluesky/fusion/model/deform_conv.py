"""Modulated deformable conv: pure PyTorch; torchvision when it imports.

The pure-PyTorch path follows ``torchvision.ops.deform_conv2d`` exactly
(docs/spec/edvr_stf.md §3.2):
offset channel ``n`` belongs to deformable group ``n // (2K)`` and kernel tap
``(n % 2K) // 2`` and holds dy when ``n`` is even, dx when odd; taps are numbered
row-major; a sample is bilinear, zero outside ``(-1, size)`` and each corner that
falls outside the image counts as zero. In float64 it reproduces torchvision to
rounding, which is what lets checkpoints trained with torchvision load unchanged.

It has two samplings, chosen with :func:`sampling_implementation`: ``"reference"``
(the first, written for clarity: four masked gathers of the whole input) and
``"fast"`` (the default: a zero-padded input needs no masks, and the four corners
are gathered and weighted in cache-sized chunks). They perform the same float
operations in the same order, so their outputs are equal, bit for bit.

Under autocast the whole deformable convolution, from the offsets on, runs in
float32 (:func:`~xfusion_bluesky.fusion.precision.float32_region`): sampling
positions need every bit of float32's mantissa.
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
from xfusion_bluesky.fusion.model.sampling import (
    SAMPLINGS,
    Sampling,
    current_sampling,
    positions,
    sample_fast,
    sample_reference,
    sampling_implementation,
)
from xfusion_bluesky.fusion.precision import float32_region, to_float32

__all__ = [
    "SAMPLINGS",
    "DCNv2Pack",
    "current_sampling",
    "deform_conv2d",
    "deform_conv2d_torch",
    "sampling_implementation",
    "torchvision_available",
]

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


def _check_shapes(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor
) -> tuple[int, int]:
    """Return (taps, deformable groups); raise ValueError on inconsistent shapes."""
    c_in = x.shape[1]
    c_w, kh, kw = weight.shape[1:]
    if c_w != c_in:
        raise ValueError(f"weight expects {c_w} input channels; x has {c_in}")
    taps = kh * kw
    groups = offset.shape[1] // (2 * taps)
    if groups * 2 * taps != offset.shape[1] or c_in % groups:
        raise ValueError(
            f"offset has {offset.shape[1]} channels: expected 2·groups·{taps} with "
            f"groups dividing the {c_in} input channels"
        )
    return taps, groups


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
    sampling: Sampling | None = None,
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
    sampling : {"fast", "reference"}, optional
        Which sampling; None: :func:`current_sampling`.

    Returns
    -------
    Tensor, (b, c_out, h_out, w_out)
        float32 for bfloat16/float16 inputs or under autocast (the whole
        computation runs in float32 there), else the inputs' dtype.
    """
    taps, groups = _check_shapes(x, offset, weight)
    name = sampling or current_sampling()
    if name not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}; got {name!r}")
    with float32_region():
        x, offset, weight = to_float32(x), to_float32(offset), to_float32(weight)
        bias, mask = to_float32(bias), to_float32(mask)
        b, c_in, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        h_out, w_out = offset.shape[-2:]
        pos_y, pos_x = positions(offset, (kh, kw), stride, padding, dilation, x.dtype)
        x = x.reshape(b, groups, c_in // groups, h, w)  # a view, channels-last too
        if mask is not None:
            mask = mask.reshape(b, groups, 1, taps * h_out * w_out)
        if name == "fast":
            cols = sample_fast(x, pos_y, pos_x, mask)
        else:
            cols = sample_reference(x, pos_y, pos_x)
            if mask is not None:
                cols = cols * mask
        cols = cols.reshape(b, c_in * taps, h_out * w_out)
        out = weight.reshape(c_out, c_in * taps) @ cols
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
    Either path computes in float32 under autocast.
    """
    use_tv = backend == "torchvision" or (backend == "auto" and torchvision_available())
    if use_tv:
        if _torchvision_op is None:
            raise RuntimeError(
                "backend='torchvision' asked for, but torchvision.ops does not import "
                "beside this torch build; use backend='auto' or 'torch'"
            )
        with float32_region():
            x, offset, weight = to_float32(x), to_float32(offset), to_float32(weight)
            bias, mask = to_float32(bias), to_float32(mask)
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
        """Convolve ``x`` (b, c, h, w) at offsets predicted from ``offset_feat``.

        Under autocast the offsets are predicted, and ``x`` sampled, in float32.
        """
        with float32_region():
            x, offset_feat = to_float32(x), to_float32(offset_feat)
            o1, o2, m = torch.chunk(self.conv_offset(offset_feat), 3, dim=1)
            offset = torch.cat((o1, o2), dim=1)
            if offset.device.type == "cpu":  # on a GPU the check would stall the queue
                mean_offset = float(torch.linalg.vector_norm(offset.detach(), 1))
                mean_offset /= max(offset.numel(), 1)
                if mean_offset > 50:  # far beyond any real motion: alignment diverges
                    logger.warning(
                        "deformable offsets average %.1f px (> 50)", mean_offset
                    )
            return deform_conv2d(
                x, offset, self.weight, self.bias, padding=1, mask=torch.sigmoid(m)
            )
