"""dual_camera_scan with a UHS run by (fake) vendor software that only writes files.

The UHS is a :class:`FileUHSCamera` watching a directory a :class:`FakeVendor`
writes into on each timing pulse; the HS is a sim camera. Each vendor file ends up
in Tiled as external data; a file that is late still counts, one that never comes
or is cut short fails the run with the reason, and the RunEngine returns promptly.
"""

import time
import uuid

import numpy as np
import pytest
from recordings import FakeVendor

from xfusion_bluesky.devices.files import FileUHSCamera
from xfusion_bluesky.plans.dual_camera import dual_camera_scan

pytestmark = pytest.mark.slow  # RunEngine, Tiled and files in real time

PRESET = ((16, 24), (64, 96), 2e6, 125e3)
#: The file camera's wait; the plan's is 30 s.
FILE_TIMEOUT_S = 4.0


@pytest.fixture
def file_beamline(hdf5_dir):
    """Timing generator, file UHS, sim HS, registration; the watched directory.

    The watched directory lies in ``hdf5_dir``, which the session's Tiled may read.
    """
    from xfusion_bluesky.devices.base import Registration
    from xfusion_bluesky.devices.presets import RoiPreset, apply_roi_preset
    from xfusion_bluesky.devices.sim import SimEvent, SimHSCamera, SimTimingGenerator

    watch = hdf5_dir / "vendor" / uuid.uuid4().hex[:8]
    watch.mkdir(parents=True)
    timing = SimTimingGenerator(name="timing", event=SimEvent("fast_front", seed=11))
    uhs = FileUHSCamera(
        name="uhs", watch_dir=watch, pattern="shot_*.cine", timeout_s=FILE_TIMEOUT_S,
        timing_channel=timing.a, settle_s=0.1,
    )  # fmt: skip
    hs = SimHSCamera(
        name="hs", timing=timing, timing_channel=timing.c, write_dir=hdf5_dir
    )
    registration = Registration(name="registration")
    apply_roi_preset(uhs, hs, registration, RoiPreset(*PRESET))
    devices = {"uhs": uhs, "hs": hs, "timing": timing, "registration": registration}
    yield devices, watch
    for camera in (uhs, hs):
        camera.unstage()


def _scan(RE, devices, **kwargs):
    uids = []
    RE.subscribe(lambda name, doc: uids.append(doc["uid"]), "start")
    return uids, dual_camera_scan(**devices, timeout_s=30.0, **kwargs)


def _vendor(devices, watch, **kwargs):
    return FakeVendor(
        devices["timing"], watch, fmt="cine", num_images=128, frame_rate_hz=2e6,
        frame_shape=PRESET[0], **kwargs,
    )  # fmt: skip


def test_vendor_files_on_time_and_late_reach_tiled_as_written(RE, tiled, file_beamline):
    devices, watch = file_beamline
    _uids, plan = _scan(RE, devices, num_bursts=2)
    with _vendor(devices, watch, modes=["on_time", "late"], late_s=0.6) as vendor:
        (uid,) = RE(plan)
    run = tiled.raw[uid]
    assert run.stop["exit_status"] == "success"
    images = run["primary"]["uhs_image"].read()
    assert images.shape == (2, 128, 16, 24)
    for k, sent in enumerate(sorted(vendor.written, key=lambda r: r["pulse_id"])):
        assert np.array_equal(images[k], sent["frames"])
    # The original files are recorded beside the HDF5 copies Tiled reads.
    paths = run["primary"]["uhs_recording_path"].read()
    assert [str(p) for p in paths] == [str(r["path"]) for r in vendor.written]
    times = run["primary"]["uhs_frame_times_s"].read()
    assert np.allclose(times[1], vendor.written[1]["times_s"], rtol=0, atol=1e-9)
    assert run["primary"]["hs_image"].shape[0] == 2  # the HS took both bursts


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("never", "no new file matching"),
        ("partial", f"still so {FILE_TIMEOUT_S:g} s after arming"),
    ],
)
def test_a_missing_or_truncated_file_fails_the_run_promptly(
    RE, tiled, file_beamline, mode, reason
):
    devices, watch = file_beamline
    uids, plan = _scan(RE, devices, num_bursts=2)
    with _vendor(devices, watch, modes=["on_time", mode]):
        start = time.monotonic()
        with pytest.raises(Exception, match="uhs failed to record the burst") as info:
            RE(plan)
        elapsed = time.monotonic() - start
    assert reason in str(info.value)
    assert elapsed < 20.0  # the file camera's 4 s, not the plan's 30 s
    stop = tiled.raw[uids[0]].stop
    assert stop["exit_status"] == "fail"
    assert reason in stop["reason"]
    assert devices["uhs"].cam.acquire.get() == 0
    assert tiled.raw[uids[0]]["primary"]["uhs_image"].shape[0] == 1  # burst 1 kept
