"""Pure compute: windows, the EDVR-STF model, baselines and the ``fuse()`` engine.

Imports torch; the top-level package does not, so import fusion from here.
"""

from xfusion_bluesky.fusion.engine import METHODS, FusionStream, fuse, fuse_iter
from xfusion_bluesky.fusion.windows import normalize_attention, plan_windows
from xfusion_bluesky.structures import FrameScores, FusionResult, FusionWindow

__all__ = [
    "METHODS",
    "FrameScores",
    "FusionResult",
    "FusionStream",
    "FusionWindow",
    "fuse",
    "fuse_iter",
    "normalize_attention",
    "plan_windows",
]
