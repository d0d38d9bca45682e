"""measure_latency: the HS latency relative to the UHS, from a moving target."""

import numpy as np
import pytest
from calibration_targets import PERIOD_S, moving_burst

from xfusion_bluesky.calibration import measure_latency
from xfusion_bluesky.errors import InvalidInputError, RegistrationError
from xfusion_bluesky.geometry import Similarity

#: The issue's target: within 0.1 LR period.
TOLERANCE_PERIODS = 0.1
MOUNT = Similarity(
    (120, 100),
    scale_ratio=4.2,
    rotation_deg=1.3,
    offset_hr_px=(20.3, 17.8),
    flip_x=True,
)


@pytest.mark.parametrize("latency_periods", [0.37, -1.62, 2.81, -0.45])
def test_the_injected_latency_is_recovered(latency_periods):
    rng = np.random.default_rng(int(1000 * abs(latency_periods)))
    lr, lr_times, hr, hr_times = moving_burst(rng, latency_periods, MOUNT)
    measured = measure_latency(lr, lr_times, hr, hr_times, MOUNT)
    assert measured.frames_used == 4
    assert measured.lr_period_s == pytest.approx(PERIOD_S)
    assert abs(measured.latency_lr_periods - latency_periods) <= TOLERANCE_PERIODS
    per_frame = measured.per_frame_s / PERIOD_S
    assert np.all(np.abs(per_frame - latency_periods) <= 2 * TOLERANCE_PERIODS)
    # The spread says how well it is known: small, and not zero.
    assert 0 < measured.std_s < TOLERANCE_PERIODS * PERIOD_S


def test_a_wrong_sign_convention_would_fail():
    """The HS frames show the event *later* by the latency: t_k − hr_time = +latency."""
    rng = np.random.default_rng(5)
    lr, lr_times, hr, hr_times = moving_burst(rng, 1.5, MOUNT)
    measured = measure_latency(lr, lr_times, hr, hr_times, MOUNT)
    assert measured.latency_s == pytest.approx(1.5 * PERIOD_S, abs=0.1 * PERIOD_S)


def test_frames_outside_the_burst_are_left_out():
    # HS frame instants 4, 8, 12 and 17 periods + 0.6: the last falls after the
    # 16-frame burst ends (15 periods) and must not count.
    rng = np.random.default_rng(6)
    lr, lr_times, hr, hr_times = moving_burst(
        rng, 0.6, MOUNT, hr_instants=(4.0, 8.0, 12.0, 17.0)
    )
    measured = measure_latency(lr, lr_times, hr, hr_times, MOUNT)
    assert measured.frames_used == 3
    assert np.isnan(measured.per_frame_s[3])
    assert abs(measured.latency_lr_periods - 0.6) <= TOLERANCE_PERIODS


def test_a_static_scene_is_refused_as_no_motion():
    rng = np.random.default_rng(7)
    lr, lr_times, hr, hr_times = moving_burst(rng, 0.4, MOUNT, velocity=(0.0, 0.0))
    with pytest.raises(RegistrationError, match="does not move enough"):
        measure_latency(lr, lr_times, hr, hr_times, MOUNT)


def test_hs_frames_all_after_the_burst_are_refused():
    rng = np.random.default_rng(8)
    lr, lr_times, hr, hr_times = moving_burst(
        rng, 0.0, MOUNT, hr_instants=(22.0, 24.0, 26.0)
    )
    with pytest.raises(RegistrationError, match="inside the UHS burst"):
        measure_latency(lr, lr_times, hr, hr_times, MOUNT)


def test_inconsistent_inputs_are_refused():
    rng = np.random.default_rng(9)
    lr, lr_times, hr, hr_times = moving_burst(rng, 0.0, MOUNT)
    with pytest.raises(InvalidInputError, match="lr_times_s has 15 times for 16"):
        measure_latency(lr, lr_times[:-1], hr, hr_times, MOUNT)
    other = Similarity((100, 120))
    with pytest.raises(
        InvalidInputError, match=r"similarity is for HS frames \(100, 120\)"
    ):
        measure_latency(lr, lr_times, hr, hr_times, other)
    far = Similarity((120, 100), offset_hr_px=(5000.0, 0.0))
    with pytest.raises(RegistrationError, match="covers only 0 whole UHS pixels"):
        measure_latency(lr, lr_times, hr, hr_times, far)
