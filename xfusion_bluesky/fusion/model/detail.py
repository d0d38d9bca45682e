"""EDVR-STF + HR detail: a variant beyond the paper that carries HR detail at HR size.

EDVR-STF brings the HR frames down to the LR grid (two 3×3/2 max-pools) before
alignment and fusion, so everything finer than the LR pixel pitch has to be rebuilt
from C LR-resolution features by the two pixel-shuffles. Where little moves, the HR
frame before or after the reference instant already holds that detail pixel for
pixel, and the network cannot pass it through (measured in docs/training.md).

:class:`EDVRSTFDetail` keeps EDVR-STF unchanged as its backbone and adds a small
head that works at HR resolution. For each HR frame ``j`` it predicts a per-pixel
weight ``a_j`` and returns::

    fused = base + a_before · (HR_before − base) + a_after · (HR_after − base) + r

where ``base`` is EDVR-STF's output and ``r`` a small residual. The head sees
``base``, each ``HR_j − base``, each HR frame's detail above the LR pitch
(``HR_j − up(blockmean(HR_j))``), how far each HR frame's 4×4 block mean is from
the reference LR frame (zero where the scene did not change between the two
instants, which is where copying is safe) and ``|HR_before − HR_after|`` (zero
where the two HR frames agree). Its last convolution starts at
zero, so a freshly built head returns exactly EDVR-STF's output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from xfusion_bluesky.fusion.model.blocks import conv3, lrelu, zero_bias
from xfusion_bluesky.fusion.model.edvr_stf import (
    EDVRSTF,
    SCALE,
    SMALL_CONFIG,
    FrameFeatures,
    FusionOutput,
)

__all__ = ["DETAIL_CONFIG", "DetailHead", "EDVRSTFDetail", "edvr_stf_detail_small"]

#: Input channels of the head: base, 2 × (HR − base), 2 × HR detail, 2 × LR mismatch,
#: and the magnitudes |HR before − HR after|, 2 × |LR mismatch|.
_HEAD_INPUTS = 10
#: Gain on the difference inputs: they are ~0.01, and a first layer fed that little
#: learns ~100× slower under Adam than one fed O(1) values.
_GAIN = 10.0
#: Outputs: the weights of the HR frames before and after, and the residual.
_HEAD_OUTPUTS = 3
#: Dilations of the body convolutions: a 23-pixel receptive field at HR size for
#: a few thousand weights, so the weight map can follow a moving edge's block.
_DILATIONS = (1, 2, 4, 1)

#: Hyper-parameters of the detail head added to ``SMALL_CONFIG``.
DETAIL_CONFIG: dict[str, int] = {"detail_feat": 16, "detail_blocks": 4}


class DetailHead(nn.Module):
    """The HR-resolution head: per-pixel HR-frame weights and a residual.

    Parameters
    ----------
    num_feat : int
        Channels of the hidden layers.
    num_blocks : int
        Hidden 3×3 convolutions after the first (dilations cycle through
        ``(1, 2, 4, 1)``).
    """

    def __init__(self, num_feat: int = 16, num_blocks: int = 4) -> None:
        super().__init__()
        self.conv_in = conv3(_HEAD_INPUTS, num_feat)
        self.body = nn.ModuleList(
            nn.Conv2d(num_feat, num_feat, 3, 1, d, dilation=d)
            for d in (_DILATIONS[i % len(_DILATIONS)] for i in range(num_blocks))
        )
        self.conv_out = conv3(num_feat, _HEAD_OUTPUTS)
        # Zero output: the variant starts as exactly the EDVR-STF it is built on.
        nn.init.zeros_(self.conv_out.weight)
        zero_bias(self.conv_out)

    def forward(
        self, base: torch.Tensor, lr_ref: torch.Tensor, hr: torch.Tensor
    ) -> torch.Tensor:
        """Return the fused frame ``base`` corrected with the HR frames' detail.

        Parameters
        ----------
        base : Tensor, (b, 1, 4h, 4w)
            EDVR-STF's fused frame.
        lr_ref : Tensor, (b, 1, h, w)
            The reference LR frame.
        hr : Tensor, (b, 2, 1, 4h, 4w)
            HR frames [before, after].
        """
        b, k = hr.shape[:2]
        detail, block_mean = (
            x.view(b, k, *x.shape[1:]) for x in self.frame_terms(hr.flatten(0, 1))
        )
        return self.correct(base, lr_ref, hr, detail, block_mean)

    @staticmethod
    def frame_terms(hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return what the head reads of each HR frame alone, whatever the window.

        Parameters
        ----------
        hr : Tensor, (k, 1, 4h, 4w)
            HR frames.

        Returns
        -------
        detail : Tensor, (k, 1, 4h, 4w)
            The frame's detail finer than the LR pitch,
            ``HR − up(blockmean(HR))``.
        block_mean : Tensor, (k, 1, h, w)
            The frame's 4×4 block means, on the LR grid.
        """
        block_mean = F.avg_pool2d(hr, SCALE)
        smooth = F.interpolate(
            block_mean, scale_factor=SCALE, mode="bilinear", align_corners=False
        )
        return hr - smooth, block_mean

    def correct(
        self,
        base: torch.Tensor,
        lr_ref: torch.Tensor,
        hr: torch.Tensor,
        detail: torch.Tensor,
        block_mean: torch.Tensor,
    ) -> torch.Tensor:
        """Return ``base`` corrected with the HR frames, from their frame terms.

        Parameters
        ----------
        base, lr_ref, hr
            As for :meth:`forward`.
        detail : Tensor, (b, 2, 1, 4h, 4w)
            :meth:`frame_terms` ``detail`` of the HR frames [before, after].
        block_mean : Tensor, (b, 2, 1, h, w)
            :meth:`frame_terms` ``block_mean`` of the same frames.
        """
        hr_before, hr_after = hr[:, 0], hr[:, 1]
        differences = [hr_before - base, hr_after - base, detail[:, 0], detail[:, 1]]
        mismatches = [
            # Zero where the HR frame's block means equal the reference LR frame:
            # the scene did not change there (up to LR noise).
            F.interpolate(block_mean[:, j] - lr_ref, scale_factor=SCALE, mode="nearest")
            for j in (0, 1)
        ]
        # Two HR frames that agree bracket a region that stood still (no LR noise).
        magnitudes = [(hr_before - hr_after).abs(), *(m.abs() for m in mismatches)]
        features = torch.cat([*differences, *mismatches, *magnitudes], dim=1)
        x = lrelu(self.conv_in(torch.cat([base, _GAIN * features], dim=1)))
        for conv in self.body:
            x = lrelu(conv(x))
        weights = self.conv_out(x)
        return (
            base
            + weights[:, 0:1] * (hr_before - base)
            + weights[:, 1:2] * (hr_after - base)
            + weights[:, 2:3]
        )


class EDVRSTFDetail(EDVRSTF):
    """EDVR-STF with :class:`DetailHead` on its output (method ``edvr_stf_detail``).

    Same parameters as :class:`~xfusion_bluesky.fusion.model.edvr_stf.EDVRSTF`,
    plus ``detail_feat`` and ``detail_blocks`` for the head. The backbone's
    weights keep EDVR-STF's names, so an EDVR-STF checkpoint loads into it with
    :meth:`load_backbone`. ``forward`` returns EDVR-STF's attention scores
    unchanged.

    Examples
    --------
    >>> model = EDVRSTFDetail(num_feat=16, num_extract_block=1, num_reconstruct_block=1)
    >>> out = model(torch.rand(1, 3, 1, 8, 8), torch.rand(1, 2, 1, 32, 32))
    >>> tuple(out.fused.shape), tuple(out.attention.shape)
    ((1, 1, 32, 32), (1, 5))
    """

    def __init__(
        self,
        num_in_ch: int = 1,
        num_out_ch: int = 1,
        num_feat: int = 128,
        num_frame: int = 3,
        num_frame_hi: int = 2,
        deformable_groups: int = 8,
        num_extract_block: int = 5,
        num_reconstruct_block: int = 40,
        detail_feat: int = 16,
        detail_blocks: int = 4,
    ) -> None:
        super().__init__(
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            num_frame=num_frame,
            num_frame_hi=num_frame_hi,
            deformable_groups=deformable_groups,
            num_extract_block=num_extract_block,
            num_reconstruct_block=num_reconstruct_block,
        )
        if num_in_ch != 1 or num_out_ch != 1:
            raise ValueError(
                "the detail head fuses one-channel radiographs: num_in_ch and "
                f"num_out_ch must be 1; got {num_in_ch} and {num_out_ch}"
            )
        self.config["detail_feat"] = detail_feat
        self.config["detail_blocks"] = detail_blocks
        self.detail = DetailHead(detail_feat, detail_blocks)
        #: When True the backbone runs without gradients (head-only training).
        self.backbone_frozen = False

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Stop (or restart) gradients through the EDVR-STF backbone.

        A head-only step then costs one backbone forward pass and the head's
        forward and backward, with no gradient through the deformable convolutions.
        """
        self.backbone_frozen = frozen
        for name, param in self.named_parameters():
            if not name.startswith("detail."):
                param.requires_grad_(not frozen)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Return the backbone's weights under EDVR-STF's names."""
        return {
            k: v for k, v in self.state_dict().items() if not k.startswith("detail.")
        }

    def load_backbone(self, state: dict[str, Any]) -> None:
        """Load EDVR-STF weights into the backbone, leaving the head as it is.

        Raises
        ------
        RuntimeError
            ``state`` is not a complete EDVR-STF state dict of this size.
        """
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("detail.")]
        if missing or result.unexpected_keys:
            raise RuntimeError(
                "not an EDVR-STF state dict of this size: missing keys "
                f"{missing}; unexpected keys {result.unexpected_keys}"
            )

    def _backbone_grad(self) -> torch.autograd.grad_mode.set_grad_enabled:
        """Return the grad mode of the backbone: off while it is frozen."""
        return torch.set_grad_enabled(
            torch.is_grad_enabled() and not self.backbone_frozen
        )

    def forward(self, lr: torch.Tensor, hr: torch.Tensor | None = None) -> FusionOutput:
        """Fuse one window per batch item: EDVR-STF, then the detail head.

        Parameters
        ----------
        lr : Tensor, (b, 3, 1, h, w)
            LR frames [t−s, t, t+s]; h and w multiples of 4.
        hr : Tensor, (b, 2, 1, 4h, 4w)
            HR frames [before, after] the reference instant t.

        Returns
        -------
        FusionOutput
            ``fused`` (b, 1, 4h, 4w) and EDVR-STF's ``attention`` (b, 5).

        Raises
        ------
        ValueError
            ``hr`` is missing or not (b, 2, 1, 4h, 4w).
        """
        return super().forward(lr, hr)

    def frame_features(
        self, lr: torch.Tensor | None, hr: torch.Tensor | None = None
    ) -> tuple[FrameFeatures, FrameFeatures]:
        """EDVR-STF's per-frame features; HR frames add the head's frame terms.

        HR features are ``(frame, L1, L2, L3, detail, block_mean)``, see
        :meth:`DetailHead.frame_terms`.
        """
        with self._backbone_grad():
            lr_feat, hr_feat = super().frame_features(lr, hr)
        if hr_feat:
            hr_feat = (*hr_feat, *self.detail.frame_terms(hr_feat[0]))
        return lr_feat, hr_feat

    def fuse_window_features(
        self, lr: FrameFeatures, hr: FrameFeatures = ()
    ) -> FusionOutput:
        """EDVR-STF on the windows' features, then the detail head.

        Raises
        ------
        ValueError
            ``hr`` is empty: the head needs the HR frames.
        """
        if not hr:
            raise ValueError("EDVRSTFDetail fuses HR frames too: call model(lr, hr)")
        with self._backbone_grad():
            out = super().fuse_window_features(lr, hr)
        fused = self.detail.correct(
            out.fused, lr[0][:, self.ref_index], hr[0], hr[4], hr[5]
        )
        return FusionOutput(fused=fused, attention=out.attention)


def edvr_stf_detail_small(**overrides: Any) -> EDVRSTFDetail:
    """Build the variant on the shipped small EDVR-STF (``SMALL_CONFIG``)."""
    return EDVRSTFDetail(**(SMALL_CONFIG | DETAIL_CONFIG | overrides))
