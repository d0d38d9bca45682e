import threading

import numpy as np
import pytest
from bluesky.utils import RunEngineInterrupted

from xfusion_bluesky.devices.sim import SimTimingGenerator
from xfusion_bluesky.plans.dual_camera import dual_camera_scan


def test_timeout_fails_the_run_and_disarms(RE, tiled, sim_devices):
    sim_devices.hs.timing = SimTimingGenerator(name="unplugged")  # never fires
    uids = []
    RE.subscribe(lambda name, doc: uids.append(doc["uid"]), "start")
    with pytest.raises(TimeoutError, match="hs did not store their burst within 1 s"):
        RE(dual_camera_scan(timeout_s=1.0))
    stop = tiled.raw[uids[0]].stop
    assert stop["exit_status"] == "fail"
    assert "hs did not store" in stop["reason"]
    for camera in (sim_devices.uhs, sim_devices.hs):
        assert camera.cam.acquire.get() == 0
        assert camera.cam.trigger_mode.get() == "Internal"  # restored


def _pause_after_first_event(RE):
    """Ask for a deferred pause (Ctrl-C once) from another thread after event 1."""

    def request(name, doc):
        if doc["seq_num"] == 1:  # request_pause blocks: not from the RE's thread
            threading.Thread(target=RE.request_pause, args=(True,)).start()

    RE.subscribe(request, "event")


@pytest.mark.slow  # a real scan, fused or interrupted: ~2-4 s
def test_paused_and_resumed_scan_is_consistent(RE, tiled, sim_devices, recorded):
    _pause_after_first_event(RE)
    with pytest.raises(RunEngineInterrupted):
        RE(dual_camera_scan(num_bursts=3))
    (uid,) = RE.resume()
    run = tiled.raw[uid]
    assert run.stop["exit_status"] == "success"
    assert run.stop["num_events"]["primary"] == 3
    assert np.array_equal(run["primary"]["uhs_image"].read(), np.stack(recorded["uhs"]))
    assert np.array_equal(run["primary"]["hs_image"].read(), np.stack(recorded["hs"]))


@pytest.mark.slow  # a real scan, fused or interrupted: ~2-4 s
def test_aborted_scan_keeps_what_it_recorded(RE, tiled, sim_devices, recorded):
    _pause_after_first_event(RE)
    with pytest.raises(RunEngineInterrupted):
        RE(dual_camera_scan(num_bursts=3))
    (uid,) = RE.abort(reason="sample moved")
    run = tiled.raw[uid]
    assert run.stop["exit_status"] == "abort"
    assert run["primary"]["uhs_image"].shape[0] == len(recorded["uhs"]) < 3
    assert np.array_equal(run["primary"]["uhs_image"].read(), np.stack(recorded["uhs"]))
    assert sim_devices.uhs.cam.acquire.get() == 0
