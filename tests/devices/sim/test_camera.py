import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine

from xfusion_bluesky.devices.hdf5 import DATASET
from xfusion_bluesky.errors import InvalidInputError


def test_count_uhs_writes_each_burst_to_hdf5(sim_devices):
    uhs, docs, bursts = sim_devices.uhs, [], []
    RE = RunEngine()
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.subscribe(lambda name, doc: bursts.append(uhs.last_frames), "event")
    RE(bp.count([uhs], num=2))
    (descriptor,) = [d for n, d in docs if n == "descriptor"]
    key = descriptor["data_keys"]["uhs_image"]
    assert key["shape"] == [128, 16, 24]
    assert key["dtype_numpy"] == "<u2"
    assert key["external"] == "STREAM:"
    assert descriptor["data_keys"]["uhs_frame_times_s"]["shape"] == [128]
    datums = [d for n, d in docs if n == "stream_datum"]
    assert [d["indices"]["start"] for d in datums] == [0, 1]
    (resource,) = [d for n, d in docs if n == "stream_resource"]
    with h5py.File(resource["uri"].removeprefix("file://localhost")) as f:
        assert np.array_equal(f[DATASET][:], np.concatenate(bursts))
    (event, _) = [d for n, d in docs if n == "event"]
    assert np.allclose(event["data"]["uhs_frame_times_s"], np.arange(128) / 2e6)
    assert not np.array_equal(bursts[0], np.zeros_like(bursts[0]))


def test_external_burst_waits_for_the_pulse_and_its_delay(sim_devices):
    uhs, timing = sim_devices.uhs, sim_devices.timing
    uhs.cam.trigger_mode.put("External")
    timing.a.delay.put(3e-6)
    uhs.stage()
    status = uhs.trigger()
    assert not status.done
    assert uhs.cam.acquire.get() == 1
    timing.trigger().wait(5)
    status.wait(10)
    assert uhs.frame_times_s.get()[0] == pytest.approx(3e-6)
    assert uhs.cam.acquire.get() == 0
    uhs.unstage()


def test_hs_sees_the_uhs_event_at_four_times_the_resolution(sim_devices):
    uhs, hs, timing = sim_devices.uhs, sim_devices.hs, sim_devices.timing
    for camera in (uhs, hs):
        camera.cam.trigger_mode.put("External")
        camera.stage()
    statuses = [uhs.trigger(), hs.trigger()]
    timing.trigger()
    for status in statuses:
        status.wait(10)
    lr = uhs.last_frames[::16] / 1023.0  # UHS frames at the HS instants
    hr = hs.last_frames.reshape(8, 16, 4, 24, 4).mean(axis=(2, 4)) / 4095.0
    assert np.corrcoef(lr.ravel(), hr.ravel())[0, 1] > 0.9
    assert np.abs(lr - hr).mean() < 0.05


def test_bad_setting_raises_at_stage_and_arms_nothing(sim_devices, tmp_path):
    uhs = sim_devices.uhs
    uhs.write_dir = tmp_path
    uhs.cam.acquire_period.put(1 / 6e6)
    with pytest.raises(InvalidInputError, match="frame_rate_hz=6e"):
        uhs.stage()
    assert uhs.cam.acquire.get() == 0
    assert uhs.last_burst_path() is None
    assert not list(tmp_path.rglob("*.h5"))
