import csv

import numpy as np
import pytest
import torch

from xfusion_bluesky.fusion.model import load_model
from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES
from xfusion_bluesky.training.dataset import WindowSampling, make_window, paired_crop
from xfusion_bluesky.training.losses import (
    attention_loss,
    charbonnier_loss,
    hr_share,
)
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


def test_hr_share_follows_content_not_position():
    torch.manual_seed(0)
    truth = torch.rand(1, 1, 16, 16)
    near = truth + 0.05 * torch.randn_like(truth)
    foreign = torch.rand_like(truth)

    def share(before, after):
        return hr_share(torch.stack([before, after], dim=1), truth)[0]

    torch.testing.assert_close(share(truth, foreign), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(share(truth, truth), torch.tensor([0.5, 0.5]))
    before, after = share(foreign, near)
    assert after > 0.9
    assert before < 0.1
    assert before + after == pytest.approx(1.0)
    # Brightness or contrast of the whole scene does not change the shares.
    torch.testing.assert_close(
        hr_share(torch.stack([near, foreign], 1) * 0.2, truth * 0.2),
        hr_share(torch.stack([near, foreign], 1), truth),
    )


def test_attention_loss_is_zero_only_at_level_times_share():
    torch.manual_seed(0)
    truth = torch.rand(2, 1, 16, 16)
    hr = torch.stack([truth, torch.rand_like(truth)], dim=1)
    scores = torch.zeros(2, 5)
    scores[:, 3:] = 2.0 * hr_share(hr, truth)
    assert attention_loss(scores, hr, truth, level=2.0).item() == pytest.approx(0.0)
    # The LR frames' scores are not asked for anything.
    scores[:, :3] = 7.0
    assert attention_loss(scores, hr, truth, level=2.0).item() == pytest.approx(0.0)
    # Swapping the HR frames' scores costs (2 · 1)² + (2 · 1)² per window.
    swapped = scores.clone()
    swapped[:, 3:] = scores[:, 3:].flip(1)
    loss = attention_loss(swapped, hr, truth, level=2.0).item()
    assert loss == pytest.approx(2 * 8.0, rel=1e-4)


@pytest.mark.slow
def test_attention_loss_weight_moves_edvr_stf_only(tmp_path):
    import dataclasses

    plain = dataclasses.replace(_config(), stages=(Stage("x", XRAY_FAMILIES, 2),))
    weighted = dataclasses.replace(plain, attention_loss_weight=5.0)
    a = load_model(train(plain, tmp_path / "plain", progress=False))
    b = load_model(train(weighted, tmp_path / "weighted", progress=False))
    assert a.model_id != b.model_id
    with (tmp_path / "weighted" / "log.csv").open() as handle:
        assert all(float(r["attention_loss"]) > 0 for r in csv.DictReader(handle))
    # The LR-only baseline has no HR frames to score: the weight changes nothing.
    edvr = dataclasses.replace(plain, method="edvr")
    c = load_model(train(edvr, tmp_path / "edvr", progress=False))
    d = load_model(
        train(
            dataclasses.replace(edvr, attention_loss_weight=5.0),
            tmp_path / "e2",
            progress=False,
        )
    )
    assert c.model_id == d.model_id
    with pytest.raises(ValueError, match="attention_loss_weight"):
        train(dataclasses.replace(plain, attention_loss_weight=-1.0), tmp_path / "n")


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
    assert card["training"]["data"]["sampling"]["lr_patch"] == 8  # the run's, not 32
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


def _gaps(sampling: WindowSampling, index: int) -> tuple[int, int]:
    """HR gaps (before, after) in LR frames of window ``index`` (separation 1)."""
    from xfusion_bluesky.training.dataset import draw_times

    times = draw_times(
        np.random.default_rng([0, index]),
        sampling,
        np.random.default_rng([0, index, 1]),
    )
    step = times[1] - times[0]
    return round((times[1] - times[3]) / step), round((times[4] - times[1]) / step)


def test_far_hr_puts_exactly_one_hr_frame_in_the_far_range():
    far = WindowSampling(families=XRAY_FAMILIES, max_lr_separation=1, p_far_hr=1.0)
    paper = WindowSampling(families=XRAY_FAMILIES, max_lr_separation=1)
    sides = set()
    for index in range(40):
        before, after = _gaps(far, index)
        near_before, near_after = _gaps(paper, index)
        assert 0 <= near_before <= 20
        assert 1 <= near_after <= 20
        # One side is moved into 21..66, the other keeps its paper-rule gap.
        if before != near_before:
            assert 21 <= before <= 66
            assert after == near_after
            sides.add("before")
        else:
            assert 21 <= after <= 66
            sides.add("after")
    assert sides == {"before", "after"}


def test_options_change_nothing_else_in_a_window():
    import dataclasses

    base = WindowSampling(families=XRAY_FAMILIES, lr_patch=8, seed=3)
    decoy = dataclasses.replace(base, p_hr_decoy=1.0)
    for index in range(4):
        plain, swapped = make_window(index, base), make_window(index, decoy)
        assert torch.equal(plain.lr, swapped.lr)
        assert torch.equal(plain.target, swapped.target)
        same = [torch.equal(plain.hr[k], swapped.hr[k]) for k in range(2)]
        assert sorted(same) == [False, True]  # exactly one HR frame is the decoy
    # Enabled with probability 0, the options leave the stream as it was.
    off = dataclasses.replace(base, p_hr_decoy=0.0, p_far_hr=0.0)
    assert torch.equal(make_window(7, off).hr, make_window(7, base).hr)


def test_gate_init_scale_scales_only_the_temporal_attention(tmp_path):
    from xfusion_bluesky.fusion.model import EDVRSTF, save_model
    from xfusion_bluesky.training.trainer import build_model

    start = EDVRSTF(**TINY_MODEL)
    save_model(start, tmp_path / "start.pth")
    config = TrainConfig(
        model=TINY_MODEL, init_from=str(tmp_path / "start.pth"), gate_init_scale=0.1
    )
    scaled = build_model(config).state_dict()
    for key, value in start.state_dict().items():
        factor = 0.1 if key.startswith("fusion.temporal_attn") else 1.0
        torch.testing.assert_close(scaled[key], value * factor)


def test_gate_from_takes_only_the_temporal_attention_of_the_donor(tmp_path):
    from xfusion_bluesky.fusion.model import EDVRSTF, save_model
    from xfusion_bluesky.training.trainer import build_model

    torch.manual_seed(1)
    start, donor = EDVRSTF(**TINY_MODEL), EDVRSTF(**TINY_MODEL)
    save_model(start, tmp_path / "start.pth")
    save_model(donor, tmp_path / "donor.pth")
    config = TrainConfig(
        model=TINY_MODEL,
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
    other = {**TINY_MODEL, "num_feat": 16}
    save_model(EDVRSTF(**other), tmp_path / "wide.pth")
    wrong = TrainConfig(model=TINY_MODEL, gate_from=str(tmp_path / "wide.pth"))
    with pytest.raises(ValueError, match="gate_from"):
        build_model(wrong)


@pytest.mark.parametrize(
    ("field", "value"),
    [("p_hr_decoy", 1.5), ("p_far_hr", -0.1), ("far_hr_gap", (30, 20))],
)
def test_bad_sampling_options_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        WindowSampling(families=XRAY_FAMILIES, **{field: value})


def test_a_zero_gate_scale_is_refused():
    from xfusion_bluesky.training.trainer import build_model

    with pytest.raises(ValueError, match="gate_init_scale"):
        build_model(TrainConfig(model=TINY_MODEL, gate_init_scale=0.0))
