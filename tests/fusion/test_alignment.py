"""HS frames onto the UHS frame axis; the UHS field onto the HS field."""

import logging

import numpy as np
import pytest

from xfusion_bluesky.errors import RunNotFusableError
from xfusion_bluesky.fusion.alignment import align_hr_times, register_fields

PERIOD = 5e-7


def test_hr_frames_take_the_nearest_lr_frame_and_report_the_error():
    lr_times = PERIOD * np.arange(64)
    hr_times = PERIOD * np.array([0.0, 16.2, 31.9, 47.6])
    alignment = align_hr_times(lr_times, hr_times)
    assert alignment.hr_index.tolist() == [0, 16, 32, 48]
    np.testing.assert_allclose(alignment.error_s / PERIOD, [0.0, 0.2, -0.1, -0.4])
    assert alignment.max_error_periods == pytest.approx(0.4)
    assert alignment.dropped == 0


def test_misaligned_hr_frames_are_warned_about(caplog):
    lr_times = PERIOD * np.arange(32)
    with caplog.at_level(logging.WARNING):
        align_hr_times(lr_times, PERIOD * np.array([0.1, 16.1]))
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        align_hr_times(lr_times, PERIOD * np.array([0.3, 16.3]))
    assert "0.30 UHS periods" in caplog.text


def test_hr_frames_outside_the_burst_or_doubled_are_dropped():
    lr_times = 1e-6 + PERIOD * np.arange(16)  # the UHS starts 2 periods late
    hr_times = PERIOD * np.array([0.0, 5.0, 5.2, 17.4, 40.0])
    alignment = align_hr_times(lr_times, hr_times)
    # 0.0 is 2 periods early, 17.4 rounds to LR frame 15 (+0.4), 40 is late;
    # 5.0 and 5.2 both map to LR frame 3 and the closer one stays.
    assert alignment.kept.tolist() == [1, 3]
    assert alignment.hr_index.tolist() == [3, 15]
    assert alignment.dropped == 3


@pytest.mark.parametrize(
    ("hr_times", "message"),
    [
        (np.array([]), "no HS frames"),
        (np.array([1.0]), "none of the 1 HS frames"),
        (np.array([np.nan]), "NaN"),
        (PERIOD * np.array([4.0, 2.0]), "not increasing"),
    ],
)
def test_unusable_times_raise(hr_times, message):
    with pytest.raises(RunNotFusableError, match=message):
        align_hr_times(PERIOD * np.arange(16), hr_times)


def test_registration_crops_both_fields_on_whole_lr_pixels():
    # HS 56×90 px at HR offset (4, 6) in a 16×24 UHS field (64×96 HR px).
    reg = register_fields((16, 24), (56, 90), offset_hr_px=(4, 6))
    assert reg.lr_window == (1, 2, 14, 22)  # LR cols 2…23 = HR 8…95
    assert reg.hr_window == (0, 2, 56, 88)  # HS col 2 = HR col 8
    lr = np.arange(2 * 16 * 24).reshape(2, 16, 24)
    hr = np.arange(56 * 90).reshape(1, 56, 90)
    lr_c, hr_c = reg.apply(lr, hr)
    assert lr_c.shape[1:] == (14, 22)
    assert hr_c.shape[1:] == (56, 88)
    assert hr_c[0, 0, 0] == hr[0, 0, 2]


def test_registration_undoes_the_flips():
    hr = np.arange(8 * 12).reshape(1, 8, 12)
    reg = register_fields((2, 3), (8, 12), flip_y=True, flip_x=True)
    _, hr_c = reg.apply(np.zeros((1, 2, 3)), hr[:, ::-1, ::-1])
    np.testing.assert_array_equal(hr_c, hr)


@pytest.mark.parametrize(
    ("offset", "message"),
    [((8, 0), "does not fit"), ((-4, 0), "does not fit"), ((0, 4), "does not fit")],
)
def test_registration_that_does_not_fit_raises(offset, message):
    with pytest.raises(RunNotFusableError, match=message):
        register_fields((16, 24), (64, 96), offset_hr_px=offset)
