import math

import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.synthetic.degradation import (
    add_poisson_noise,
    b0_for_psnr,
    bin_frames,
    degrade,
    lr_psnr,
)


def test_bin_frames_hand_computed_8x8():
    # Block (i, j) of arange(64).reshape(8, 8) averages rows 4i..4i+3, columns
    # 4j..4j+3: 1.5 * 8 + 1.5 = 13.5, +4 per block column, +32 per block row.
    frame = np.arange(64, dtype=np.float64).reshape(8, 8)
    binned = bin_frames(frame)
    assert binned.dtype == np.float32
    np.testing.assert_array_equal(binned, [[13.5, 17.5], [45.5, 49.5]])


def test_bin_frames_crops_and_handles_sequences(rng):
    frames = rng.random((3, 9, 10))
    binned = bin_frames(frames, factor=4)
    assert binned.shape == (3, 2, 2)
    for t in range(3):
        np.testing.assert_array_equal(binned[t], bin_frames(frames[t, :8, :8]))
    np.testing.assert_array_equal(bin_frames(frames, factor=1), frames.astype("f4"))


def test_bin_frames_keeps_mean_and_input(rng):
    frames = rng.random((4, 16, 24))
    before = frames.copy()
    binned = bin_frames(frames)
    assert binned.mean() == pytest.approx(frames.mean(), abs=1e-6)
    np.testing.assert_allclose(binned.mean(axis=(1, 2)), frames.mean(axis=(1, 2)))
    np.testing.assert_array_equal(frames, before)


def test_poisson_noise_is_seeded_and_clipped(rng):
    clean = rng.random((2, 16, 16))
    before = clean.copy()
    noisy = add_poisson_noise(clean, 20.0, 5)
    assert noisy.dtype == np.float32
    assert noisy.shape == clean.shape
    assert noisy.min() >= 0.0
    assert noisy.max() == 1.0  # b0 = 20: bright pixels overshoot and are clipped
    np.testing.assert_array_equal(noisy, add_poisson_noise(clean, 20.0, 5))
    np.testing.assert_array_equal(
        noisy, add_poisson_noise(clean, 20.0, np.random.default_rng(5))
    )
    assert not np.array_equal(noisy, add_poisson_noise(clean, 20.0, 6))
    np.testing.assert_array_equal(clean, before)


def test_poisson_noise_is_unbiased_with_poisson_variance():
    clean = np.full((8, 32, 32), 0.3)
    noisy = add_poisson_noise(clean, 100.0, 0).astype(np.float64)
    # Mean 0.3, variance 0.3 / b0; 8192 samples: the mean's sd is 6e-4.
    assert noisy.mean() == pytest.approx(0.3, abs=3e-3)
    assert noisy.var() == pytest.approx(0.3 / 100.0, rel=0.1)
    assert lr_psnr(clean, noisy) == pytest.approx(10 * math.log10(100 / 0.3), abs=0.2)


def test_lr_psnr_pools_frames():
    clean = np.zeros((2, 4, 4))
    noisy = clean.copy()
    noisy[0] = 0.1  # MSE 0.01 on frame 0, 0 on frame 1: pooled 0.005
    assert lr_psnr(clean, noisy) == pytest.approx(10 * math.log10(200))
    assert lr_psnr(clean, clean) == math.inf


@pytest.mark.parametrize("target_db", [20.0, 30.0, 40.0])
def test_b0_for_psnr_hits_target(target_db):
    clean = np.random.default_rng(7).random((8, 32, 32))
    b0 = b0_for_psnr(target_db, clean, seed=3)
    achieved = lr_psnr(clean, add_poisson_noise(clean, b0, 3))
    assert achieved == pytest.approx(target_db, abs=0.05)
    # Clipping at 1 removes noise, so b0 sits below the closed form at 20 dB.
    assert b0 == pytest.approx(0.5 * 10 ** (target_db / 10), rel=0.2)


def test_b0_for_psnr_closed_form():
    assert b0_for_psnr(30.0) == pytest.approx(500.0)
    clean = np.random.default_rng(8).random((8, 32, 32))  # mean ≈ 0.5
    noisy = add_poisson_noise(clean, b0_for_psnr(40.0), 0)
    assert lr_psnr(clean, noisy) == pytest.approx(40.0, abs=0.2)


def test_degrade_bins_then_adds_noise(rng):
    hr = rng.random((3, 16, 12))
    lr = degrade(hr)
    assert lr.shape == (3, 4, 3)
    np.testing.assert_array_equal(lr, bin_frames(hr))
    noisy = degrade(hr, b0=50.0, rng=2)
    np.testing.assert_array_equal(noisy, add_poisson_noise(lr, 50.0, 2))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bin_frames(np.ones((8, 8)), factor=0), InvalidInputError, "factor"),
        (lambda: bin_frames(np.ones((8, 8)), factor=2.5), TypeError, "factor"),
        (lambda: bin_frames(np.ones(8)), InvalidInputError, "2-D or 3-D"),
        (lambda: bin_frames(np.ones((3, 3))), InvalidInputError, "block"),
        (lambda: bin_frames(np.full((4, 4), np.nan)), InvalidInputError, "NaN"),
        (lambda: bin_frames(np.ones((0, 4, 4))), InvalidInputError, "empty"),
        (lambda: add_poisson_noise(np.ones((4, 4)), 0.0, 0), InvalidInputError, "b0"),
        (
            lambda: add_poisson_noise(np.ones((4, 4)), np.nan, 0),
            InvalidInputError,
            "b0",
        ),
        (
            lambda: add_poisson_noise(-np.ones((4, 4)), 10.0, 0),
            InvalidInputError,
            "≥ 0",
        ),
        (lambda: add_poisson_noise(np.ones((4, 4)), 1e20, 0), InvalidInputError, "b0"),
        (lambda: add_poisson_noise(np.ones((4, 4)), 10.0, "x"), TypeError, "rng"),
        (lambda: lr_psnr(np.ones((4, 4)), np.ones((4, 5))), InvalidInputError, "shape"),
        (lambda: b0_for_psnr(np.inf), InvalidInputError, "target_db"),
        (
            lambda: b0_for_psnr(30.0, np.full((4, 4), 2.0)),
            InvalidInputError,
            r"\[0, 1\]",
        ),
        (lambda: b0_for_psnr(30.0, np.zeros((4, 4))), InvalidInputError, "all zero"),
        (lambda: b0_for_psnr(1.0, np.full((8, 8), 0.5)), InvalidInputError, "reach"),
        (lambda: degrade(np.full((4, 4), 3.0)), InvalidInputError, "hr_frames"),
    ],
)
def test_bad_input_raises_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
