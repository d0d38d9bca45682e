"""The shared field on the fused grid: the whole-pixel crop, and the one-step warp."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from xfusion_bluesky.errors import RunNotFusableError
from xfusion_bluesky.fusion.field import (
    SUPPORT_MARGIN_HS_PX,
    FieldRegistration,
    check_registration_rois,
    register_fields,
)
from xfusion_bluesky.geometry import Similarity, resample

LR_SHAPE = (32, 48)  # the UHS frame: a 128×192 fused grid
MISALIGNED = [
    Similarity((100, 150), 3.6, 2.5, (10.3, 7.6), flip_y=True),
    Similarity((110, 160), 4.4, -2.9, (3.2, 20.7), flip_x=True),
    Similarity((100, 150), 4.0, 0.0, (10.5, 7.25)),  # sub-pixel shift only
]


@pytest.fixture(scope="module")
def field():
    """A smooth random scene on the fused grid: std 100, mean 1000 counts."""
    noise = np.random.default_rng(3).random((4 * LR_SHAPE[0], 4 * LR_SHAPE[1]))
    smooth = gaussian_filter(noise, 4.0)
    return (smooth - smooth.mean()) / smooth.std() * 100.0 + 1000.0


@pytest.mark.parametrize("similarity", MISALIGNED)
def test_warp_puts_the_hs_frame_back_on_the_fused_grid(field, similarity):
    hs = resample(field, similarity.matrix(), similarity.hs_shape)  # what HS sees
    reg = register_fields(LR_SHAPE, similarity.hs_shape, similarity=similarity)
    assert reg.resampled
    assert reg.grid_window == tuple(4 * v for v in reg.lr_window)
    lr = np.zeros((2, *LR_SHAPE), np.uint16)
    lr_c, hr_c = reg.apply(lr, hs[None])
    _ly, _lx, lh, lw = reg.lr_window
    assert lr_c.shape == (2, lh, lw)
    assert hr_c.shape == (1, 4 * lh, 4 * lw)
    assert hr_c.dtype == np.float32
    y0, x0, h, w = reg.grid_window
    error = hr_c[0] - field[y0 : y0 + h, x0 : x0 + w]
    # Two spline resamplings of a scene of std 100: interpolation error only.
    assert np.sqrt(np.mean(error**2)) < 0.1
    assert np.max(np.abs(error)) < 2.0
    # The shared field is most of the HS view (it covers about 100 × 150 HS px;
    # the 3 HS px margin alone costs 6 % of each side at this small size).
    hs_area_on_grid = np.prod(similarity.hs_shape) * (4 / similarity.scale_ratio) ** 2
    assert h * w > 0.7 * hs_area_on_grid


@pytest.mark.parametrize("similarity", MISALIGNED)
def test_shared_field_is_the_largest_whose_support_lies_in_the_hs_frame(similarity):
    reg = register_fields(LR_SHAPE, similarity.hs_shape, similarity=similarity)
    height, width = similarity.hs_shape

    def inside(window):
        ly, lx, lh, lw = window
        if ly < 0 or lx < 0 or ly + lh > LR_SHAPE[0] or lx + lw > LR_SHAPE[1]:
            return False
        ys, xs = np.meshgrid(
            np.arange(4 * ly, 4 * (ly + lh)), np.arange(4 * lx, 4 * (lx + lw))
        )
        grid = np.column_stack([ys.ravel(), xs.ravel(), np.ones(ys.size)])
        rc = grid @ np.linalg.inv(similarity.matrix()).T
        margin = SUPPORT_MARGIN_HS_PX - 1e-6
        return bool(
            np.all(rc[:, 0] >= margin)
            and np.all(rc[:, 0] <= height - 1 - margin)
            and np.all(rc[:, 1] >= margin)
            and np.all(rc[:, 1] <= width - 1 - margin)
        )

    ly, lx, lh, lw = reg.lr_window
    assert inside(reg.lr_window)
    # One more UHS row or column on any side leaves the HS frame's support.
    for grown in (
        (ly - 1, lx, lh + 1, lw),
        (ly, lx - 1, lh, lw + 1),
        (ly, lx, lh + 1, lw),
        (ly, lx, lh, lw + 1),
    ):
        assert not inside(grown), grown


def test_a_whole_pixel_similarity_is_the_version_1_crop():
    similarity = Similarity((56, 90), offset_hr_px=(4.0, 6.0), flip_y=True)
    reg = register_fields((16, 24), (56, 90), similarity=similarity)
    old = register_fields((16, 24), (56, 90), offset_hr_px=(4, 6), flip_y=True)
    assert not reg.resampled
    assert (reg.lr_window, reg.hr_window) == (old.lr_window, old.hr_window)
    assert reg.lr_window == (1, 2, 14, 22)
    assert reg.hr_window == (0, 2, 56, 88)
    hr = np.arange(56 * 90, dtype=np.uint16).reshape(1, 56, 90)
    _, cropped = reg.apply(np.zeros((1, 16, 24)), hr)
    assert cropped.dtype == np.uint16  # nothing interpolated
    assert np.shares_memory(cropped, hr)  # a view, as before
    np.testing.assert_array_equal(cropped, hr[:, ::-1, 2:90])
    assert reg.metadata()["interpolation"].startswith("none")
    assert reg.metadata()["grid_window"] == [4, 8, 56, 88]


@pytest.mark.parametrize(
    ("similarity", "words"),
    [
        (Similarity((64, 96), 3.2), "scale ratio 3.2 (UHS / HS pixel size) is outside"),
        (Similarity((64, 96), 4.6), "scale ratio 4.6"),
        (Similarity((64, 96), 4.0, 3.5), "rotation 3.5° is beyond ±3°"),
        (Similarity((64, 96), 4.0, -3.1), "rotation -3.1°"),
    ],
)
def test_a_transform_out_of_range_is_refused(similarity, words):
    with pytest.raises(RunNotFusableError, match="run registration_scan again") as err:
        register_fields(LR_SHAPE, (64, 96), similarity=similarity)
    assert words in str(err.value)


def test_a_transform_that_misses_the_uhs_field_is_refused():
    far = Similarity((64, 96), 3.9, 1.0, (500.3, 0.0))
    with pytest.raises(RunNotFusableError, match="covers no whole pixel"):
        register_fields(LR_SHAPE, (64, 96), similarity=far)


@pytest.mark.parametrize(
    "similarity", [*MISALIGNED, Similarity((56, 90), offset_hr_px=(4, 6))]
)
def test_the_stored_record_rebuilds_the_same_registration(similarity):
    reg = register_fields(LR_SHAPE, similarity.hs_shape, similarity=similarity)
    record = {"scale": 4, "measured_by": "test", **reg.metadata()}
    assert FieldRegistration.from_metadata(record, similarity.hs_shape) == reg


def test_a_record_of_format_2_rebuilds_as_a_crop():
    record = {
        "scale": 4,
        "offset_hr_px": [4.0, 0.0],
        "flip_y": True,
        "flip_x": False,
        "lr_window": [1, 0, 14, 24],
        "hr_window": [0, 0, 56, 96],
    }
    reg = FieldRegistration.from_metadata(record, (56, 96))
    assert not reg.resampled
    assert reg.grid_window == (4, 0, 56, 96)
    hr = np.arange(56 * 96).reshape(1, 56, 96)
    _, cropped = reg.apply(np.zeros((1, 16, 24)), hr)
    np.testing.assert_array_equal(cropped, hr[:, ::-1, :])


def test_a_registration_measured_with_other_rois_is_stale():
    measured = {"uhs": [0, 0, 250, 400], "hs": [10, 20, 800, 1280]}
    check_registration_rois(
        measured, {"uhs": [0, 0, 250, 400], "hs": [10, 20, 800, 1280]}
    )
    check_registration_rois(None, {"uhs": [0, 0, 1, 1], "hs": None})
    check_registration_rois(measured, {"uhs": None, "hs": None})  # not recorded
    with pytest.raises(RunNotFusableError) as err:
        check_registration_rois(
            measured, {"uhs": [0, 0, 250, 400], "hs": [0, 0, 800, 1280]}
        )
    message = str(err.value)
    assert "older than the camera configuration" in message
    assert "[10, 20, 800, 1280]" in message
    assert "[0, 0, 800, 1280]" in message
    assert "run registration_scan again" in message
