"""Pure compute: windows, the EDVR-STF model, baselines and the ``fuse()`` engine.

Imports torch; the top-level package does not, so import fusion from here.
"""

from xfusion_bluesky.fusion.adaptation import AdaptationReport, AdaptSettings
from xfusion_bluesky.fusion.engine import fuse, fuse_iter
from xfusion_bluesky.fusion.methods import (
    METHOD_NAMES,
    METHODS,
    MethodSpec,
    method_spec,
)
from xfusion_bluesky.fusion.stream import FusionStream
from xfusion_bluesky.fusion.windows import normalize_attention, plan_windows
from xfusion_bluesky.structures import FrameScores, FusionResult, FusionWindow

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "AdaptSettings",
    "AdaptationReport",
    "FrameScores",
    "FusionResult",
    "FusionStream",
    "FusionWindow",
    "MethodSpec",
    "fuse",
    "fuse_iter",
    "method_spec",
    "normalize_attention",
    "plan_windows",
]
