import pytest
import torch

from xfusion_bluesky.training.losses import attention_loss, charbonnier_loss, hr_share


def test_charbonnier_is_smooth_l1_sum():
    a = torch.tensor([0.0, 1.0, 3.0], requires_grad=True)
    loss = charbonnier_loss(a, torch.zeros(3))
    assert loss.item() == pytest.approx(4.0, abs=1e-5)
    loss.backward()
    # smooth at zero (gradient 0, not undefined), ±1 away from it like L1
    torch.testing.assert_close(a.grad, torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="differ"):
        charbonnier_loss(torch.zeros(2, 3), torch.zeros(3, 2))


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
