"""EDVRSTF and LR-only EDVR in the figure's order; named presets.

EDVR-STF (Tang et al. 2025, Fig. 1) adds an HR branch to EDVR: the HR frames before
and after the reference instant are brought down to the LR grid by two conv + max-pool
stages, then share the feature extraction, PCD alignment and TSA fusion with the three
LR frames; the fused feature is reconstructed and upsampled ×4 on top of a bilinear
upsampling of the reference LR frame. Attribute names are the authors' so that their
checkpoints load key for key (docs/spec/edvr_stf.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from xfusion_bluesky.fusion.model.blocks import conv3, lrelu, residual_stack
from xfusion_bluesky.fusion.model.pcd import PCDAlignment
from xfusion_bluesky.fusion.model.tsa import TSAFusion

#: Spatial scale between LR and HR, fixed by two pixel-shuffles and two max-pools.
SCALE = 4

#: One frame kind's per-frame tensors, frames along dim 0 (or windows × frames
#: along dims 0 and 1): the frame, its L1, L2, L3 features, then any extra terms.
FrameFeatures = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class FusionOutput:
    """What the networks return.

    Attributes
    ----------
    fused : Tensor, (b, 1, 4h, 4w)
        Fused frame(s), not clamped.
    attention : Tensor, (b, T)
        Raw attention score per input frame: [LR t−s, LR t, LR t+s, HR before,
        HR after] for EDVR-STF, the three LR frames for EDVR.
    """

    fused: torch.Tensor
    attention: torch.Tensor


class EDVR(nn.Module):
    """LR-only EDVR: PCD alignment + TSA fusion of ``num_frame`` LR frames, ×4 output.

    Parameters
    ----------
    num_in_ch, num_out_ch : int
        Image channels in and out (1 for x-ray radiographs).
    num_feat : int
        Feature channels C (paper: 128).
    num_frame : int
        LR frames per window (odd); the reference is the middle one.
    deformable_groups : int
        Deformable groups of every DCN (paper: 8).
    num_extract_block, num_reconstruct_block : int
        Residual blocks before alignment and after fusion (paper: 5 and 40).
    """

    num_frame_hi = 0  # HR frames per window; EDVRSTF overrides
    #: sha256 of the weights and the file they came from, set by ``load_model``.
    model_id: str | None = None
    source: str | None = None

    def __init__(
        self,
        num_in_ch: int = 1,
        num_out_ch: int = 1,
        num_feat: int = 128,
        num_frame: int = 3,
        deformable_groups: int = 8,
        num_extract_block: int = 5,
        num_reconstruct_block: int = 40,
    ) -> None:
        super().__init__()
        if num_frame < 1 or num_frame % 2 == 0:
            raise ValueError(f"num_frame must be odd and positive; got {num_frame}")
        self.config: dict[str, int] = {
            "num_in_ch": num_in_ch,
            "num_out_ch": num_out_ch,
            "num_feat": num_feat,
            "num_frame": num_frame,
            "deformable_groups": deformable_groups,
            "num_extract_block": num_extract_block,
            "num_reconstruct_block": num_reconstruct_block,
        }
        self.num_frame = num_frame
        self.ref_index = num_frame // 2
        c = num_feat
        self.conv_first = conv3(num_in_ch, c)
        self._add_hr_branch(num_in_ch, c)
        self.feature_extraction = residual_stack(num_extract_block, c)
        self.conv_l2_1 = conv3(c, c, stride=2)
        self.conv_l2_2 = conv3(c, c)
        self.conv_l3_1 = conv3(c, c, stride=2)
        self.conv_l3_2 = conv3(c, c)
        self.pcd_align = PCDAlignment(c, deformable_groups)
        self.fusion = TSAFusion(c, num_frame + self.num_frame_hi, self.ref_index)
        self.reconstruction = residual_stack(num_reconstruct_block, c)
        # The second upsampling stage is 64 channels wide whatever C is
        # (docs/spec/edvr_stf.md §3.4).
        self.upconv1 = conv3(c, 4 * c)
        self.upconv2 = conv3(c, 4 * 64)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = conv3(64, 64)
        self.conv_last = conv3(64, num_out_ch)

    def _add_hr_branch(self, num_in_ch: int, num_feat: int) -> None:
        """Register the HR feature branch; LR-only EDVR has none."""

    def forward(self, lr: torch.Tensor, hr: torch.Tensor | None = None) -> FusionOutput:
        """Fuse LR frames into one HR frame at the reference instant.

        Both networks share this call, ``model(lr, hr)``, and its output type, so
        callers need not know which one they hold. It is
        :meth:`frame_features` of every frame followed by
        :meth:`fuse_window_features` of the windows.

        Parameters
        ----------
        lr : Tensor, (b, num_frame, 1, h, w)
            LR frames [t−s, t, t+s]; ``h`` and ``w`` multiples of 4 (two stride-2
            pyramid levels).
        hr : Tensor, (b, 2, 1, 4h, 4w), optional
            HR frames [before, after]; ignored: this LR-only network has no HR
            branch. Accepted so that it is called like :class:`EDVRSTF`.

        Returns
        -------
        FusionOutput
            ``fused`` (b, 1, 4h, 4w) and ``attention`` (b, num_frame), LR frames
            only.
        """
        b, t = lr.shape[:2]
        hr_frames = None
        if self.num_frame_hi and hr is not None:
            hr_frames = hr.flatten(0, 1)
        lr_feat, hr_feat = self.frame_features(lr.flatten(0, 1), hr_frames)
        return self.fuse_window_features(
            _windows(lr_feat, b, t), _windows(hr_feat, b, self.num_frame_hi)
        )

    def frame_features(
        self, lr: torch.Tensor | None, hr: torch.Tensor | None = None
    ) -> tuple[FrameFeatures, FrameFeatures]:
        """Compute what each frame contributes to every window it takes part in.

        A frame's first convolution (for HR frames, the HR branch), feature
        extraction and L1–L3 pyramid do not depend on the window, so a burst
        needs them once per frame (:mod:`~xfusion_bluesky.fusion.features`).
        LR and HR frames share one pass through the extraction blocks.

        Parameters
        ----------
        lr : Tensor, (n, 1, h, w), or None
            LR frames; h and w multiples of 4.
        hr : Tensor, (k, 1, 4h, 4w), or None
            HR frames; ignored by a network without an HR branch.

        Returns
        -------
        lr_features, hr_features : tuple of Tensor
            Per frame along dim 0: the frame itself, then its L1, L2 and L3
            features (C × h, h/2, h/4); :class:`EDVRSTFDetail` appends its
            head's per-HR-frame terms. Empty where no frames were given.
        """
        first = [] if lr is None else [lrelu(self.conv_first(lr))]
        hr_first = None if hr is None else self._hr_features(hr)
        if hr_first is not None:
            first.append(hr_first)
        if not first:
            return (), ()
        feat = first[0] if len(first) == 1 else torch.cat(first)
        l1 = self.feature_extraction(feat)
        l2 = lrelu(self.conv_l2_2(lrelu(self.conv_l2_1(l1))))
        l3 = lrelu(self.conv_l3_2(lrelu(self.conv_l3_1(l2))))
        n = 0 if lr is None else lr.shape[0]
        lr_feat: FrameFeatures = () if lr is None else (lr, l1[:n], l2[:n], l3[:n])
        hr_feat: FrameFeatures = ()
        if hr is not None and hr_first is not None:
            hr_feat = (hr, l1[n:], l2[n:], l3[n:])
        return lr_feat, hr_feat

    def _hr_features(self, hr: torch.Tensor) -> torch.Tensor | None:
        """Bring HR frames (k, 1, 4h, 4w) to first-conv features; None: no HR branch."""
        return None

    def fuse_window_features(
        self, lr: FrameFeatures, hr: FrameFeatures = ()
    ) -> FusionOutput:
        """Align, fuse and reconstruct windows from their frames' features.

        Parameters
        ----------
        lr : tuple of Tensor
            :meth:`frame_features` of the LR frames stacked per window: each
            (b, num_frame, …), frames in window order [t−s, t, t+s].
        hr : tuple of Tensor
            The same for the HR frames [before, after], each (b, 2, …); empty
            for LR-only EDVR.

        Returns
        -------
        FusionOutput
        """
        levels = lr[1:4]
        if hr:
            levels = tuple(
                torch.cat([a, b], dim=1) for a, b in zip(levels, hr[1:4], strict=True)
            )
        return self._fuse_levels(levels, lr[0][:, self.ref_index])

    def _fuse_levels(
        self, levels: tuple[torch.Tensor, ...], lr_ref: torch.Tensor
    ) -> FusionOutput:
        """Run PCD → TSA → reconstruction on the windows' pyramids.

        Parameters
        ----------
        levels : (L1, L2, L3), each Tensor (b, T, C, ·, ·)
            Pyramid features of every frame, LR frames first.
        lr_ref : Tensor, (b, 1, h, w)
            The reference LR frame, the base the network adds its residual to.
        """
        t = levels[0].shape[1]
        ref = tuple(x[:, self.ref_index] for x in levels)
        aligned = torch.stack(
            [self.pcd_align(tuple(x[:, i] for x in levels), ref) for i in range(t)],
            dim=1,
        )  # (b, T, C, h, w)
        fused_feat, attention = self.fusion(aligned)
        out = self.reconstruction(fused_feat)
        out = lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(lrelu(self.conv_hr(out)))  # (b, 1, 4h, 4w)
        base = F.interpolate(
            lr_ref, scale_factor=SCALE, mode="bilinear", align_corners=False
        )
        return FusionOutput(fused=out + base, attention=attention)


class EDVRSTF(EDVR):
    """EDVR-STF: fuse 3 LR frames and the HR frames before and after into one HR frame.

    Same parameters as :class:`EDVR`, plus ``num_frame_hi`` (must be 2: the HR frames
    before and after the reference instant). Keyword names are the authors'.

    Examples
    --------
    >>> model = EDVRSTF(num_feat=16, num_extract_block=1, num_reconstruct_block=1)
    >>> out = model(torch.rand(1, 3, 1, 8, 8), torch.rand(1, 2, 1, 32, 32))
    >>> tuple(out.fused.shape), tuple(out.attention.shape)
    ((1, 1, 32, 32), (1, 5))
    """

    num_frame_hi = 2

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
    ) -> None:
        if num_frame_hi != self.num_frame_hi:
            raise ValueError(
                "num_frame_hi must be 2 (the HR frames before and after the "
                f"reference); got {num_frame_hi}"
            )
        super().__init__(
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            num_frame=num_frame,
            deformable_groups=deformable_groups,
            num_extract_block=num_extract_block,
            num_reconstruct_block=num_reconstruct_block,
        )
        self.config["num_frame_hi"] = num_frame_hi

    def _add_hr_branch(self, num_in_ch: int, num_feat: int) -> None:
        """Register the HR branch: conv at 4h, then two conv + 3×3/2 max-pool stages."""
        self.conv_first_hi = conv3(num_in_ch, num_feat)
        self.conv1_hi = conv3(num_feat, num_feat)
        self.conv2_hi = conv3(num_feat, num_feat)

    def _hr_features(self, hr: torch.Tensor) -> torch.Tensor:
        """Bring HR frames (k, 1, 4h, 4w) to first-conv features (k, C, h, w)."""
        x = lrelu(self.conv_first_hi(hr))
        x = F.max_pool2d(lrelu(self.conv1_hi(x)), 3, stride=2, padding=1)
        return F.max_pool2d(lrelu(self.conv2_hi(x)), 3, stride=2, padding=1)

    def forward(self, lr: torch.Tensor, hr: torch.Tensor | None = None) -> FusionOutput:
        """Fuse one window per batch item.

        Parameters
        ----------
        lr : Tensor, (b, 3, 1, h, w)
            LR frames [t−s, t, t+s]; h and w multiples of 4.
        hr : Tensor, (b, 2, 1, 4h, 4w)
            HR frames [before, after] the reference instant t. Required; the
            default None only keeps the signature of :meth:`EDVR.forward`.

        Returns
        -------
        FusionOutput
            ``fused`` (b, 1, 4h, 4w) and ``attention`` (b, 5) in the order
            [LR t−s, LR t, LR t+s, HR before, HR after].

        Raises
        ------
        ValueError
            ``hr`` is missing or not (b, 2, 1, 4h, 4w).
        """
        h, w = lr.shape[-2:]
        if hr is None:
            raise ValueError(
                "EDVRSTF fuses HR frames too: call model(lr, hr) with hr "
                f"(b, 2, 1, {SCALE * h}, {SCALE * w})"
            )
        if hr.shape[-2:] != (SCALE * h, SCALE * w) or hr.shape[1] != 2:
            raise ValueError(
                f"hr must be (b, 2, 1, {SCALE * h}, {SCALE * w}) for lr "
                f"{tuple(lr.shape)}; got {tuple(hr.shape)}"
            )
        return super().forward(lr, hr)


#: Hyper-parameters of the shipped small models: C=32, 4 deformable groups, 2 + 5
#: residual blocks — about 1/15 of the paper's parameters, trainable on a CPU.
SMALL_CONFIG: dict[str, Any] = {
    "num_feat": 32,
    "deformable_groups": 4,
    "num_extract_block": 2,
    "num_reconstruct_block": 5,
}


def edvr_stf_paper(**overrides: Any) -> EDVRSTF:
    """EDVR-STF as in the paper: C=128, 8 deformable groups, 5 + 40 residual blocks."""
    return EDVRSTF(**overrides)


def edvr_stf_small(**overrides: Any) -> EDVRSTF:
    """Build a small EDVR-STF that trains and runs on a CPU (``SMALL_CONFIG``)."""
    return EDVRSTF(**(SMALL_CONFIG | overrides))


def edvr_small(**overrides: Any) -> EDVR:
    """Build the LR-only baseline with :func:`edvr_stf_small`'s hyper-parameters."""
    return EDVR(**(SMALL_CONFIG | overrides))


def _windows(features: FrameFeatures, b: int, t: int) -> FrameFeatures:
    """View per-frame tensors (b·t, …) as windows (b, t, …), frames in window order."""
    return tuple(x.view(b, t, *x.shape[1:]) for x in features)
