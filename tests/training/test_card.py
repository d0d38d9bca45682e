import json

import pytest

from xfusion_bluesky.fusion.model import load_model
from xfusion_bluesky.training.card import export_model
from xfusion_bluesky.training.trainer import train


@pytest.mark.slow
def test_export_writes_weights_and_a_model_card(tmp_path, tiny_config):
    train(tiny_config(), tmp_path / "run", progress=False)
    card_path = export_model(
        tmp_path / "run", tmp_path / "models" / "tiny.pth", quality={"psnr_db": 1.0}
    )
    card = json.loads(card_path.read_text())
    model = load_model(tmp_path / "models" / "tiny.pth")
    assert card["sha256"] == model.model_id
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["training"]["iterations"] == 4
    assert card["training"]["data"]["scene_version"]
    sampling = card["training"]["data"]["sampling"]
    assert sampling["lr_patch"] == 8  # the run's, not 32
    assert sampling["max_hr_separation"] == 20
    assert sampling["far_hr_separation"] == [21, 66]
    assert card["validation"] == {"psnr_db": 1.0}
