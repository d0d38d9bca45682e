"""Baselines that fuse without EDVR-STF: bicubic upsampling and Bayesian fusion."""

from xfusion_bluesky.fusion.baselines.bayesian import (
    BayesianFuser,
    BayesianSettings,
    bayesian_fuse,
)
from xfusion_bluesky.fusion.baselines.bicubic import BicubicFuser, bicubic_upsample

__all__ = [
    "BayesianFuser",
    "BayesianSettings",
    "BicubicFuser",
    "bayesian_fuse",
    "bicubic_upsample",
]
