"""EDVR-STF and the LR-only EDVR baseline, key for key with the authors' checkpoints."""

from xfusion_bluesky.fusion.model.checkpoint import (
    default_model_path,
    load_model,
    model_id,
    save_model,
)
from xfusion_bluesky.fusion.model.edvr_stf import (
    EDVR,
    EDVRSTF,
    SCALE,
    FusionOutput,
    edvr_small,
    edvr_stf_paper,
    edvr_stf_small,
)

__all__ = [
    "EDVR",
    "EDVRSTF",
    "SCALE",
    "FusionOutput",
    "default_model_path",
    "edvr_small",
    "edvr_stf_paper",
    "edvr_stf_small",
    "load_model",
    "model_id",
    "save_model",
]
