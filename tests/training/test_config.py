import json
from pathlib import Path

import pytest
import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.model import EDVRSTF, model_id, save_model
from xfusion_bluesky.training.config import (
    TRAINABLE,
    TrainConfig,
    build_model,
)

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_only_methods_with_a_network_are_trained(tiny_model):
    assert TRAINABLE == ("edvr_stf", "edvr", "edvr_stf_detail")
    with pytest.raises(InvalidInputError, match="choose one of edvr_stf, edvr"):
        build_model(TrainConfig(method="bicubic", model=tiny_model))
    with pytest.raises(InvalidInputError, match="unknown method 'nearest'"):
        build_model(TrainConfig(method="nearest", model=tiny_model))


def test_the_hr_separation_options_reach_the_windows(tiny_model):
    config = TrainConfig(max_hr_separation=7, far_hr_separation=(30, 40), p_far_hr=0.5)
    sampling = config.sampling(("natural",), seed=5)
    assert sampling.max_hr_separation == 7
    assert sampling.far_hr_separation == (30, 40)
    assert (sampling.p_far_hr, sampling.seed, sampling.lr_patch) == (0.5, 5, 24)
    with pytest.raises(ValueError, match="far_hr_separation"):
        build_model(TrainConfig(model=tiny_model, far_hr_separation=(9, 3)))


def test_a_config_round_trips_and_earlier_keys_are_read(tiny_model):
    config = TrainConfig(model=tiny_model, far_hr_separation=(25, 50), seed=3)
    as_json = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(as_json) == config
    old = {**as_json, "max_hr_gap": 12, "far_hr_gap": [22, 44]}
    del old["max_hr_separation"], old["far_hr_separation"]
    read = TrainConfig.from_dict(old)
    assert (read.max_hr_separation, read.far_hr_separation) == (12, (22, 44))
    with pytest.raises(InvalidInputError, match="unknown keys \\['colour'\\]"):
        TrainConfig.from_dict({**as_json, "colour": "red"})


@pytest.mark.parametrize("card", ["edvr_stf_small.json", "edvr_small.json"])
def test_the_shipped_model_cards_recipes_are_read(card):
    recipe = json.loads((MODELS / card).read_text())["training"]["recipe"]
    config = TrainConfig.from_dict(recipe)
    assert config.method == card.removesuffix("_small.json")
    assert config.max_hr_separation == 20
    assert config.far_hr_separation == (21, 66)


def test_init_from_starts_from_given_weights(tmp_path, tiny_model):
    start = EDVRSTF(**tiny_model)
    torch.nn.init.constant_(start.conv_last.bias, 0.25)
    save_model(start, tmp_path / "start.pth")
    config = TrainConfig(model=tiny_model, init_from=str(tmp_path / "start.pth"))
    assert model_id(build_model(config)) == model_id(start)
    wrong = TrainConfig(method="edvr", model=tiny_model, init_from=config.init_from)
    with pytest.raises(ValueError, match="init_from"):
        build_model(wrong)


def test_gate_init_scale_scales_only_the_temporal_attention(tmp_path, tiny_model):
    start = EDVRSTF(**tiny_model)
    save_model(start, tmp_path / "start.pth")
    config = TrainConfig(
        model=tiny_model, init_from=str(tmp_path / "start.pth"), gate_init_scale=0.1
    )
    scaled = build_model(config).state_dict()
    for key, value in start.state_dict().items():
        factor = 0.1 if key.startswith("fusion.temporal_attn") else 1.0
        torch.testing.assert_close(scaled[key], value * factor)


def test_gate_from_takes_only_the_temporal_attention_of_the_donor(tmp_path, tiny_model):
    torch.manual_seed(1)
    start, donor = EDVRSTF(**tiny_model), EDVRSTF(**tiny_model)
    save_model(start, tmp_path / "start.pth")
    save_model(donor, tmp_path / "donor.pth")
    config = TrainConfig(
        model=tiny_model,
        init_from=str(tmp_path / "start.pth"),
        gate_from=str(tmp_path / "donor.pth"),
        gate_init_scale=0.5,
    )
    built = build_model(config).state_dict()
    for key, value in start.state_dict().items():
        if key.startswith("fusion.temporal_attn"):
            torch.testing.assert_close(built[key], donor.state_dict()[key] * 0.5)
        else:
            torch.testing.assert_close(built[key], value)
    other = {**tiny_model, "num_feat": 16}
    save_model(EDVRSTF(**other), tmp_path / "wide.pth")
    wrong = TrainConfig(model=tiny_model, gate_from=str(tmp_path / "wide.pth"))
    with pytest.raises(ValueError, match="gate_from"):
        build_model(wrong)


def test_a_zero_gate_scale_is_refused(tiny_model):
    with pytest.raises(ValueError, match="gate_init_scale"):
        build_model(TrainConfig(model=tiny_model, gate_init_scale=0.0))
