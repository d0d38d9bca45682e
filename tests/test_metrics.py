import math

import numpy as np
import pytest

from xfusion_bluesky import metrics
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.metrics import aad, mean_finite, psnr, ssim

C1, C2 = 0.01**2, 0.03**2


def test_psnr_of_constant_error_is_exact():
    truth = np.full((3, 8, 8), 0.5)
    values = psnr(truth + 0.1, truth)  # MSE 0.01 -> 20 dB
    assert values.shape == (3,)
    np.testing.assert_allclose(values, 20.0, rtol=1e-12)
    assert psnr(truth[0] + 0.1, truth[0]) == pytest.approx(20.0, rel=1e-12)
    scaled = psnr(255 * truth[0] + 25.5, 255 * truth[0], data_range=255)
    assert scaled == pytest.approx(20.0, rel=1e-12)


def test_psnr_identical_frames_are_inf_and_mean_skips_them(rng):
    truth = rng.random((3, 8, 8))
    estimate = truth.copy()
    estimate[1] += 0.1 * (truth[1] < 0.9)
    values = psnr(estimate, truth)
    assert values[0] == values[2] == math.inf
    assert math.isfinite(values[1])
    assert psnr(truth[0], truth[0]) == math.inf
    assert mean_finite(values) == (values[1], 2)
    assert mean_finite([10.0, math.inf, 20.0]) == (15.0, 1)
    assert mean_finite([math.inf, math.inf]) == (math.inf, 2)


def test_estimate_is_clipped_before_metrics():
    truth = np.ones((8, 8))
    assert psnr(truth + 0.5, truth) == math.inf
    assert aad(truth + 0.5, truth) == 0.0
    assert ssim(np.full((11, 11), -0.2), np.zeros((11, 11))) == 1.0


def test_quantize_mode_uses_8bit_values():
    truth = np.full((2, 8, 8), 100 / 255)
    estimate = np.full((2, 8, 8), 110 / 255)  # 10 levels apart once quantised
    expected = 20 * math.log10(255 / 10)
    np.testing.assert_allclose(psnr(estimate, truth, quantize=True), expected)
    np.testing.assert_allclose(psnr(estimate, truth), expected)
    np.testing.assert_allclose(aad(estimate, truth, quantize=True), 10.0)
    # Differences below half a level vanish once quantised.
    assert psnr(truth[0] + 1e-4, truth[0], quantize=True) == math.inf
    assert psnr(truth[0] + 1e-4, truth[0]) == pytest.approx(80.0)


def test_aad_of_known_difference():
    truth = np.zeros((2, 4, 4))
    estimate = truth.copy()
    estimate[:, :2] = 0.25  # half the pixels off by 0.25
    np.testing.assert_allclose(aad(estimate, truth), 0.125)
    # round(255 * 0.25) = 64 levels on half the pixels
    np.testing.assert_allclose(aad(estimate, truth, quantize=True), 32.0)


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_ssim_of_identical_images_is_one(rng, window):
    truth = rng.random((2, 16, 16))
    np.testing.assert_array_equal(ssim(truth, truth, window=window), 1.0)


def test_ssim_uniform_window_matches_formula_on_one_window(rng):
    # A 7x7 frame holds exactly one uniform window: SSIM is the formula itself.
    truth = rng.uniform(0.2, 0.6, (7, 7))
    estimate = 0.5 * truth + 0.1
    mu_t, mu_e = truth.mean(), estimate.mean()
    var_t = truth.var() * 49 / 48  # sample (co)variances
    expected = (2 * mu_e * mu_t + C1) * (2 * 0.5 * var_t + C2)
    expected /= (mu_e**2 + mu_t**2 + C1) * (1.25 * var_t + C2)
    assert ssim(estimate, truth, window="uniform") == pytest.approx(expected, rel=1e-12)


def test_ssim_gaussian_window_of_offset_image_is_luminance_term(rng):
    # y = x + d: equal variances and covariance, so SSIM = the luminance term at
    # the single 11x11 window of an 11x11 frame.
    truth = rng.uniform(0.2, 0.6, (11, 11))
    weights = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    weights = np.outer(weights, weights) / weights.sum() ** 2
    mu = (weights * truth).sum()
    expected = (2 * mu * (mu + 0.1) + C1) / (mu**2 + (mu + 0.1) ** 2 + C1)
    assert ssim(truth + 0.1, truth) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("metric", "kwargs"),
    [
        (psnr, {}),
        (aad, {"quantize": True}),
        (ssim, {"window": "gaussian"}),
        (ssim, {"window": "uniform", "quantize": True}),
    ],
)
def test_stack_equals_per_frame_loop_across_chunks(rng, monkeypatch, metric, kwargs):
    truth = rng.random((5, 16, 20))
    estimate = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    before = estimate.copy()
    whole = metric(estimate, truth, **kwargs)
    monkeypatch.setattr(metrics, "_CHUNK_PIXELS", 2 * 16 * 20)  # chunks of 2 frames
    chunked = metric(estimate, truth, **kwargs)
    loop = [metric(e, t, **kwargs) for e, t in zip(estimate, truth, strict=True)]
    assert whole.shape == (5,)
    assert all(isinstance(v, float) for v in loop)
    np.testing.assert_allclose(whole, loop, rtol=1e-13)
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(estimate, before)


@pytest.mark.parametrize("quantize", [False, True])
def test_ssim_matches_scikit_image(rng, quantize):
    skm = pytest.importorskip("skimage.metrics")
    truth = rng.random((3, 24, 31))
    estimate = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    if quantize:
        e8, t8 = np.round(255 * estimate), np.round(255 * truth)
        kw = {"data_range": 255}
    else:
        e8, t8, kw = estimate, truth, {"data_range": 1}
    gauss = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    for t in range(3):
        reference = skm.structural_similarity(e8[t], t8[t], **kw)
        ours = ssim(estimate[t], truth[t], window="uniform", quantize=quantize)
        assert ours == pytest.approx(reference, abs=1e-6)
        reference = skm.structural_similarity(e8[t], t8[t], **kw, **gauss)
        ours = ssim(estimate[t], truth[t], quantize=quantize)
        assert ours == pytest.approx(reference, abs=1e-6)


ONES_4 = np.ones((4, 4))
ONES_9 = np.ones((9, 9))


@pytest.mark.parametrize(
    ("metric", "estimate", "truth", "kwargs", "match"),
    [
        (psnr, ONES_4, np.ones((4, 5)), {}, "shape"),
        (psnr, np.ones(4), np.ones(4), {}, r"\(t, h, w\)"),
        (aad, np.ones((1, 1, 4, 4)), np.ones((1, 1, 4, 4)), {}, "estimate"),
        (aad, np.ones((0, 4, 4)), np.ones((0, 4, 4)), {}, "empty"),
        (psnr, np.ones((2, 4, 4)), np.full((2, 4, 4), np.nan), {}, "truth"),
        (ssim, ONES_9, ONES_9, {}, "11×11"),
        (ssim, ONES_9, ONES_9, {"window": "box"}, "window"),
        (psnr, ONES_4, ONES_4, {"data_range": 0}, "data_range"),
        (psnr, ONES_4, ONES_4, {"data_range": 255, "quantize": True}, "quantize"),
    ],
)
def test_bad_input_raises_clear_error(metric, estimate, truth, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        metric(estimate, truth, **kwargs)


def test_bad_types_and_values_raise():
    with pytest.raises(TypeError, match="real"):
        psnr(np.ones((4, 4), complex), ONES_4)
    with pytest.raises(InvalidInputError, match="empty"):
        mean_finite([])
    with pytest.raises(InvalidInputError, match="NaN"):
        mean_finite([1.0, np.nan])
