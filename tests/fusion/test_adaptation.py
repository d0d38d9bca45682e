import math

import numpy as np
import pytest
import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion import adaptation
from xfusion_bluesky.fusion.adaptation import AdaptSettings, adapt_network
from xfusion_bluesky.fusion.model import edvr_small, edvr_stf_small, model_id

TINY = {
    "num_feat": 8,
    "deformable_groups": 1,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}
CPU = torch.device("cpu")
#: Few, small steps: every adaptation here takes well under a second.
FAST = {"iterations": 3, "batch_size": 2, "lr_patch": 8}


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return edvr_stf_small(**TINY).eval()


@pytest.fixture
def burst():
    """Nine LR frames of 8×12 and HR frames at 0, 2, 4, 6, 8 (HR frame k = k/8)."""
    rng = np.random.default_rng(0)
    lr = rng.random((9, 8, 12), dtype=np.float32)
    hr = np.stack([np.full((32, 48), k / 8, np.float32) for k in range(5)])
    hr += 0.1 * rng.random(hr.shape, dtype=np.float32)
    return lr, hr, np.arange(0, 9, 2)


def adapt(network, burst, **settings):
    lr, hr, index = burst
    return adapt_network(
        network,
        lr,
        hr,
        index,
        settings=AdaptSettings(**(FAST | settings)),
        lr_separation=1,
        device=CPU,
    )


def test_adaptation_is_deterministic_with_a_seed(network, burst):
    _, first = adapt(network, burst, seed=3, iterations=2)
    _, again = adapt(network, burst, seed=3, iterations=2)
    _, other = adapt(network, burst, seed=4, iterations=2)
    assert first.iterations == 2
    assert first.adapted_model_id == again.adapted_model_id
    assert first.adapted_holdout_psnr_db == again.adapted_holdout_psnr_db
    assert other.adapted_model_id != first.adapted_model_id
    assert first.adapted_model_id != first.base_model_id


def test_adaptation_stops_within_its_time_budget(network, burst):
    # One step and the held-out checks, with whatever warm-up this process needs.
    _, one_step = adapt(network, burst, iterations=1)
    budget = 0.3
    _, report = adapt(network, burst, iterations=100_000, time_budget_s=budget)
    assert 0 < report.iterations < 100_000
    # The fine-tuning stops before a step that would overrun the budget; the
    # checks come on top.
    assert report.seconds < budget + one_step.seconds + 0.5


def test_no_budget_takes_no_step_and_keeps_the_original(network, burst):
    used, report = adapt(network, burst, time_budget_s=0.0)
    assert used is network
    assert (report.kept, report.iterations, report.adapted_model_id) == (
        False,
        0,
        None,
    )
    assert "time budget" in report.reason


def test_falls_back_when_the_held_out_check_fails(network, burst):
    used, report = adapt(network, burst, min_gain_db=1e9)
    assert used is network
    assert not report.kept
    assert report.gain_db is not None
    assert "<=" in report.reason
    assert report.adapted_model_id not in (None, report.base_model_id)


def test_a_divergent_learning_rate_falls_back(network, burst):
    used, report = adapt(network, burst, learning_rate=1e4, iterations=4)
    assert used is network
    assert not report.kept
    assert report.gain_db is None or report.gain_db <= 0
    assert report.to_dict()["gain_db"] is None or math.isfinite(report.gain_db)


@pytest.mark.parametrize("count", [1, 2])
def test_too_few_hr_frames_keep_the_original(network, burst, count):
    lr, hr, index = burst
    used, report = adapt(network, (lr, hr[:count], index[:count]))
    assert used is network
    assert not report.kept
    assert report.iterations == 0
    assert "at least 3 HR frames" in report.reason
    assert report.holdout_hr == []


def test_the_callers_module_is_unchanged(network, burst):
    before = model_id(network)
    used, report = adapt(network, burst, min_gain_db=-math.inf)
    assert report.kept
    assert used is not network
    assert model_id(network) == before == report.base_model_id
    assert not network.training
    assert not used.training
    assert model_id(used) == report.adapted_model_id == used.model_id


def test_held_out_frames_never_train(network, burst, monkeypatch):
    seen = []
    crop = adaptation._crop

    def spy(window, size, rng):
        seen.append(window)
        return crop(window, size, rng)

    monkeypatch.setattr(adaptation, "_crop", spy)
    _, report = adapt(network, burst, holdout=2, iterations=6)
    assert report.holdout_hr == [1, 3]  # both of two picks among 1, 2, 3
    assert report.train_hr == [0, 2, 4]
    hr_levels = {round(float(np.floor(f.min() * 8))) for w in seen for f in w[1]}
    targets = {round(float(np.floor(w[2].min() * 8))) for w in seen}
    assert targets == {0, 2, 4}
    assert hr_levels <= {0, 2, 4}


def test_holdout_is_spread_over_the_interior():
    assert adaptation._pick_holdout(5, 0, 0) in ([1], [2], [3])
    picks = adaptation._pick_holdout(14, 0, 0)
    assert len(picks) == 3
    assert all(1 <= k <= 12 for k in picks)
    assert np.diff(picks).min() >= 3
    assert adaptation._pick_holdout(5, 99, 0) == [1, 2, 3]
    assert adaptation._pick_holdout(2, 1, 0) == []


def test_odd_frame_sizes_and_lr_only_networks(burst):
    lr, hr, index = burst
    torch.manual_seed(1)
    lr_only = edvr_small(**TINY).eval()
    # 7×10 LR frames are padded to 8×12 and cropped back; a 24 px patch takes
    # the whole (non-square) frame.
    odd = (lr[:, :7, :10], hr[:, :28, :40], index)
    _, report = adapt(lr_only, odd, lr_patch=24)
    assert report.iterations == FAST["iterations"]
    assert math.isfinite(report.holdout_psnr_db)
    assert math.isfinite(report.adapted_holdout_psnr_db)


def test_settings_round_trip_and_refuse_bad_values():
    settings = AdaptSettings(iterations=7, seed=2)
    assert AdaptSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(InvalidInputError, match="iterations"):
        AdaptSettings(iterations=0)
    with pytest.raises(InvalidInputError, match="learning_rate"):
        AdaptSettings(learning_rate=0.0)


@pytest.mark.slow
def test_shipped_weights_gain_on_held_out_frames():
    from xfusion_bluesky.fusion.model.loader import load_network
    from xfusion_bluesky.synthetic.scene import generate_scene

    network = load_network("edvr_stf", None, device=CPU).network
    video = generate_scene("natural", num_frames=21, height=96, width=128, seed=2**31)
    lr = video.reshape(21, 24, 4, 32, 4).mean(axis=(2, 4)).astype(np.float32)
    index = np.arange(0, 21, 5)
    _, report = adapt_network(
        network,
        lr,
        video[index].astype(np.float32),
        index,
        settings=AdaptSettings(iterations=20),
        lr_separation=1,
        device=CPU,
    )
    assert report.kept
    assert report.gain_db > 0
