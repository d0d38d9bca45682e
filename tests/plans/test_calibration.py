import numpy as np
import pytest

from xfusion_bluesky.plans.calibration import measure_registration, registration_scan
from xfusion_bluesky.plans.dual_camera import dual_camera_scan


@pytest.mark.parametrize(
    ("offset", "flip_y", "flip_x"), [((0, 0), False, False), ((9, 22), True, False)]
)
def test_measure_registration_finds_offset_and_flips(rng, offset, flip_y, flip_x):
    field = rng.random((64, 96)).repeat(2, 0).repeat(2, 1)  # smooth at HR
    lr = field.reshape(32, 4, 48, 4).mean(axis=(1, 3))
    hr = field[offset[0] : offset[0] + 80, offset[1] : offset[1] + 112]
    hr = hr[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
    measured = measure_registration(lr, hr)
    assert (measured.offset_y_hr_px, measured.offset_x_hr_px) == offset
    assert (measured.flip_y, measured.flip_x) == (flip_y, flip_x)
    assert measured.score > 0.99


def test_registration_scan_measures_the_sim_mount(RE, tiled, sim_devices):
    hs, registration = sim_devices.hs, sim_devices.registration
    for signal, value in ((hs.cam.size_y, 40), (hs.cam.size_x, 56)):
        signal.put(value)
    hs.mount_offset_y_hr_px.put(10)
    hs.mount_offset_x_hr_px.put(23)
    hs.mount_flip_x.put(True)
    RE(registration_scan())
    assert registration.offset_y_hr_px.get() == 10
    assert registration.offset_x_hr_px.get() == 23
    assert registration.flip_x.get() is True
    assert registration.flip_y.get() is False
    (uid,) = RE(dual_camera_scan())
    start = tiled.raw[uid].start
    assert start["registration"]["offset_hr_px"] == [10.0, 23.0]
    assert start["registration"]["measured_by"].startswith("registration_scan:")
    rid = start["registration"]["measured_by"].split(":")[1]
    assert np.any(
        [run.start.get("registration_id") == rid for run in tiled.raw.values()]
    )
