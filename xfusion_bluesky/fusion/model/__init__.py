"""EDVR-STF and the LR-only EDVR baseline, key for key with the authors' checkpoints."""

from xfusion_bluesky.fusion.model.checkpoint import load_model, model_id, save_model
from xfusion_bluesky.fusion.model.detail import EDVRSTFDetail, edvr_stf_detail_small
from xfusion_bluesky.fusion.model.edvr_stf import (
    EDVR,
    EDVRSTF,
    SCALE,
    FusionOutput,
    edvr_small,
    edvr_stf_paper,
    edvr_stf_small,
)
from xfusion_bluesky.fusion.model.loader import (
    LoadedModel,
    clear_cache,
    default_model_path,
    load_network,
)

__all__ = [
    "EDVR",
    "EDVRSTF",
    "SCALE",
    "EDVRSTFDetail",
    "FusionOutput",
    "LoadedModel",
    "clear_cache",
    "default_model_path",
    "edvr_small",
    "edvr_stf_detail_small",
    "edvr_stf_paper",
    "edvr_stf_small",
    "load_model",
    "load_network",
    "model_id",
    "save_model",
]
