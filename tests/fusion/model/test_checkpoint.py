import pytest
import torch

from xfusion_bluesky.errors import CheckpointMismatchError
from xfusion_bluesky.fusion.model import EDVR, EDVRSTF, load_model, model_id, save_model
from xfusion_bluesky.fusion.model.checkpoint import infer_config

TINY = {
    "num_feat": 8,
    "deformable_groups": 2,
    "num_extract_block": 1,
    "num_reconstruct_block": 2,
}


def _randomised(model):
    torch.manual_seed(7)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def test_roundtrip_our_format(tmp_path):
    model = _randomised(EDVRSTF(**TINY))
    path = tmp_path / "m.pth"
    saved_id = save_model(model, path, iterations=3)
    loaded = load_model(path)
    assert isinstance(loaded, EDVRSTF)
    assert loaded.config == model.config
    assert loaded.model_id == saved_id == model_id(model)
    lr, hr = torch.rand(1, 3, 1, 8, 8), torch.rand(1, 2, 1, 32, 32)
    torch.testing.assert_close(loaded(lr, hr).fused, model(lr, hr).fused)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_loads_the_authors_layout(tmp_path, prefix):
    model = _randomised(EDVRSTF(**TINY))
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"params": state}, tmp_path / "authors.pth")
    loaded = load_model(tmp_path / "authors.pth")
    assert loaded.model_id == model_id(model)


def test_infers_lr_only_edvr_and_paper_size():
    cls, config = infer_config(
        EDVR(num_feat=16, deformable_groups=4, num_extract_block=3).state_dict()
    )
    assert cls is EDVR
    assert config["num_frame"] == 3
    assert config["num_extract_block"] == 3
    cls, config = infer_config(EDVRSTF().state_dict())
    assert cls is EDVRSTF
    assert config == EDVRSTF().config


def test_paper_size_checkpoint_loads(tmp_path):
    torch.save({"params": EDVRSTF().state_dict()}, tmp_path / "paper.pth")
    model = load_model(tmp_path / "paper.pth")
    assert sum(p.numel() for p in model.parameters()) == 20_926_817


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    state = EDVRSTF(**TINY).state_dict()
    del state["fusion.spatial_attn3.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["conv_hr.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save({"params": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        load_model(tmp_path / "bad.pth")
    message = str(info.value)
    assert "fusion.spatial_attn3.bias" in message
    assert "extra.weight" in message
    assert "conv_hr.weight" in message
    assert "bad.pth" in message


def test_not_a_state_dict(tmp_path):
    torch.save({"params": {"a": 1}}, tmp_path / "junk.pth")
    with pytest.raises(CheckpointMismatchError, match="no state dict"):
        load_model(tmp_path / "junk.pth")


def test_missing_file_says_how_to_make_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="xfusion-bluesky train"):
        load_model(tmp_path / "nope.pth")


def test_model_id_changes_with_weights():
    model = _randomised(EDVRSTF(**TINY))
    before = model_id(model)
    with torch.no_grad():
        model.conv_last.bias += 1e-6
    assert model_id(model) != before
