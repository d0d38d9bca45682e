"""Load/save checkpoints, infer the config from the weights, sha256 model identity.

Accepts the project's own files and the authors' BasicSR ``.pth`` files
(``{'params': state_dict}``, with or without a ``module.`` prefix from
DistributedDataParallel); the architecture is read off the tensor shapes, so a
paper-size checkpoint (20.9 M parameters) and our small one load the same way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from xfusion_bluesky.errors import CheckpointMismatchError
from xfusion_bluesky.fusion.model.detail import EDVRSTFDetail
from xfusion_bluesky.fusion.model.edvr_stf import EDVR, EDVRSTF

logger = logging.getLogger(__name__)

#: Folder of the shipped weights: ``models/`` at the repository root.
MODELS_DIR = Path(__file__).resolve().parents[3] / "models"

_BLOCK_KEY = re.compile(r"^(feature_extraction|reconstruction)\.(\d+)\.conv1\.weight$")
_DETAIL_BODY_KEY = re.compile(r"^detail\.body\.(\d+)\.weight$")


def extract_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return the bare state dict of a checkpoint in any of the accepted layouts.

    Our files hold ``{'params': state_dict, 'config': ..., ...}``, the authors'
    ``{'params': state_dict}``; a bare state dict is accepted too. A ``module.``
    prefix (DistributedDataParallel) is removed.
    """
    state = checkpoint.get("params", checkpoint)
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointMismatchError(
            "checkpoint holds no state dict: expected {'params': {name: tensor}} "
            f"or {{name: tensor}}; top-level keys: {sorted(checkpoint)[:10]}"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def infer_config(
    state: Mapping[str, torch.Tensor],
) -> tuple[type[EDVR], dict[str, int]]:
    """Read the model class and its constructor arguments off the tensor shapes."""
    required = ("conv_first.weight", "conv_last.weight", "fusion.feat_fusion.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointMismatchError(
            f"not an EDVR/EDVR-STF state dict: missing {missing} (a TSA fusion is "
            "required; with_tsa=False checkpoints are not supported)"
        )
    num_feat, num_in_ch = state["conv_first.weight"].shape[:2]
    blocks: dict[str, int] = {"feature_extraction": 0, "reconstruction": 0}
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match:
            stack, index = match.group(1), int(match.group(2))
            blocks[stack] = max(blocks[stack], index + 1)
    total_frames = state["fusion.feat_fusion.weight"].shape[1] // num_feat
    config = {
        "num_in_ch": int(num_in_ch),
        "num_out_ch": int(state["conv_last.weight"].shape[0]),
        "num_feat": int(num_feat),
        "deformable_groups": int(
            state["pcd_align.cas_dcnpack.conv_offset.weight"].shape[0] // 27
        ),
        "num_extract_block": blocks["feature_extraction"],
        "num_reconstruct_block": blocks["reconstruction"],
    }
    if "detail.conv_in.weight" in state:
        # EDVR-STF + HR detail (ours, beyond the paper): the head's size too.
        bodies = [m.group(1) for k in state if (m := _DETAIL_BODY_KEY.match(k))]
        return EDVRSTFDetail, config | {
            "num_frame": total_frames - 2,
            "num_frame_hi": 2,
            "detail_feat": int(state["detail.conv_in.weight"].shape[0]),
            "detail_blocks": len(bodies),
        }
    if "conv_first_hi.weight" in state:
        # The authors' inference class counts all 5 frames as num_frame with
        # num_frame_hi=0; the weights are the same, so we read them as 3 LR + 2 HR.
        return EDVRSTF, config | {"num_frame": total_frames - 2, "num_frame_hi": 2}
    return EDVR, config | {"num_frame": total_frames}


def build_from_state_dict(state: Mapping[str, torch.Tensor]) -> EDVR:
    """Build the model the state dict describes and load it strictly.

    Raises
    ------
    CheckpointMismatchError
        Listing missing and unexpected keys and mismatched shapes.
    """
    cls, config = infer_config(state)
    model = cls(**config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            f"state dict does not fit {cls.__name__}({config}): "
            f"missing keys {missing}; unexpected keys {unexpected}; "
            f"shape mismatches {shapes}"
        )
    model.load_state_dict(state, strict=True)
    return model


def model_id(model: torch.nn.Module) -> str:
    """Return the sha256 (hex) of the model's weights: its identity in provenance.

    The hash covers every tensor's name, dtype, shape and bytes in key order, so it
    does not depend on how the file was pickled; weights cast to another dtype get a
    different id.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_model(
    path_or_name: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> EDVR:
    """Load an EDVR-STF or EDVR checkpoint, ours or the authors', in eval mode.

    Parameters
    ----------
    path_or_name : str or path
        A ``.pth`` file, or the name of a shipped model (``"edvr_stf_small"``,
        ``"edvr_small"``, looked up in ``models/``).
    device : str or torch.device
        Where the model is placed.

    Returns
    -------
    EDVR or EDVRSTF
        With ``model.model_id`` (sha256 of the weights) and ``model.source`` set.

    Raises
    ------
    FileNotFoundError
        The file does not exist (the message says how shipped weights are made).
    CheckpointMismatchError
        The weights do not fit the architecture their shapes describe.
    """
    path = Path(path_or_name)
    if not path.exists() and (MODELS_DIR / f"{path_or_name}.pth").exists():
        path = MODELS_DIR / f"{path_or_name}.pth"
    if not path.is_file():
        raise FileNotFoundError(
            f"model file {path} does not exist; shipped weights live in {MODELS_DIR} "
            "and are made with `xfusion-bluesky train` (or pass model=<path>)"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model = build_from_state_dict(extract_state_dict(checkpoint))
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(f"{path}: {err}") from err
    model.model_id = model_id(model)
    model.source = str(path)
    logger.info(
        "loaded %s from %s (%s)", type(model).__name__, path, model.model_id[:12]
    )
    return model.to(device).eval()


def save_model(model: EDVR, path: str | os.PathLike[str], **metadata: Any) -> str:
    """Save ``model`` as ``{'params': state_dict, 'config': ..., **metadata}``.

    The layout is the authors' (weights under ``'params'``), so their tools read our
    files too. Returns the model id (sha256 of the weights).
    """
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    payload = {"params": state, "config": dict(model.config), **metadata}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return model_id(model)
