import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.normalization import (
    PERCENTILES,
    denormalize,
    normalize_percentile,
    percentile_range,
)


def test_percentile_range_is_linear_and_pools_frames():
    ramp = np.arange(101.0).reshape(1, 1, 101)  # percentile p of 0..100 is p
    lo, hi = percentile_range(ramp)
    assert (lo, hi) == (pytest.approx(0.35), pytest.approx(99.65))
    assert isinstance(lo, float)
    assert isinstance(hi, float)
    # Each frame alone is flat; only the whole sequence spans 0..1.
    frames = np.stack([np.zeros((4, 4)), np.ones((4, 4))])
    assert percentile_range(frames) == (0.0, 1.0)
    assert percentile_range(frames, 50, 100) == (0.5, 1.0)


def test_normalize_round_trip(rng):
    frames = rng.normal(1000.0, 100.0, size=(4, 8, 8))
    before = frames.copy()
    lo, hi = percentile_range(frames)
    frames01 = normalize_percentile(frames, lo, hi)
    assert frames01.dtype == np.float32
    assert frames01.min() == 0.0
    assert frames01.max() == 1.0
    inside = (frames > lo) & (frames < hi)
    assert 0.9 < inside.mean() < 1.0  # 0.7 % clipped, the rest kept
    restored = denormalize(frames01, lo, hi)
    assert restored.dtype == np.float32
    np.testing.assert_allclose(restored, np.clip(frames, lo, hi), rtol=1e-6)
    np.testing.assert_array_equal(frames, before)


def test_flat_sequence_normalizes_to_zeros():
    frames = np.full((3, 4, 4), 7.0)
    lo, hi = percentile_range(frames)
    assert lo == hi == 7.0
    np.testing.assert_array_equal(normalize_percentile(frames, lo, hi), 0.0)
    np.testing.assert_array_equal(normalize_percentile(frames, 9.0, 2.0), 0.0)
    np.testing.assert_array_equal(denormalize(np.zeros((3, 4, 4)), lo, hi), 7.0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: percentile_range(np.ones((4, 4)), 60, 40), InvalidInputError, "low"),
        (lambda: percentile_range(np.ones(4)), InvalidInputError, "2-D or 3-D"),
        (
            lambda: normalize_percentile(np.ones((4, 4)), 0, np.inf),
            InvalidInputError,
            "hi",
        ),
        (lambda: normalize_percentile(np.ones((4, 4)), "a", 1), TypeError, "lo"),
        (
            lambda: denormalize(np.full((2, 2), np.nan), 0, 1),
            InvalidInputError,
            "frames01 contains NaN",
        ),
        (lambda: percentile_range(np.ones((4, 4)) + 0j), TypeError, "real numbers"),
    ],
)
def test_bad_input_raises_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_default_percentiles_are_the_papers():
    assert PERCENTILES == (0.35, 99.65)
    ramp = np.arange(101.0).reshape(1, 1, 101)
    assert percentile_range(ramp) == percentile_range(ramp, *PERCENTILES)
