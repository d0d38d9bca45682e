import numpy as np
import pytest

from xfusion_bluesky.devices.limits import (
    HS_SPEC,
    UHS_SPEC,
    BurstSettings,
    check_burst_settings,
    check_delays,
    frame_times,
    hs_frames_in_window,
)
from xfusion_bluesky.errors import InvalidInputError

UHS_OK = BurstSettings(2e6, 2.5e-7, 128, (0, 0, 250, 400))
HS_OK = BurstSettings(125e3, 4e-6, 8, (272, 448, 256, 384))


FULL_UHS, FULL_HS = (0, 0, 250, 400), (0, 0, 800, 1280)


@pytest.mark.parametrize(
    ("spec", "at_limit", "past_it", "match"),
    [
        (UHS_SPEC, UHS_OK, BurstSettings(2e6, 2.5e-7, 129, FULL_UHS), "128, 256"),
        (HS_SPEC, HS_OK, BurstSettings(125e3, 4e-6, 8, (545, 448, 256, 384)), "fit"),
        (  # the fastest rate, exposing the whole frame period
            UHS_SPEC,
            BurstSettings(5e6, 2e-7, 256, FULL_UHS),
            BurstSettings(5.01e6, 1.9e-7, 256, FULL_UHS),
            "exceeds",
        ),
        (
            HS_SPEC,
            BurstSettings(76e3, 1 / 76e3, 8, FULL_HS),
            BurstSettings(76e3, 1.01 / 76e3, 8, FULL_HS),
            "longer than the frame period",
        ),
        (  # as many full frames as the 128 GiB memory holds
            HS_SPEC,
            BurstSettings(76e3, 1e-6, 89_478, FULL_HS),
            BurstSettings(76e3, 1e-6, 89_479, FULL_HS),
            "at most 89478 frames",
        ),
    ],
)
def test_settings_at_a_limit_pass_and_one_step_past_it_raise(
    spec, at_limit, past_it, match
):
    check_burst_settings(spec, at_limit)
    with pytest.raises(InvalidInputError, match=f"^{spec.role} .*{match}"):
        check_burst_settings(spec, past_it)


@pytest.mark.parametrize(
    ("spec", "settings", "memory", "match"),
    [
        (UHS_SPEC, BurstSettings(6e6, 1e-7, 128, (0, 0, 250, 400)), None, "exceeds"),
        (UHS_SPEC, BurstSettings(2e6, 2e-7, 100, (0, 0, 250, 400)), None, "128, 256"),
        (UHS_SPEC, BurstSettings(2e6, 1e-6, 128, (0, 0, 250, 400)), None, "longer"),
        (UHS_SPEC, BurstSettings(2e6, 2e-7, 128, (10, 0, 250, 400)), None, "sensor"),
        (HS_SPEC, BurstSettings(100e3, 1e-6, 8, (0, 0, 800, 1280)), None, "76000 Hz"),
        (HS_SPEC, BurstSettings(2e6, 1e-7, 8, (0, 0, 16, 1280)), None, "1.75e\\+06"),
        (
            HS_SPEC,
            BurstSettings(76e3, 1e-6, 8, (0, 0, 800, 1280)),
            10_000_000,
            "memory",
        ),
    ],
)
def test_impossible_settings_raise_with_the_value(spec, settings, memory, match):
    with pytest.raises(InvalidInputError, match=match):
        check_burst_settings(spec, settings, name="cam", memory_bytes=memory)


def test_hs_rate_limit_grows_with_shorter_roi():
    assert HS_SPEC.max_frame_rate_for(800) == 76e3
    assert HS_SPEC.max_frame_rate_for(256) == pytest.approx(237.5e3)
    assert UHS_SPEC.max_frame_rate_for(16) == 5e6


def test_negative_delay_is_refused():
    check_delays(a=0.0, c=1e-6)
    with pytest.raises(InvalidInputError, match="hs_delay_s must be a finite delay"):
        check_delays(hs_delay_s=-1e-6)


def test_frame_times_and_hs_window():
    assert np.allclose(frame_times(1e-6, 2e6, 3), [1e-6, 1.5e-6, 2e-6])
    window = {"uhs_frames": 128, "uhs_frame_rate_hz": 2e6, "hs_frame_rate_hz": 125e3}
    assert hs_frames_in_window(**window, uhs_delay_s=0, hs_delay_s=0) == 8
    assert hs_frames_in_window(**window, uhs_delay_s=0, hs_delay_s=1e-6) == 8
    assert hs_frames_in_window(**window, uhs_delay_s=0, hs_delay_s=9e-6) == 7
    with pytest.raises(InvalidInputError, match="after the UHS burst ends"):
        hs_frames_in_window(**window, uhs_delay_s=0, hs_delay_s=1e-3)
