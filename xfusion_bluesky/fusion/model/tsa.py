"""TSAFusion: temporal and spatial attention fusion; also returns the attention scores.

Temporal attention weighs each aligned frame by the sigmoid of its per-pixel
correlation with the reference frame's embedding; spatial attention then modulates the
fused feature through a small pyramid (EDVR paper Fig. 4, docs/spec/edvr_stf.md §3.3).
The spatial mean
of each frame's *pre-sigmoid* correlation is the attention score the XFusion paper
reads as "how much each frame was used" (docs/spec/edvr_stf.md §5).
"""

from __future__ import annotations

import torch
from torch import nn

from xfusion_bluesky.fusion.model.blocks import conv1, conv3, lrelu, up2


def _pool_pair(x: torch.Tensor) -> torch.Tensor:
    """Concatenate 3×3/2 max- and average-pooling of ``x`` (zero padding counted)."""
    return torch.cat(
        [
            nn.functional.max_pool2d(x, 3, stride=2, padding=1),
            nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=True),
        ],
        dim=1,
    )


class TSAFusion(nn.Module):
    """Fuse T aligned frames into one feature map with temporal + spatial attention.

    Parameters
    ----------
    num_feat : int
        Feature channels C.
    num_frame : int
        Frames fused, T (3 LR + 2 HR for EDVR-STF; 3 LR for EDVR).
    ref_index : int
        Position of the reference frame among the T.
    """

    def __init__(self, num_feat: int, num_frame: int, ref_index: int) -> None:
        super().__init__()
        c = num_feat
        self.ref_index = ref_index
        self.temporal_attn1 = conv3(c, c)
        self.temporal_attn2 = conv3(c, c)
        self.feat_fusion = conv1(num_frame * c, c)
        self.spatial_attn1 = conv1(num_frame * c, c)
        self.spatial_attn2 = conv1(2 * c, c)
        self.spatial_attn3 = conv3(c, c)
        self.spatial_attn4 = conv1(c, c)
        self.spatial_attn5 = conv3(c, c)
        self.spatial_attn_l1 = conv1(c, c)
        self.spatial_attn_l2 = conv3(2 * c, c)
        self.spatial_attn_l3 = conv3(c, c)
        self.spatial_attn_add1 = conv1(c, c)
        self.spatial_attn_add2 = conv1(c, c)

    def forward(self, aligned: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse aligned features.

        Parameters
        ----------
        aligned : Tensor, (b, T, C, h, w)

        Returns
        -------
        feat : Tensor, (b, C, h, w)
        attention : Tensor, (b, T)
            Spatial mean of each frame's pre-sigmoid correlation with the reference.
        """
        b, t, c, h, w = aligned.shape
        # Temporal attention: per-pixel correlation of each frame with the reference.
        emb_ref = self.temporal_attn1(aligned[:, self.ref_index])
        emb = self.temporal_attn2(aligned.reshape(b * t, c, h, w)).view(b, t, c, h, w)
        corr = (emb * emb_ref.unsqueeze(1)).sum(dim=2)  # (b, t, h, w)
        attention = corr.mean(dim=(2, 3))
        weighted = (aligned * torch.sigmoid(corr).unsqueeze(2)).view(b, t * c, h, w)
        feat = lrelu(self.feat_fusion(weighted))

        # Spatial attention: a two-level pyramid at h/2 and h/4, back to h.
        attn = lrelu(self.spatial_attn1(weighted))
        attn = lrelu(self.spatial_attn2(_pool_pair(attn)))
        level = lrelu(self.spatial_attn_l1(attn))
        level = lrelu(self.spatial_attn_l2(_pool_pair(level)))
        level = up2(lrelu(self.spatial_attn_l3(level)))
        attn = lrelu(self.spatial_attn3(attn)) + level
        attn = self.spatial_attn5(up2(lrelu(self.spatial_attn4(attn))))
        attn_add = self.spatial_attn_add2(lrelu(self.spatial_attn_add1(attn)))
        # ×2 makes sigmoid(≈0)·2 ≈ 1 at initialisation, an identity modulation.
        return feat * torch.sigmoid(attn) * 2 + attn_add, attention
