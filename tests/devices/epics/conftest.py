import pytest


@pytest.fixture
def epics_devices(sim_ioc, hdf5_dir):
    """EPICS devices on the sim IOC, tiny ROIs as in `sim_devices`; plans' defaults."""
    from xfusion_bluesky.devices.base import Registration
    from xfusion_bluesky.devices.epics import HSCamera, TimingGenerator, UHSCamera
    from xfusion_bluesky.devices.presets import RoiPreset, apply_roi_preset
    from xfusion_bluesky.plans.defaults import BeamlineDevices, set_default_devices

    timing = TimingGenerator(f"{sim_ioc}DG1:", name="timing")
    uhs = UHSCamera(
        f"{sim_ioc}UHS:", name="uhs", timing_channel=timing.a, write_dir=hdf5_dir
    )
    hs = HSCamera(
        f"{sim_ioc}HS:", name="hs", timing_channel=timing.c, write_dir=hdf5_dir
    )
    for device in (timing, uhs, hs):
        device.wait_for_connection(timeout=10)
    registration = Registration(name="registration")
    apply_roi_preset(uhs, hs, registration, RoiPreset((16, 24), (64, 96), 2e6, 125e3))
    for camera in (uhs, hs):
        camera.cam.trigger_mode.set("Internal").wait(5)
    devices = BeamlineDevices(uhs, hs, timing, registration)
    set_default_devices(devices)
    yield devices
    set_default_devices(None)
    for device in (uhs, hs, timing):
        device.destroy()
