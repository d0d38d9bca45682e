"""EDVR-STF + HR detail: starts as EDVR-STF, shapes, save/load, registry, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.methods import method_spec
from xfusion_bluesky.fusion.model import (
    EDVRSTF,
    EDVRSTFDetail,
    load_model,
    load_network,
    save_model,
)
from xfusion_bluesky.metrics import psnr
from xfusion_bluesky.synthetic.degradation import bin_frames
from xfusion_bluesky.synthetic.scene import generate_scene
from xfusion_bluesky.training.config import Stage, TrainConfig, build_model

TINY = {
    "num_feat": 8,
    "deformable_groups": 1,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}
HEAD = {"detail_feat": 4, "detail_blocks": 2}


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 1, 8, 12, generator=gen), torch.rand(
        2, 2, 1, 32, 48, generator=gen
    )


def _detail_from(backbone: EDVRSTF) -> EDVRSTFDetail:
    model = EDVRSTFDetail(**TINY, **HEAD)
    model.load_backbone(backbone.state_dict())
    return model.eval()


def test_zero_initialised_head_returns_edvr_stf_output_exactly() -> None:
    torch.manual_seed(1)
    backbone = EDVRSTF(**TINY).eval()
    model = _detail_from(backbone)
    lr, hr = _inputs()
    with torch.no_grad():
        expected = backbone(lr, hr)
        got = model(lr, hr)
    assert torch.equal(got.fused, expected.fused)
    assert torch.equal(got.attention, expected.attention)


def test_head_weights_copy_an_hr_frame() -> None:
    model = EDVRSTFDetail(**TINY, **HEAD).eval()
    with torch.no_grad():
        model.detail.conv_out.bias[0] = 1.0  # weight 1 on the HR frame before
    lr, hr = _inputs(2)
    with torch.no_grad():
        fused = model(lr, hr).fused
    assert fused.shape == (2, 1, 32, 48)
    torch.testing.assert_close(fused, hr[:, 0], atol=1e-5, rtol=0)


def test_refuses_missing_hr() -> None:
    lr, _ = _inputs()
    with pytest.raises(ValueError, match="HR frames"):
        EDVRSTFDetail(**TINY, **HEAD)(lr)


def test_save_load_round_trip_keeps_class_config_and_output(tmp_path) -> None:
    torch.manual_seed(3)
    model = EDVRSTFDetail(**TINY, **HEAD).eval()
    with torch.no_grad():
        model.detail.conv_out.weight.normal_(0, 0.01)
    path = tmp_path / "detail.pth"
    sha = save_model(model, path)
    loaded = load_model(path)
    assert type(loaded) is EDVRSTFDetail
    assert loaded.config == model.config
    assert loaded.model_id == sha
    lr, hr = _inputs(4)
    with torch.no_grad():
        assert torch.equal(loaded(lr, hr).fused, model(lr, hr).fused)


def test_registry_entry_and_loader_keep_the_two_methods_apart(tmp_path) -> None:
    spec = method_spec("edvr_stf_detail")
    assert spec.network is EDVRSTFDetail
    assert spec.uses_hr
    assert spec.trainable
    assert spec.label == "EDVR-STF + HR detail"
    assert method_spec("edvr_stf").network is EDVRSTF
    path = tmp_path / "detail.pth"
    save_model(EDVRSTFDetail(**TINY, **HEAD), path)
    assert isinstance(load_network("edvr_stf_detail", path).network, EDVRSTFDetail)
    with pytest.raises(InvalidInputError, match="edvr_stf_detail"):
        load_network("edvr_stf", path)


def test_head_only_training_starts_from_edvr_stf_and_freezes_it(tmp_path) -> None:
    torch.manual_seed(5)
    backbone_path = tmp_path / "stf.pth"
    save_model(EDVRSTF(**TINY), backbone_path)
    config = TrainConfig(
        method="edvr_stf_detail",
        model=TINY | HEAD,
        stages=(Stage("finetune", ("fast_front",), 1),),
        init_from=str(backbone_path),
        train_head_only=True,
    )
    model = build_model(config)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained
    assert all(n.startswith("detail.") for n in trained)
    start = load_model(backbone_path)
    assert all(
        torch.equal(v, start.state_dict()[k])
        for k, v in model.backbone_state_dict().items()
    )
    lr, hr = _inputs(6)
    model(lr, hr).fused.sum().backward()
    assert model.conv_first.weight.grad is None
    assert model.detail.conv_out.weight.grad is not None


def test_head_only_is_refused_for_other_methods() -> None:
    with pytest.raises(InvalidInputError, match="train_head_only"):
        build_model(TrainConfig(method="edvr_stf", model=TINY, train_head_only=True))


def test_shipped_weights_start_from_shipped_edvr_stf_and_beat_it_when_hr_is_close():
    detail = load_network("edvr_stf_detail").network
    stf = load_network("edvr_stf").network
    assert isinstance(detail, EDVRSTFDetail)
    backbone = detail.backbone_state_dict()
    assert all(torch.equal(v, backbone[k]) for k, v in stf.state_dict().items())
    # A slow held-out scene (seeds from 2**31 never occur in training), HR every 2.
    truth = generate_scene(
        "friction_stir", times=np.arange(7) * 0.25, height=64, width=96, seed=2**31 + 5
    )
    lr, hr_index = bin_frames(truth, 4).astype(np.float32), np.arange(0, 7, 2)
    between = [1, 3, 5]
    scores = {
        method: float(
            np.mean(
                psnr(
                    fuse(lr, truth[hr_index], hr_index, method, normalize=False).frames[
                        between
                    ],
                    truth[between],
                )
            )
        )
        for method in ("edvr_stf", "edvr_stf_detail")
    }
    assert scores["edvr_stf_detail"] > scores["edvr_stf"] + 3.0, scores
