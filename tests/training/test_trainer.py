import csv

import numpy as np
import pytest
import torch

from xfusion_bluesky.fusion.model import load_model
from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES
from xfusion_bluesky.training.dataset import WindowSampling, make_window, paired_crop
from xfusion_bluesky.training.losses import charbonnier_loss
from xfusion_bluesky.training.trainer import Stage, TrainConfig, train

TINY_MODEL = {
    "num_feat": 8,
    "deformable_groups": 2,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}


def _config(method="edvr_stf"):
    return TrainConfig(
        method=method,
        model=TINY_MODEL,
        stages=(
            Stage("pretrain", ("natural",), 2),
            Stage("finetune", XRAY_FAMILIES, 2),
        ),
        batch_size=2,
        lr_patch=8,
        checkpoint_every=1,
        validate_every=2,
        validation_windows=2,
        num_workers=0,
    )


def test_windows_are_deterministic_and_shaped():
    sampling = WindowSampling(families=XRAY_FAMILIES, lr_patch=8, seed=3)
    a, b = make_window(5, sampling), make_window(5, sampling)
    assert a.lr.shape == (3, 1, 8, 8)
    assert a.hr.shape == (2, 1, 32, 32)
    assert a.target.shape == (1, 32, 32)
    assert torch.equal(a.lr, b.lr)
    assert torch.equal(a.target, b.target)
    assert not torch.equal(make_window(6, sampling).target, a.target)


def test_hr_crop_sits_exactly_over_its_lr_crop():
    lr = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)
    hr = np.kron(lr, np.ones((4, 4), dtype=np.float32))
    lr_crop, hr_crop = paired_crop(lr, hr, 3, 5, 4)
    assert np.array_equal(hr_crop[::4, ::4], lr_crop)
    assert hr_crop.shape == (16, 16)


def test_noise_free_lr_is_the_binned_truth():
    sampling = WindowSampling(
        families=("natural",),
        lr_patch=8,
        log10_b0_range=(12.0, 12.0),
        max_lr_separation=1,
        p_hr_at_reference=1.0,
        max_hr_gap=1,
    )
    window = make_window(0, sampling)
    # With the HR frame "before" at the reference, it is the truth itself.
    assert torch.equal(window.hr[0], window.target)
    binned = window.target[0].reshape(8, 4, 8, 4).mean(dim=(1, 3))
    torch.testing.assert_close(window.lr[1, 0], binned, atol=1e-5, rtol=0)


def test_charbonnier_is_smooth_l1_sum():
    a = torch.tensor([0.0, 1.0, 3.0])
    assert charbonnier_loss(a, torch.zeros(3)).item() == pytest.approx(4.0, abs=1e-5)


@pytest.mark.slow
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    config = _config()
    whole = train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=3)
    assert not (tmp_path / "split" / "final.pth").exists()
    split = train(config, tmp_path / "split", progress=False)
    a, b = load_model(whole), load_model(split)
    assert a.model_id == b.model_id
    with (tmp_path / "split" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "whole" / "loss.png").stat().st_size > 0


@pytest.mark.slow
def test_trains_the_lr_only_baseline_and_rejects_a_changed_config(tmp_path):
    config = _config("edvr")
    model = load_model(train(config, tmp_path, progress=False))
    assert type(model).__name__ == "EDVR"
    changed = TrainConfig(**{**config.__dict__, "batch_size": 3})
    with pytest.raises(ValueError, match="different config"):
        train(changed, tmp_path, progress=False)


@pytest.mark.slow
def test_export_writes_weights_and_a_model_card(tmp_path):
    import json

    from xfusion_bluesky.training.card import export_model

    train(_config(), tmp_path / "run", progress=False)
    card_path = export_model(
        tmp_path / "run", tmp_path / "models" / "tiny.pth", quality={"psnr_db": 1.0}
    )
    card = json.loads(card_path.read_text())
    model = load_model(tmp_path / "models" / "tiny.pth")
    assert card["sha256"] == model.model_id
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["training"]["iterations"] == 4
    assert card["training"]["data"]["scene_version"]
    assert card["validation"] == {"psnr_db": 1.0}


def test_init_from_starts_from_given_weights(tmp_path):
    from xfusion_bluesky.fusion.model import EDVRSTF, model_id, save_model
    from xfusion_bluesky.training.trainer import build_model

    start = EDVRSTF(**TINY_MODEL)
    torch.nn.init.constant_(start.conv_last.bias, 0.25)
    save_model(start, tmp_path / "start.pth")
    config = TrainConfig(model=TINY_MODEL, init_from=str(tmp_path / "start.pth"))
    assert model_id(build_model(config)) == model_id(start)
    wrong = TrainConfig(method="edvr", model=TINY_MODEL, init_from=config.init_from)
    with pytest.raises(ValueError, match="init_from"):
        build_model(wrong)
