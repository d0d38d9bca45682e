"""The EPICS devices against the caproto IOC, over Channel Access on 127.0.0.1."""

import bluesky.plans as bp
import numpy as np
import pytest
from ophyd import EpicsSignalRO

from xfusion_bluesky.devices.sim import HSMount, SimEvent
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.dual_camera import dual_camera_scan

# Slow: the session's IOC takes ~9 s to start, on whichever test comes first.
pytestmark = [pytest.mark.epics, pytest.mark.slow]

EVENT = SimEvent("fast_front", seed=3)  # what the fixture IOC was started with


def test_count_uhs_over_ca_lands_in_tiled(RE, tiled, epics_devices):
    uhs = epics_devices.uhs
    (uid,) = RE(bp.count([uhs], num=2))
    node = tiled.raw[uid]["primary"]["uhs_image"]
    assert node.shape == (2, 128, 16, 24)
    assert node.dtype == np.uint16
    times = np.arange(128) / 2e6
    expected = EVENT.uhs_burst(uhs.spec, times, (16, 24), seed=3)  # Internal: seed
    assert np.array_equal(node.read()[1], expected)


def test_dual_camera_scan_over_ca_is_bit_identical(RE, tiled, epics_devices):
    count = EpicsSignalRO(f"{epics_devices.timing.prefix}PulseCount_RBV", name="n")
    pulse0 = int(count.get(timeout=5))
    (uid,) = RE(dual_camera_scan(num_bursts=2, hs_delay_s=1e-6))
    run = tiled.raw[uid]
    assert run.start["hs"]["delay_s"] == 1e-6
    assert "sim" not in run.start
    data = run["primary"].read()
    hs_times = 1e-6 + np.arange(8) / 125e3
    assert np.allclose(data["hs_frame_times_s"].values[1], hs_times)
    uhs_times = np.arange(128) / 2e6
    for burst in range(2):
        seed = 3 + pulse0 + burst
        lr = EVENT.uhs_burst(epics_devices.uhs.spec, uhs_times, (16, 24), seed=seed)
        hr = EVENT.hs_burst(
            epics_devices.hs.spec, hs_times, (64, 96),
            field_shape_hr=(64, 96), mount=HSMount(), seed=seed,
        )  # fmt: skip
        assert np.array_equal(run["primary"]["uhs_image"][burst], lr)
        assert np.array_equal(run["primary"]["hs_image"][burst], hr)
    count.destroy()


def test_bad_setting_over_ca_arms_nothing(RE, epics_devices):
    with pytest.raises(InvalidInputError, match="exceeds the HPV-X2 maximum"):
        RE(dual_camera_scan(uhs_frame_rate_hz=6e6))
    for camera in (epics_devices.uhs, epics_devices.hs):
        assert camera.cam.acquire.get() == 0
        assert camera.cam.trigger_mode.get() == "Internal"


def test_a_roi_the_ioc_lost_stops_the_next_scan_until_settled(RE, tiled, epics_devices):
    """An IOC restart puts its ROI back to full frames, behind the device's back."""
    from ophyd import EpicsSignal

    from xfusion_bluesky.devices.epics.camera import RoiChangedError

    hs = epics_devices.hs
    full = (0, 0, hs.spec.sensor_height, hs.spec.sensor_width)
    behind = [
        EpicsSignal(f"{hs.prefix}cam1:{pv}", name=pv)
        for pv in ("MinY", "MinX", "SizeY", "SizeX")
    ]
    for signal, value in zip(behind, full, strict=True):
        signal.set(value).wait(5)  # as the restarted IOC does: not via `hs`
    starts = []
    RE.subscribe(lambda name, doc: starts.append(doc), "start")
    with pytest.raises(RoiChangedError) as info:
        RE(dual_camera_scan())
    message = str(info.value)
    assert f"is {full}" in message
    assert ", 64, 96) this session set" in message
    assert "hs.restore_roi()" in message
    assert starts == []  # no run recorded on the IOC's ROI
    assert hs.cam.acquire.get() == 0

    hs.restore_roi()
    assert (hs.cam.size_y.get(), hs.cam.size_x.get()) == (64, 96)
    (uid,) = RE(dual_camera_scan())
    assert tiled.raw[uid].start["hs"]["frame_shape"] == [64, 96]

    # Keeping the IOC's ROI is a choice too: then scans take it without a word.
    behind[3].set(80).wait(5)
    hs.accept_roi()
    hs.check_roi()  # no error
    hs.cam.size_x.set(96).wait(5)
    for signal in behind:
        signal.destroy()
