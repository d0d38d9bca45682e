"""PCDAlignment: pyramid, cascading and deformable alignment (EDVR paper Fig. 3).

Each frame's features are aligned to the reference frame's, from the coarsest level
L3 (¼ size) to L1 (full LR size), then refined once more by a cascaded deformable
conv. The same weights align every frame, the reference included (docs/spec/edvr_stf.md
§3.2).
"""

from __future__ import annotations

import torch
from torch import nn

from xfusion_bluesky.fusion.model.blocks import conv3, lrelu, up2
from xfusion_bluesky.fusion.model.deform_conv import DCNv2Pack

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
        up_offset = up_feat = None
        feat = nbr[0]
        for level in (3, 2, 1):
            lv = f"l{level}"
            i = level - 1
            offset = lrelu(self.offset_conv1[lv](torch.cat([nbr[i], ref[i]], dim=1)))
            if up_offset is None:  # L3: the coarsest level has nothing to refine
                offset = lrelu(self.offset_conv2[lv](offset))
            else:
                offset = torch.cat([offset, up_offset], dim=1)
                offset = lrelu(
                    self.offset_conv3[lv](lrelu(self.offset_conv2[lv](offset)))
                )
            feat = self.dcn_pack[lv](nbr[i], offset)
            if up_feat is not None:
                feat = self.feat_conv[lv](torch.cat([feat, up_feat], dim=1))
            if level > 1:
                feat = lrelu(feat)  # L1 keeps its features linear before the cascade
                # Offsets are in pixels: doubling the grid doubles them.
                up_offset, up_feat = up2(offset) * 2, up2(feat)
        # Cascade: one more deformable conv driven by the aligned and reference L1.
        offset = lrelu(self.cas_offset_conv1(torch.cat([feat, ref[0]], dim=1)))
        offset = lrelu(self.cas_offset_conv2(offset))
        return lrelu(self.cas_dcnpack(feat, offset))
