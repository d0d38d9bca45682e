"""FileUHSCamera with a fake vendor process: on time, late, partial, never."""

import threading
import time

import numpy as np
import pytest
from recordings import FakeVendor

from xfusion_bluesky.devices.files import FileUHSCamera
from xfusion_bluesky.devices.hdf5 import DATASET
from xfusion_bluesky.errors import RecordingError

pytestmark = pytest.mark.slow  # each waits for files in real time

RATE, FRAMES, SHAPE, DELAY = 2e6, 128, (16, 24), 2e-6


@pytest.fixture
def rig(tmp_path):
    """A sim timing generator, a watched directory, and a staged file camera."""
    from xfusion_bluesky.devices.sim import SimEvent, SimTimingGenerator

    timing = SimTimingGenerator(name="timing", event=SimEvent("fast_front", seed=3))
    timing.a.delay.put(DELAY)
    watch = tmp_path / "vendor"
    watch.mkdir()

    def make(timeout_s=3.0, pattern="shot_*.tif"):
        camera = FileUHSCamera(
            name="uhs", watch_dir=watch, pattern=pattern, timeout_s=timeout_s,
            timing_channel=timing.a, settle_s=0.1,
        )  # fmt: skip
        camera.cam.num_images.put(FRAMES)
        camera.cam.acquire_period.put(1 / RATE)
        camera.cam.acquire_time.put(0.5 / RATE)
        camera.cam.size_y.put(SHAPE[0])
        camera.cam.size_x.put(SHAPE[1])
        camera.stage()
        made.append(camera)
        return camera

    made: list = []
    yield timing, watch, make
    for camera in made:
        camera.unstage()


def _vendor(timing, watch, **kwargs):
    return FakeVendor(
        timing, watch, num_images=kwargs.pop("num_images", FRAMES), frame_rate_hz=RATE,
        frame_shape=SHAPE, delay_s=DELAY, **kwargs,
    )  # fmt: skip


def _burst(camera, timing):
    status = camera.trigger()
    timing.trigger()
    return status


@pytest.mark.parametrize("fmt", ["tiff", "cine", "hdf5"])
def test_a_burst_file_is_read_checked_and_registered_as_external_data(rig, fmt):
    timing, watch, make = rig
    suffix = {"tiff": "tif", "cine": "cine", "hdf5": "h5"}[fmt]
    camera = make(pattern=f"shot_*.{suffix}")
    with _vendor(timing, watch, fmt=fmt) as vendor:
        for k in range(2):  # each burst is a new file
            _burst(camera, timing).wait(10)
            docs = list(camera.collect_asset_docs())
            (sent,) = [r for r in vendor.written if r["pulse_id"] == k]
            assert [name for name, _ in docs] == ["stream_resource", "stream_datum"]
            resource, datum = docs[0][1], docs[1][1]
            hdf5 = (
                sent["path"]
                if fmt == "hdf5"
                else sent["path"].with_name(sent["path"].name + ".h5")
            )
            assert resource["uri"] == f"file://localhost{hdf5}"
            assert resource["parameters"]["dataset"] == DATASET
            assert datum["indices"] == {"start": 0, "stop": 1}
            assert np.array_equal(camera.last_burst(), sent["frames"])
            assert camera.recording_path.get() == str(sent["path"])
            # File times count from the camera's trigger; the device adds its delay.
            assert np.allclose(
                camera.frame_times_s.get(), DELAY + sent["times_s"], rtol=0, atol=1e-9
            )
            assert camera.last_burst_path() == str(hdf5)


def test_a_late_file_within_the_timeout_is_taken(rig):
    timing, watch, make = rig
    camera = make(timeout_s=3.0)
    with _vendor(timing, watch, modes=["late"], late_s=1.0) as vendor:
        start = time.monotonic()
        status = _burst(camera, timing)
        status.wait(10)
        assert time.monotonic() - start >= 1.0
    assert status.success
    assert len(list(camera.collect_asset_docs())) == 2  # what the RunEngine asks
    assert np.array_equal(camera.last_burst(), vendor.written[0]["frames"])


def test_a_file_that_never_comes_fails_the_status_saying_what_was_watched(rig):
    timing, watch, make = rig
    camera = make(timeout_s=0.8)
    with _vendor(timing, watch, modes=["never"]):
        status = _burst(camera, timing)
        with pytest.raises(
            RecordingError, match=r"no new file matching .*shot_\*\.tif"
        ):
            status.wait(10)
    assert not list(camera.collect_asset_docs())  # nothing registered


def test_a_truncated_file_fails_the_status_naming_it(rig):
    timing, watch, make = rig
    camera = make(timeout_s=3.0)  # the burst is rendered first: slow on a busy host
    with _vendor(timing, watch, modes=["partial"]) as vendor:
        status = _burst(camera, timing)
        with pytest.raises(RecordingError) as info:
            status.wait(10)
    message = str(info.value)
    assert vendor.written[0]["path"].name in message
    assert "still so 3 s after arming" in message
    assert not list(camera.collect_asset_docs())


def test_a_file_unlike_the_settings_says_the_vendor_software_differs(rig):
    timing, watch, make = rig
    camera = make(timeout_s=3.0)
    with _vendor(timing, watch, num_images=256):
        status = _burst(camera, timing)
        with pytest.raises(RecordingError, match="vendor software is set differently"):
            status.wait(10)


def test_disarming_stops_the_watch_and_an_old_file_is_not_taken(rig):
    _timing, watch, make = rig
    (watch / "shot_old.tif").write_bytes(b"from an earlier shot")
    camera = make(timeout_s=5.0)
    status = camera.trigger()
    time.sleep(0.3)
    camera.stop()  # a RunEngine abort: the watch thread must end, status untouched
    time.sleep(0.2)
    assert not status.done
    assert not [t for t in threading.enumerate() if t.name == "uhs-watch"]


def test_the_hs_flavour_takes_a_phantom_cine_in_internal_mode(tmp_path, rng):
    from recordings import write_cine

    from xfusion_bluesky.devices.files import FileHSCamera

    camera = FileHSCamera(
        name="hs", watch_dir=tmp_path, pattern="*.cine", timeout_s=3.0, settle_s=0.1
    )
    for signal, value in (
        (camera.cam.trigger_mode, "Internal"), (camera.cam.num_images, 8),
        (camera.cam.acquire_period, 1 / 125e3), (camera.cam.acquire_time, 4e-6),
        (camera.cam.size_y, 64), (camera.cam.size_x, 96),
    ):  # fmt: skip
        signal.put(value)
    frames = rng.integers(0, 4096, (8, 64, 96), dtype=np.uint16)
    times = np.arange(8) / 125e3 + 3e-7  # the camera's own timestamps
    camera.stage()
    try:
        status = camera.trigger()
        threading.Timer(
            0.2,
            write_cine,
            (tmp_path / "run1.cine", frames),
            {"frame_rate_hz": 125e3, "frame_times_s": times},
        ).start()
        status.wait(10)
        assert camera.describe()["hs_image"]["source"] == "file:hs"
        assert len(list(camera.collect_asset_docs())) == 2
        assert np.array_equal(camera.last_burst(), frames)
        assert np.allclose(camera.frame_times_s.get(), times, rtol=0, atol=1e-9)
    finally:
        camera.unstage()
