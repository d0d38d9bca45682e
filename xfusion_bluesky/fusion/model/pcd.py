"""PCDAlignment: pyramid, cascading and deformable alignment (EDVR paper Fig. 3).

Each frame's features are aligned to the reference frame's, from the coarsest level
L3 (¼ size) to L1 (full LR size), then refined once more by a cascaded deformable
conv. The same weights align every frame, the reference included (docs/spec/edvr_stf.md
§3.2).

Under bfloat16 autocast each DCN predicts its offsets and samples in float32
(:class:`~xfusion_bluesky.fusion.model.deform_conv.DCNv2Pack`); the convolutions
that compute the offset features feeding it stay in bfloat16 unless
:attr:`PCDAlignment.offsets_in_float32` is set. Measured with the shipped small
EDVR-STF + HR detail on 17-frame bursts, HR every 8 frames (two runs of the real
radiographs at LR 33×40, three synthetic scenes at LR 32×48), PSNR of bfloat16
against float32: 65.7, 66.3, 74.0, 77.1, 76.4 dB with them in bfloat16; 65.7,
66.4, 73.9, 77.4, 76.4 dB in float32, which costs ~8 % more time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from xfusion_bluesky.fusion.model.blocks import conv3, lrelu, up2
from xfusion_bluesky.fusion.model.deform_conv import DCNv2Pack
from xfusion_bluesky.fusion.precision import float32_region, to_float32

_LEVELS = ("l3", "l2", "l1")  # registration order is the state-dict key order


class PCDAlignment(nn.Module):
    """Align one frame's L1–L3 features to the reference frame's.

    Parameters
    ----------
    num_feat : int
        Feature channels C.
    deformable_groups : int
        Deformable groups of every DCN.
    """

    def __init__(self, num_feat: int, deformable_groups: int) -> None:
        super().__init__()
        c = num_feat
        self.offset_conv1 = nn.ModuleDict({lv: conv3(2 * c, c) for lv in _LEVELS})
        self.offset_conv2 = nn.ModuleDict(
            {lv: conv3(c if lv == "l3" else 2 * c, c) for lv in _LEVELS}
        )
        self.offset_conv3 = nn.ModuleDict({lv: conv3(c, c) for lv in ("l2", "l1")})
        self.dcn_pack = nn.ModuleDict(
            {lv: DCNv2Pack(c, deformable_groups) for lv in _LEVELS}
        )
        self.feat_conv = nn.ModuleDict({lv: conv3(2 * c, c) for lv in ("l2", "l1")})
        self.cas_offset_conv1 = conv3(2 * c, c)
        self.cas_offset_conv2 = conv3(c, c)
        self.cas_dcnpack = DCNv2Pack(c, deformable_groups)

    #: Under autocast, compute the offset features (the convolutions that feed each
    #: DCN's offset prediction) in float32 too. Off: no measurable gain (module
    #: docstring). A class attribute, not state: checkpoints are unchanged.
    offsets_in_float32: bool = False

    @contextlib.contextmanager
    def _offset_precision(self) -> Iterator[None]:
        """Run the offset-feature convolutions in float32 where so configured."""
        if self.offsets_in_float32:
            with float32_region():
                yield
        else:
            yield

    def forward(
        self, nbr: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Return the aligned L1 feature of a frame, (b, C, h, w).

        Parameters
        ----------
        nbr, ref : tuple of Tensor
            (L1, L2, L3) features of the frame to align and of the reference frame,
            shapes (b, C, h, w), (b, C, h/2, w/2), (b, C, h/4, w/4).
        """
        up_offset: torch.Tensor | None = None
        up_feat: torch.Tensor | None = None
        feat = nbr[0]
        for level in (3, 2, 1):
            lv = f"l{level}"
            i = level - 1
            pair = torch.cat([nbr[i], ref[i]], dim=1)
            offset = self._offset_feature(lv, pair, up_offset)
            feat = self.dcn_pack[lv](nbr[i], offset)
            if up_feat is not None:
                feat = self.feat_conv[lv](torch.cat([feat, up_feat], dim=1))
            if level > 1:
                feat = lrelu(feat)  # L1 keeps its features linear before the cascade
                with self._offset_precision():
                    # Offsets are in pixels: doubling the grid doubles them.
                    up_offset = up2(offset) * 2
                up_feat = up2(feat)
        # Cascade: one more deformable conv driven by the aligned and reference L1.
        with self._offset_precision():
            pair = torch.cat([feat, ref[0]], dim=1)
            offset = lrelu(self.cas_offset_conv1(self._lift(pair)))
            offset = lrelu(self.cas_offset_conv2(offset))
        return lrelu(self.cas_dcnpack(feat, offset))

    def _offset_feature(
        self, lv: str, pair: torch.Tensor, up_offset: torch.Tensor | None
    ) -> torch.Tensor:
        """Return level ``lv``'s offset feature from a (frame, reference) pair."""
        with self._offset_precision():
            offset = lrelu(self.offset_conv1[lv](self._lift(pair)))
            if up_offset is None:  # L3: the coarsest level has nothing to refine
                return lrelu(self.offset_conv2[lv](offset))
            offset = torch.cat([offset, up_offset], dim=1)
            return lrelu(self.offset_conv3[lv](lrelu(self.offset_conv2[lv](offset))))

    def _lift(self, x: torch.Tensor) -> torch.Tensor:
        """Cast ``x`` to float32 where the offsets are computed in float32."""
        return to_float32(x) if self.offsets_in_float32 else x
