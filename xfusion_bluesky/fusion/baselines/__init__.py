"""Baselines that fuse without EDVR-STF: bicubic upsampling (Bayesian to come)."""

from xfusion_bluesky.fusion.baselines.bicubic import BicubicFuser, bicubic_upsample

__all__ = ["BicubicFuser", "bicubic_upsample"]
